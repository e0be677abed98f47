"""The durable, per-lane ordered outbox: interface, status model and ``open_outbox``.

Contract every backend keeps (one test suite runs against all of them):

* ``append`` returns only once the record is durable and has its lane ``seq``.
* Delivery is head-of-line per lane ``(service, account, target)``: ``claim`` only ever hands
  out the lowest-``seq`` undelivered record of a lane, and only when it is ``pending``, due
  (``next_attempt_at <= now``) and not leased by another worker. Other lanes proceed.
* A claim takes a lease (``lease_s``); ``ack``/``nack`` are accepted only from the lease
  holder. An expired lease makes the record claimable again (a crashed worker's record is
  redelivered; receivers dedupe by ``Idempotency-Key``).
* A dead letter stays at the head of its lane and **blocks** it: later writes of that account
  depend on it (an update after a lost create), so they wait until an operator ``retry``s it.
  ``pending_for`` counts it, so the account cannot shift sides meanwhile.
* Nothing is ever dropped: a record leaves the outbox only through a successful ``ack``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol
from urllib.parse import urlparse

from pydantic import BaseModel, Field

from chariot_migrate.dual_write.records import ReplayRecord, Side

DEFAULT_REDIS_PREFIX = "chariot-migrate:outbox:"


class TargetCounts(BaseModel):
    pending: int = 0
    dead: int = 0


class ServiceStatus(BaseModel):
    service: str
    backlog: int = 0  # undelivered, not dead (dead letters are counted separately)
    dead_letters: int = 0
    oldest_age_s: float | None = None  # age of the oldest undelivered record (incl. dead)
    per_target: dict[str, TargetCounts] = Field(default_factory=dict)


class Outbox(Protocol):
    async def append(self, record: ReplayRecord) -> ReplayRecord:
        """Durably store ``record``; returns it with ``seq`` assigned. Idempotent per ``id``."""
        ...

    async def claim(
        self, worker_id: str, limit: int, lease_s: float, now: float | None = None
    ) -> list[ReplayRecord]:
        """Lease up to ``limit`` due lane heads (at most one record per lane)."""
        ...

    async def ack(self, record_id: str, worker_id: str) -> bool:
        """Delivered: remove the record. False if ``worker_id`` no longer holds the lease."""
        ...

    async def nack(
        self, record_id: str, worker_id: str, *, error: str, next_attempt_at: float, dead: bool
    ) -> bool:
        """Failed attempt: count it, store the error, reschedule or dead-letter; drop the lease."""
        ...

    async def get(self, record_id: str) -> ReplayRecord | None: ...

    async def status(self) -> dict[str, ServiceStatus]: ...

    async def pending_for(self, service: str, account: str, target: Side) -> int:
        """Undelivered records (pending or dead) of one lane; 0 = safe to shift the account."""
        ...

    async def dead_letters(self, service: str | None = None, limit: int = 100) -> list[ReplayRecord]: ...

    async def retry(self, record_id: str | None = None, service: str | None = None) -> int:
        """Move one dead letter (or all, optionally of one service) back to pending, attempts 0."""
        ...

    async def drain(self, timeout: float, service: str | None = None) -> int:
        """Wait until no pending records remain (a worker must run); returns how many remain."""
        ...

    async def aclose(self) -> None: ...


async def drain_by_polling(outbox: Outbox, timeout: float, service: str | None, interval: float = 0.05) -> int:
    """Shared ``drain``: poll ``status()`` until the backlog is empty or the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        st = await outbox.status()
        remaining = sum(s.backlog for name, s in st.items() if service is None or name == service)
        if remaining == 0 or time.monotonic() >= deadline:
            return remaining
        await asyncio.sleep(interval)


def default_outbox_url(state_url: str | None = None) -> str:
    from ..statedir import under

    return f"sqlite:///{under('outbox.db', state_url)}"


def open_outbox(url: str | None = None) -> Outbox:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db``, ``redis://host:port/0?prefix=p:``.

    ``None`` opens the embedded default, ``outbox.db`` in the state directory
    (:mod:`chariot_migrate.statedir`).
    """
    if not url:
        url = default_outbox_url()
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        if not url.startswith("sqlite:///"):
            raise ValueError(f"outbox URL {url!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db")
        path = url[len("sqlite:///") :]
        if not path:
            raise ValueError(f"outbox URL {url!r} names no file")
        from chariot_migrate.dual_write.sqlite_outbox import SQLiteOutbox

        return SQLiteOutbox(path)
    if parsed.scheme in ("redis", "rediss", "unix"):
        from chariot_migrate.dual_write.redis_outbox import RedisOutbox
        from chariot_migrate.redis_keys import split_redis_url

        clean, prefix = split_redis_url(url, DEFAULT_REDIS_PREFIX)
        return RedisOutbox(clean, prefix=prefix)
    raise ValueError(f"outbox URL {url!r}: scheme must be sqlite:// or redis://")
