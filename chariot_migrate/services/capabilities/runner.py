"""Runs one queued job as a saga: running → capability → results applied → passed.

Any failing step compensates the completed ones in reverse (results written by this run are
undone through the owning services) and the job ends JF with the reason; ``job.completed`` is
published either way. The saga log is kept in the jobs table (partition ``#saga#<account>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from chariot_migrate.model import capabilities as caps
from chariot_migrate.model import keys
from chariot_migrate.model.clock import now_iso
from chariot_migrate.model.status import job_code

from ..kit.events import Event
from ..kit.saga import Saga, SagaFailed, SagaRecord, Step
from ..kit.tables import LegacyShapedTable
from . import jobs, recovery
from .leases import HeldLease, LeaseStore
from .peers import ResultSink, TargetLookup
from .store import SAGA_PARTITION_PREFIX

log = logging.getLogger("chariot.capabilities.runner")
Publish = Callable[[Event], Awaitable[Any]]


class TableSagaLog:
    """Saga records as items of the jobs table, one per job run (latest wins)."""

    def __init__(self, table: LegacyShapedTable, account: str, job_key: str) -> None:
        self.table, self.account, self.job_key = table, account, job_key

    async def save(self, record: SagaRecord) -> None:
        await self.table.aput({"username": SAGA_PARTITION_PREFIX + self.account, "key": self.job_key,
                               **record.to_dict()})


class JobRunner:
    def __init__(self, table: LegacyShapedTable, lookup: TargetLookup, sink: ResultSink, publish: Publish,
                 clock: Callable[[], str] = now_iso, leases: LeaseStore | None = None) -> None:
        self.table, self.lookup, self.sink, self.publish, self.clock = table, lookup, sink, publish, clock
        self.leases = leases

    async def run(self, account: str, job_key: str) -> dict[str, Any] | None:
        job = await self.table.aget(account, job_key)
        if not job or job_code(job.get("status", "")) not in ("JQ", "JQA"):
            return job
        if self.leases is None:
            return await self._run(account, job_key, job)
        held = HeldLease(self.leases, await self.leases.acquire(account, job_key))
        beat = asyncio.create_task(self._heartbeat(held), name=f"lease:{job_key}")
        try:
            done = await self._run(account, job_key, job, held)
        finally:  # a crash of this run leaves the lease to expire: the recovery pass resumes the job
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        await self.leases.release(account, job_key)
        return done

    async def _heartbeat(self, held: HeldLease) -> None:
        while not held.lost:
            await asyncio.sleep(held.store.lease_s / 3)
            try:
                await held.renew()
            except Exception:  # the store is down: try again next beat (the lease may lapse)
                log.exception("job lease renewal failed", extra={"job": held.item.get("job_key")})

    async def give_up(self, account: str, job_key: str, attempts: int,
                      applied: list[list[str]] | None = None) -> dict[str, Any] | None:
        """A job whose runs were interrupted too often is compensated — the results its runs
        recorded (``applied``, from the lease) are undone through their owners, newest first — and
        ends JF with the reason; ``job.completed`` says so."""
        job = await self.table.aget(account, job_key)
        if job and job_code(job.get("status", "")) in recovery.RUNNABLE:
            undone, failed = 0, 0
            for kind, key in reversed(applied or []):
                try:
                    await self.sink.undo(account, kind, key)
                    undone += 1
                except Exception as e:  # noqa: BLE001 — undo what can be undone; say what could not
                    failed += 1
                    log.warning("compensation failed", extra={"job": job_key, "key": key, "error": str(e)[:200]})
            now = self.clock()
            reason = recovery.give_up_reason(attempts, undone, failed)
            log.warning("job failed", extra={"job": job_key, "reason": reason})
            job = await self.table.aput(jobs.mark(job, "JF", now, finished=now, error=reason))
            await self._completed(account, job, jobs.capability_of(job), 0)
        if self.leases is not None:
            await self.leases.release(account, job_key)
        return job

    async def _completed(self, account: str, done: dict[str, Any], capability: str, results: int) -> None:
        await self.publish(Event.new("job.completed", account, {
            "key": done["key"], "capability": capability, "dns": done.get("dns", ""), "status": done["status"],
            "started": done.get("started", ""), "finished": done.get("finished", ""), "results": results,
        }))

    async def _run(self, account: str, job_key: str, job: dict[str, Any],
                   held: HeldLease | None = None) -> dict[str, Any]:
        capability = jobs.capability_of(job)
        ctx: dict[str, Any] = {"job": job, "applied": []}

        async def start(c: dict[str, Any]) -> None:
            now = self.clock()
            c["job"] = await self.table.aput(jobs.mark(c["job"], "JR", now, started=now))

        async def execute(c: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
            target_key = c["job"]["target"]["model"]["key"]
            target = await self.lookup.get(account, target_key)
            if not target:
                raise ValueError(f"target {target_key} no longer exists")
            related = None
            if capability == "nuclei" and keys.kind_of(target_key) == "asset":
                related = [a for a in await self.lookup.attributes_of(account, target_key, "port")
                           if a.get("source") == target_key]
            return caps.run(capability, target, related)

        async def apply(c: dict[str, Any]) -> int:
            try:
                return await write_all(c)
            except Exception:
                await unapply(c)  # the saga only compensates completed steps: undo this one's part
                raise

        async def note(c: dict[str, Any], kind: str, key: str) -> None:
            c["applied"].append((kind, key))
            if held is not None:  # a recovery that gives this job up undoes what the lease lists
                await held.applied(kind, key)

        async def write_all(c: dict[str, Any]) -> int:
            results = c["execute"]
            for a in results["assets"]:
                await note(c, "asset", (await self.sink.asset(account, a["dns"], a["name"], capability))["key"])
            for at in results["attributes"]:
                stored = await self.sink.attribute(account, at["source"], at["name"], at["value"], capability)
                await note(c, "attribute", stored["key"])
            for r in results["risks"]:
                stored = await self.sink.risk(account, r["target"], r["name"], r["status"], capability)
                await note(c, "risk", stored["key"])
            for p in results["preseeds"]:
                stored = await self.sink.preseed(account, p["type"], p["title"], p["value"], capability)
                await note(c, "preseed", stored["key"])
            return len(c["applied"])

        async def unapply(c: dict[str, Any]) -> None:
            for kind, key in reversed(c["applied"]):
                await self.sink.undo(account, kind, key)
            c["applied"] = []

        async def finish(c: dict[str, Any]) -> None:
            now = self.clock()
            c["job"] = await self.table.aput(jobs.mark(c["job"], "JP", now, finished=now))

        saga = Saga(f"job:{capability}", [Step("start", start), Step("execute", execute),
                                          Step("apply", apply, unapply), Step("finish", finish)],
                    log=TableSagaLog(self.table, account, job_key))
        try:
            await saga.run(ctx)
            results = ctx.get("apply", 0)
        except SagaFailed as failed:
            now = self.clock()
            reason = failed.record.error or "job failed"
            log.warning("job failed", extra={"job": job_key, "reason": reason[:300]})
            ctx["job"] = await self.table.aput(jobs.mark(ctx["job"], "JF", now, finished=now, error=reason[:500]))
            results = 0
        done = ctx["job"]
        await self._completed(account, done, capability, results)
        return done
