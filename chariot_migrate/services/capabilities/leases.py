"""Job leases in the jobs table (IO; the rules are in ``recovery``)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from anyio import to_thread

from ..kit.repository import ConflictError, Repository
from . import recovery

log = logging.getLogger("chariot.capabilities")


def instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseStore:
    def __init__(self, repo: Repository, *, lease_s: float, owner: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.repo, self.lease_s, self.owner, self.clock = repo, lease_s, owner or instance_id(), clock

    def _get(self, account: str, job_key: str) -> dict[str, Any] | None:
        return self.repo.get(recovery.LEASE_PARTITION, recovery.lease_key(account, job_key))

    async def acquire(self, account: str, job_key: str) -> dict[str, Any]:
        """Start (or restart) a run: the lease is ours, attempts counts this run."""
        def run() -> dict[str, Any]:
            old = self._get(account, job_key)
            attempts = int(old.get("attempts", 0)) + 1 if old else 1
            item = recovery.lease_item(account, job_key, self.owner, self.clock(), self.lease_s, attempts)
            return self.repo.put(item, expected_version=old["version"] if old else 0)
        return await to_thread.run_sync(run)

    async def renew(self, lease: dict[str, Any], **changes: Any) -> dict[str, Any]:
        """Extend our lease (and change fields of it); ConflictError when another instance took it over."""
        def run() -> dict[str, Any]:
            item = {k: v for k, v in lease.items() if k != "version"} | {
                "expires": round(self.clock() + self.lease_s, 3)} | changes
            return self.repo.put(item, expected_version=int(lease["version"]))
        return await to_thread.run_sync(run)

    async def claim(self, lease: dict[str, Any]) -> dict[str, Any] | None:
        """Take over an expired lease (None when another instance was first)."""
        def run() -> dict[str, Any] | None:
            item = {k: v for k, v in lease.items() if k != "version"} | {
                "owner": self.owner, "expires": round(self.clock() + self.lease_s, 3)}
            try:
                return self.repo.put(item, expected_version=int(lease["version"]))
            except ConflictError:
                return None
        return await to_thread.run_sync(run)

    async def release(self, account: str, job_key: str) -> None:
        await to_thread.run_sync(lambda: self.repo.delete(recovery.LEASE_PARTITION,
                                                          recovery.lease_key(account, job_key)))

    async def all(self) -> list[dict[str, Any]]:
        def run() -> list[dict[str, Any]]:
            return list(self.repo.iter_prefix(recovery.LEASE_PARTITION, "", page_size=500))
        return await to_thread.run_sync(run)


class HeldLease:
    """The lease of one run: renewed by the heartbeat, and told every result the run writes
    (``applied``, so a recovery that gives the job up can undo them). One writer at a time."""

    def __init__(self, store: LeaseStore, item: dict[str, Any]) -> None:
        self.store, self.item, self.lost = store, item, False
        self._lock = asyncio.Lock()

    async def renew(self, **changes: Any) -> None:
        if self.lost:
            return
        async with self._lock:
            try:
                self.item = await self.store.renew(self.item, **changes)
            except ConflictError:
                self.lost = True
                log.warning("job lease taken over by another instance", extra={"job": self.item.get("job_key")})

    async def applied(self, kind: str, key: str) -> None:
        entry = [kind, key]
        if entry not in (self.item.get("applied") or []):
            await self.renew(applied=[*(self.item.get("applied") or []), entry])
