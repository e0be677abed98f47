"""Queueing jobs (``POST /job`` and due schedules) and running them in the background."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

from anyio import to_thread

from chariot_migrate.model import capabilities as caps
from chariot_migrate.model import keys, schedules
from chariot_migrate.model.clock import now_iso
from chariot_migrate.model.status import job_code

from ..kit.replay import adopt
from ..kit.repository import ConflictError, deserialize_item
from ..kit.request import ApiError, bad_request, not_found
from ..kit.tables import LegacyShapedTable
from . import jobs, recovery
from .peers import PeersNotConfigured, TargetLookup
from .runner import JobRunner

log = logging.getLogger("chariot.capabilities")


class JobService:
    def __init__(self, jobs_table: LegacyShapedTable, schedules_table: LegacyShapedTable, lookup: TargetLookup,
                 runner: JobRunner, clock: Callable[[], str] = now_iso) -> None:
        self.jobs, self.schedules, self.lookup, self.runner, self.clock = (
            jobs_table, schedules_table, lookup, runner, clock)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._in_flight: set[tuple[str, str]] = set()  # (account, job key) this process runs or will run

    # -- POST /job ---------------------------------------------------------------------------------
    async def add(self, account: str, key: str, names: list[str], config: Mapping[str, Any],
                  credential_ids: list[str], replay: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        bad = caps.unknown(names)
        if bad:
            raise bad_request(f"unknown capability: {bad[0]}")
        target = await self.find_target(account, key)
        names = names or caps.default_for(keys.kind_of(key))
        if not names:
            raise bad_request(f"no capability targets {keys.kind_of(key) or 'this key'}; name one in 'capabilities'")
        out = [await self.queue(account, target, n, dict(config), credential_ids, replay) for n in names]
        self.start(account, [j["key"] for j in out if job_code(j["status"]) == "JQ"])
        return out

    async def find_target(self, account: str, key: str) -> dict[str, Any]:
        try:
            target = await self.lookup.get(account, key)
        except PeersNotConfigured as e:
            raise ApiError(503, str(e)) from None
        except Exception as e:  # the owning service is down or its circuit is open
            log.warning("target lookup failed", extra={"error": f"{type(e).__name__}: {e}"[:300]})
            raise ApiError(503, "the service that owns the target is unavailable: try again shortly") from None
        if not target:
            raise not_found(f"target {key} not found")
        return target

    async def queue(self, account: str, target: dict[str, Any], capability: str, config: dict[str, Any],
                    credential_ids: list[str], replay: Mapping[str, Any] | None = None) -> dict[str, Any]:
        existing = await self.jobs.aget(account, jobs.job_key_for(target["key"], capability))
        if existing is not None and jobs.is_active(existing):
            return existing
        now = adopt(replay, "updated", self.clock())
        job = jobs.new_job(account, target, capability, config, credential_ids, now, adopt(replay, "created", now))
        await self.jobs.aput(job)
        return job

    # -- background work ----------------------------------------------------------------------------
    def start(self, account: str, job_keys: list[str]) -> None:
        job_keys = [k for k in job_keys if (account, k) not in self._in_flight]
        if not job_keys:
            return
        self._in_flight.update((account, k) for k in job_keys)
        task = asyncio.create_task(self._run_all(account, job_keys), name=f"jobs:{account}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_all(self, account: str, job_keys: list[str]) -> None:
        for key in job_keys:
            try:
                await self.runner.run(account, key)
            except Exception:  # a crash here must not kill the loop; the job stays JQ/JR (its lease lapses)
                log.exception("job runner crashed", extra={"job": key})
            finally:
                self._in_flight.discard((account, key))

    async def drain(self) -> None:
        """Wait for every job started so far (tests, graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self, grace_s: float = 0.0) -> None:
        """Graceful shutdown: jobs already started get ``grace_s`` to finish (a job cancelled
        mid-saga would stay queued or running until a restart resumes it); then the rest is
        cancelled."""
        if grace_s > 0 and self._tasks:
            try:
                await asyncio.wait_for(self.drain(), grace_s)
            except TimeoutError:
                log.warning("jobs still running at shutdown are cancelled", extra={"jobs": len(self._tasks)})
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- schedules ----------------------------------------------------------------------------------
    async def run_due_schedules(self, now: datetime | None = None) -> int:
        """Queue the jobs of every due schedule once (a conditional write claims each run, so
        several replicas never fire the same slot twice). Returns the number of schedules fired."""
        now = now or datetime.now(UTC)
        repo = self.schedules.repo
        fired = 0
        for raw in await to_thread.run_sync(lambda: _scan_active(repo)):
            item = {k: v for k, v in raw.items() if k != "version"}
            if not schedules.is_due(item, now):
                continue
            updated = schedules.after_run(item, now)
            try:
                await to_thread.run_sync(partial(repo.put, updated, expected_version=raw.get("version", 1)))
            except ConflictError:
                continue  # another replica fired it
            fired += 1
            account = item["username"]
            target = await self.lookup.get(account, item["targetKey"])
            if not target:
                log.warning("scheduled target is gone", extra={"schedule": item["scheduleId"]})
                continue
            job = await self.queue(account, target, item["capabilityName"], item.get("config") or {}, [])
            if job_code(job["status"]) == "JQ":
                self.start(account, [job["key"]])
        return fired


    async def recover(self, max_attempts: int, now: float | None = None) -> dict[str, int]:
        """One recovery pass: every expired job lease is resumed or failed (``recovery.decide``).
        Returns how many leases got each action."""
        leases = self.runner.leases
        counts = {"wait": 0, "release": 0, "resume": 0, "fail": 0}
        if leases is None:
            return counts
        now = leases.clock() if now is None else now
        for lease in await leases.all():
            account, job_key = str(lease.get("account", "")), str(lease.get("job_key", ""))
            if (account, job_key) in self._in_flight:
                counts["wait"] += 1  # this process runs it (its heartbeat keeps the lease)
                continue
            job = await self.jobs.aget(account, job_key)
            action = recovery.decide(job, lease, now, max_attempts)
            counts[action] += 1
            if action == "wait":
                continue
            if action == "release":
                await leases.release(account, job_key)
                continue
            if await leases.claim(lease) is None:
                continue  # another replica was first
            attempts = int(lease.get("attempts", 0))
            log.warning("recovering an interrupted job", extra={"job": job_key, "action": action,
                                                                "attempts": attempts})
            if action == "fail":
                await self.runner.give_up(account, job_key, attempts, lease.get("applied") or [])
            else:
                assert job is not None
                await self.jobs.aput(jobs.mark(job, "JQ", self.clock()))
                self.start(account, [job_key])
        return counts

    async def resume_queued(self) -> int:
        """Start every job left queued (JQ) by a previous process (crash, redeploy)."""
        rows = await to_thread.run_sync(lambda: _scan(self.jobs.repo, "JQ#"))
        by_account: dict[str, list[str]] = {}
        for job in rows:
            if not str(job["username"]).startswith("#"):  # saga logs and markers live in '#' partitions
                by_account.setdefault(job["username"], []).append(job["key"])
        for account, job_keys in by_account.items():
            self.start(account, job_keys)
        return sum(len(v) for v in by_account.values())


def _scan(repo: Any, status_prefix: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": repo.table, "FilterExpression": "begins_with(#s, :p)",
                              "ExpressionAttributeNames": {"#s": "status"},
                              "ExpressionAttributeValues": {":p": {"S": status_prefix}}}
    while True:
        resp = repo.client.scan(**kwargs)
        out.extend(deserialize_item(i) for i in resp.get("Items", []))
        if not resp.get("LastEvaluatedKey"):
            return out
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def _scan_active(repo: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": repo.table, "FilterExpression": "#s = :a",
                              "ExpressionAttributeNames": {"#s": "status"},
                              "ExpressionAttributeValues": {":a": {"S": "active"}}}
    while True:
        resp = repo.client.scan(**kwargs)
        out.extend(deserialize_item(i) for i in resp.get("Items", []))
        if not resp.get("LastEvaluatedKey"):
            return out
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
