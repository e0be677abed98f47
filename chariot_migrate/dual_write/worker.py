"""The replay worker: delivers outbox records to the other side, per lane in order.

Runs inside the proxy's event loop (``start()`` / ``stop()``) or standalone
(``run_forever()``, for ``chariot-migrate dual-write worker``). Several workers — in one
process or many — can share one outbox: the outbox's leases keep them from delivering the
same record concurrently, and head-of-line claiming keeps each lane in order.

The wire format of a replay is described in :mod:`chariot_migrate.dual_write.replay_protocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from chariot_migrate.dual_write.outbox import Outbox
from chariot_migrate.dual_write.records import ReplayRecord, Side
from chariot_migrate.dual_write.replay_protocol import (
    DEFAULT_MAX_HEADER_BYTES,
    Outcome,
    backoff_delay,
    build_replay_request,
    classify_status,
    next_state,
)
from chariot_migrate.observability import metrics as obs
from chariot_migrate.redact import redact_body
from chariot_migrate.transport import HttpResponse, Transport, UpstreamError

log = logging.getLogger("chariot_migrate.dual_write.worker")

TransportFactory = Callable[[str, Side], Transport]
# Called once per attempt that produced an HTTP response (success or not).
ResultCallback = Callable[[ReplayRecord, HttpResponse], Awaitable[None] | None]


class ReplayWorker:
    def __init__(
        self,
        outbox: Outbox,
        transports: TransportFactory,
        *,
        max_attempts: int = 8,
        base_delay_s: float = 0.2,
        max_delay_s: float = 30.0,
        concurrency: int = 8,
        replay_token_provider: Callable[[], str] | None = None,
        on_result: ResultCallback | None = None,
        timeout_s: float = 10.0,
        lease_s: float = 60.0,
        poll_interval_s: float = 0.05,
        sample_interval_s: float = 2.0,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        worker_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1 or concurrency < 1:
            raise ValueError("max_attempts and concurrency must be at least 1")
        if lease_s <= timeout_s:
            raise ValueError("lease_s must exceed timeout_s, or a slow delivery could be claimed twice")
        self.outbox = outbox
        self.transports = transports
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.concurrency = concurrency
        self.replay_token_provider = replay_token_provider
        self.on_result = on_result
        self.timeout_s = timeout_s
        self.lease_s = lease_s
        self.poll_interval_s = poll_interval_s
        self.sample_interval_s = sample_interval_s  # how often run_forever samples the backlog gauges
        self._sampled: set[tuple[str, str]] = set()
        self._next_sample = 0.0
        self.max_header_bytes = max_header_bytes
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0
        self.failed_attempts = 0
        self.dead_lettered = 0

    def notify(self) -> None:
        """Wake the worker now (e.g. right after an append) instead of at the next poll."""
        self._wake.set()

    async def deliver(self, record: ReplayRecord) -> str:
        """One attempt for one leased record; returns "delivered", "pending" or "dead"."""
        token = self.replay_token_provider() if self.replay_token_provider else None
        request = build_replay_request(record, token, max_header_bytes=self.max_header_bytes)
        attempts = record.attempts + 1
        try:
            transport = self.transports(record.service, record.target)
            response = await transport.send(request, self.timeout_s)
            await response.read()
        except UpstreamError as exc:
            return await self._failed(record, attempts, "retry", f"{exc.kind}: {exc.message}")
        except Exception as exc:  # noqa: BLE001 - a transport bug must not kill the worker
            return await self._failed(record, attempts, "retry", f"{type(exc).__name__}: {exc}")
        await self._report(record, response)
        outcome = classify_status(response.status)
        if outcome == "delivered":
            if await self.outbox.ack(record.id, self.worker_id):
                self.delivered += 1
                d = obs.direction(record.target)
                obs.DUAL_WRITE_REPLAYS.labels(record.service, d, "delivered").inc()
                obs.DUAL_WRITE_LAG.labels(record.service, d).observe(max(0.0, time.time() - record.created_at))
            else:
                log.warning("lease on %s lost before ack; it will be redelivered (deduped)", record.id)
            return "delivered"
        # The error is kept in the outbox, logged and shown by `dual-write dead`: redacted first.
        snippet = redact_body(response.body[:4096], limit=200)
        return await self._failed(record, attempts, outcome, f"HTTP {response.status}: {snippet}")

    async def _report(self, record: ReplayRecord, response: HttpResponse) -> None:
        if self.on_result is None:
            return
        try:
            res = self.on_result(record, response)
            if inspect.isawaitable(res):
                await res
        except Exception:  # noqa: BLE001 - comparison is best effort, delivery is not
            log.exception("on_result callback failed for %s", record.id)

    async def _failed(self, record: ReplayRecord, attempts: int, outcome: Outcome, error: str) -> str:
        state = next_state(attempts, self.max_attempts, outcome)
        delay = backoff_delay(attempts, self.base_delay_s, self.max_delay_s, self._rng.random())
        self.failed_attempts += 1
        d = obs.direction(record.target)
        obs.DUAL_WRITE_REPLAYS.labels(record.service, d, "dead" if state == "dead" else "retry").inc()
        if state == "dead":
            obs.DUAL_WRITE_DEAD_LETTERED.labels(record.service, d).inc()
        else:
            obs.DUAL_WRITE_RETRIES.labels(record.service, d).inc()
        if state == "dead":
            self.dead_lettered += 1
            log.error(
                "dead letter %s (%s/%s seq %d) after %d attempts: %s",
                record.id, record.service, record.target, record.seq, attempts, error,
            )
        await self.outbox.nack(
            record.id, self.worker_id, error=error, next_attempt_at=time.time() + delay, dead=state == "dead"
        )
        return state

    async def sample_backlog(self) -> None:
        """Set the backlog / dead-letter gauges from the outbox (a label set that emptied goes to 0)."""
        status = await self.outbox.status()
        seen: set[tuple[str, str]] = set()
        for service, st in status.items():
            for target, counts in st.per_target.items():
                d = obs.direction(target)
                obs.DUAL_WRITE_PENDING.labels(service, d).set(counts.pending)
                obs.DUAL_WRITE_DEAD.labels(service, d).set(counts.dead)
                seen.add((service, d))
            obs.DUAL_WRITE_OLDEST.labels(service).set(st.oldest_age_s or 0.0)
        for service, d in self._sampled - seen:
            obs.DUAL_WRITE_PENDING.labels(service, d).set(0)
            obs.DUAL_WRITE_DEAD.labels(service, d).set(0)
            obs.DUAL_WRITE_OLDEST.labels(service).set(0.0)
        self._sampled = seen

    async def _maybe_sample(self) -> None:
        now = time.monotonic()
        if now < self._next_sample:
            return
        self._next_sample = now + self.sample_interval_s
        try:
            await self.sample_backlog()
        except Exception:  # noqa: BLE001 - metrics must never stop deliveries
            log.warning("could not sample the outbox backlog", exc_info=True)

    async def run_once(self) -> int:
        """Claim one batch and deliver it; returns how many records were attempted."""
        records = await self.outbox.claim(self.worker_id, self.concurrency, self.lease_s)
        if records:
            await asyncio.gather(*(self.deliver(r) for r in records))
        return len(records)

    async def run_forever(self) -> None:
        """Deliver until ``stop()``; a freed slot immediately claims the lane's next record."""
        inflight: set[asyncio.Task[str]] = set()
        try:
            while not self._stopping:
                await self._maybe_sample()
                free = self.concurrency - len(inflight)
                records: list[ReplayRecord] = []
                if free > 0:
                    try:
                        records = await self.outbox.claim(self.worker_id, free, self.lease_s)
                    except Exception:  # noqa: BLE001 - store hiccup: log, back off, keep going
                        log.exception("outbox claim failed")
                for r in records:
                    inflight.add(asyncio.create_task(self.deliver(r)))
                if records and len(inflight) < self.concurrency:
                    continue  # more lanes may be due right now
                self._wake.clear()
                waiters: set[asyncio.Future[Any]] = set(inflight)
                wake = asyncio.ensure_future(self._wake.wait())
                waiters.add(wake)
                done, _ = await asyncio.wait(
                    waiters, timeout=self.poll_interval_s, return_when=asyncio.FIRST_COMPLETED
                )
                wake.cancel()
                for t in done:
                    if t is not wake:
                        inflight.discard(t)
                        if not t.cancelled() and t.exception() is not None:
                            log.error("delivery task crashed", exc_info=t.exception())
        finally:
            if inflight:
                await asyncio.gather(*inflight, return_exceptions=True)

    def start(self) -> asyncio.Task[None]:
        """Run in the current event loop (the proxy's); pair with ``await stop()``."""
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self.run_forever())
        return self._task

    async def stop(self) -> None:
        """Finish in-flight deliveries (their leases would otherwise block lanes) and stop."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
