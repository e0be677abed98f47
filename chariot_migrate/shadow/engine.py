"""The shadow engine: what the proxy calls after it has answered the client.

``submit`` never blocks and never raises: a full queue drops the job and counts it. Workers send
the copy to the other side (``X-Migrate-Shadow: 1``), on sampled jobs call the primary side again
(A/A, for the noise model), compare, and hand records to a flusher that writes one batch per
``flush_interval_s`` to the diff store in a worker thread — the event loop never waits on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from chariot_migrate.observability import metrics as obs
from chariot_migrate.transport import HttpRequest, HttpResponse, Transport, UpstreamError

from ..redact import (
    redact_body,
    redact_headers,
    redact_known,
    redact_path,
    redact_path_value,
    redact_query,
    secrets_in,
)
from .compare import Comparison, SignatureHit, compare_pair, to_normalised
from .normalise import NormaliseRules
from .records import HitRecord, PairRecord
from .store import DiffStore

__all__ = ["ShadowEngine", "ShadowJob", "compare_pair", "Comparison", "SHADOW_HEADER"]

log = logging.getLogger("chariot_migrate.shadow")

SHADOW_HEADER = "x-migrate-shadow"
SIDES = ("legacy", "new")


@dataclass
class ShadowJob:
    service: str
    route_id: str
    request: HttpRequest
    primary_side: str  # "legacy" | "new"
    primary: HttpResponse  # body already buffered (.body)
    primary_latency_s: float
    primary_transport: Transport
    shadow_transport: Transport
    timeout_s: float
    noise_sample: bool  # also call the primary side a second time (A/A)
    rules: NormaliseRules
    ts: float | None = None  # when the primary answered (defaults to submit time)


Outcome = HttpResponse | UpstreamError


def _other(side: str) -> str:
    return "new" if side == "legacy" else "legacy"


def _is_error(o: Outcome) -> bool:
    return isinstance(o, BaseException) or o.status >= 500


def comparison_result(record: PairRecord, shadow_failed: bool) -> str:
    """match | mismatch | noise | error for one compared pair (pure; the metrics' label).

    ``noise``: every differing path also differed between two calls to the same side (A/A), so
    this one pair is no evidence of a real difference; the report's noise model decides overall.
    """
    if shadow_failed:
        return "error"
    if not record.hits:
        return "match"
    if record.aa_paths is not None and all(h.path in record.aa_paths for h in record.hits):
        return "noise"
    return "mismatch"


class ShadowEngine:
    def __init__(
        self,
        store: DiffStore,
        *,
        concurrency: int = 8,
        queue_size: int = 1000,
        flush_interval_s: float = 0.5,
        max_batch: int = 1000,
        body_limit: int = 4096,
    ) -> None:
        self.store = store
        self.concurrency = concurrency
        self.flush_interval_s = flush_interval_s
        self.max_batch = max_batch
        self.body_limit = body_limit
        self._queue: asyncio.Queue[ShadowJob] = asyncio.Queue(maxsize=queue_size)
        self._pending: list[PairRecord] = []
        self._workers: list[asyncio.Task[None]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._closed = False
        self._examples_built: dict[str, int] = defaultdict(int)
        self._stats = dict.fromkeys(
            ("submitted", "completed", "dropped", "errors", "shadow_errors", "noise_sample_errors", "store_errors", "flushed"),
            0,
        )

    # --- public API ---------------------------------------------------------------------------

    def submit(self, job: ShadowJob) -> bool:
        """Queue a comparison. Never blocks; False (and counted) when full or closed."""
        if self._closed:
            self._stats["dropped"] += 1
            obs.SHADOW_DROPS.labels(job.service, "closed").inc()
            return False
        if job.ts is None:
            job.ts = time.time()
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._stats["dropped"] += 1
            obs.SHADOW_DROPS.labels(job.service, "queue_full").inc()
            return False
        self._stats["submitted"] += 1
        return True

    async def start(self) -> None:
        if self._workers:
            return
        try:
            counts = await asyncio.to_thread(self.store.example_counts)
            self._examples_built.update(counts)
        except Exception:  # a cold store is fine; the store caps examples anyway
            log.warning("shadow: could not read example counts from the diff store", exc_info=True)
        self._workers = [asyncio.create_task(self._worker(), name=f"shadow-worker-{i}") for i in range(self.concurrency)]
        self._flusher = asyncio.create_task(self._flush_loop(), name="shadow-flusher")

    async def join(self) -> None:
        """Wait until every queued job is compared and written (tests, graceful shutdown)."""
        await self._queue.join()
        await self.flush()

    async def aclose(self, *, drain_timeout_s: float = 5.0) -> None:
        """Stop accepting, finish queued jobs (bounded wait), flush everything to the store."""
        self._closed = True
        if self._workers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), drain_timeout_s)
        for t in [*self._workers, *([self._flusher] if self._flusher else [])]:
            t.cancel()
        for t in [*self._workers, *([self._flusher] if self._flusher else [])]:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._workers, self._flusher = [], None
        await self.flush()

    @property
    def stats(self) -> dict[str, int]:
        return {**self._stats, "queued": self._queue.qsize(), "pending_records": len(self._pending)}

    async def flush(self) -> None:
        async with self._flush_lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self.store.record, batch)
                self._stats["flushed"] += len(batch)
            except Exception as e:
                self._stats["store_errors"] += 1
                for r in batch:
                    obs.SHADOW_DROPS.labels(r.service, "store_error").inc()
                log.warning("shadow: dropped a batch of %d comparisons: diff store write failed (%s)", len(batch), type(e).__name__)

    # --- internals ------------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            self._wake.clear()
            await self.flush()

    async def _worker(self) -> None:
        while True:
            job = await self._queue.get()
            t0 = time.perf_counter()
            try:
                record = await self._run(job)
                obs.SHADOW_LATENCY.labels(job.service).observe(time.perf_counter() - t0)
                self._pending.append(record)
                self._stats["completed"] += 1
                if len(self._pending) >= self.max_batch:
                    self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                self._stats["errors"] += 1
                obs.SHADOW_COMPARISONS.labels(job.service, job.route_id, "error").inc()
                log.warning("shadow: comparison failed for route %s", job.route_id, exc_info=True)
            finally:
                self._queue.task_done()

    async def _call(self, transport: Transport, request: HttpRequest, timeout: float) -> tuple[Outcome, float]:
        async def go() -> HttpResponse:
            resp = await transport.send(request, timeout)
            await resp.read()
            return resp

        t0 = time.perf_counter()
        try:
            out: Outcome = await asyncio.wait_for(go(), timeout)
        except TimeoutError:
            out = UpstreamError("timeout", f"no answer within {timeout}s")
        except UpstreamError as e:
            out = e
        except Exception as e:  # a broken transport must not kill the worker
            out = UpstreamError("protocol", type(e).__name__)
        return out, time.perf_counter() - t0

    async def _run(self, job: ShadowJob) -> PairRecord:
        request = dataclasses.replace(
            job.request, headers=[*(h for h in job.request.headers if h[0] != SHADOW_HEADER), (SHADOW_HEADER, "1")]
        )
        calls = [self._call(job.shadow_transport, request, job.timeout_s)]
        if job.noise_sample:
            calls.append(self._call(job.primary_transport, request, job.timeout_s))
        results = await asyncio.gather(*calls)
        shadow, shadow_lat = results[0]
        if isinstance(shadow, BaseException):
            self._stats["shadow_errors"] += 1
        primary_side, shadow_side = job.primary_side, _other(job.primary_side)
        rules = job.rules
        primary_n = to_normalised(job.primary, rules)
        shadow_n = to_normalised(shadow, rules)
        by_side = {primary_side: (job.primary, primary_n, job.primary_latency_s), shadow_side: (shadow, shadow_n, shadow_lat)}
        ab = compare_pair(job.route_id, by_side["legacy"][1], by_side["new"][1], rules)
        aa_paths = None
        if job.noise_sample:
            again, _ = results[1]
            if isinstance(again, BaseException):
                # A second call that failed (a timeout under load) says nothing about which fields
                # vary by themselves; counted as an A/A pair it would lower every noisy field's
                # A/A rate and turn timestamps and request ids into "differences".
                self._stats["noise_sample_errors"] += 1
            else:
                aa_paths = compare_pair(job.route_id, primary_n, to_normalised(again, rules), rules).paths
        record = PairRecord(
            service=job.service,
            route=job.route_id,
            ts=job.ts or time.time(),
            hits=[HitRecord(h.signature, h.path, h.kind, h.value_class) for h in ab.hits],
            aa_paths=aa_paths,
            latency={s: by_side[s][2] for s in SIDES},
            error={s: _is_error(by_side[s][0]) for s in SIDES},
        )
        obs.SHADOW_COMPARISONS.labels(job.service, job.route_id,
                                      comparison_result(record, isinstance(shadow, BaseException))).inc()
        for hit in ab.hits:
            obs.SHADOW_MISMATCHES.labels(job.service, job.route_id, hit.kind).inc()
        for hit in ab.hits:
            if self._examples_built[hit.signature] >= self.store.max_examples:
                record.examples_skipped += 1
                continue
            self._examples_built[hit.signature] += 1
            record.examples.append((hit.signature, self._example(job, hit, by_side)))
        return record

    def _example(self, job: ShadowJob, hit: SignatureHit, by_side: dict[str, Any]) -> dict[str, Any]:
        """A stored example: everything redacted before it leaves this function."""
        d = hit.first
        req = job.request
        ex: dict[str, Any] = {
            "ts": job.ts,
            "signature": hit.signature,
            "path": d.path,
            "kind": d.kind,
            "legacy_value": self._short(redact_path_value(d.path, d.left)),
            "new_value": self._short(redact_path_value(d.path, d.right)),
            "method": req.method,
            "request_path": redact_path(req.path, req.path_params),
            "query": redact_query(req.query),
            "request_headers": redact_headers(req.headers),
            "primary_side": job.primary_side,
        }
        for side in SIDES:
            outcome, _, lat = by_side[side]
            if isinstance(outcome, BaseException):
                ex[f"{side}_status"] = f"error:{getattr(outcome, 'kind', 'error')}"
                ex[f"{side}_body"] = ""
            else:
                ex[f"{side}_status"] = outcome.status
                ex[f"{side}_body"] = redact_body(outcome.body, limit=self.body_limit)
            ex[f"{side}_latency_ms"] = round(lat * 1000, 3)
        # A credential known by its place in a body (a webhook pin in a key) also leaves the
        # differing values, which carry no such context on their own.
        bodies = [o.body.decode("utf-8", "replace") for o, _, _ in by_side.values() if not isinstance(o, BaseException)]
        return redact_known(ex, secrets_in(*bodies, path_params=req.path_params))

    def _short(self, value: Any) -> Any:
        if isinstance(value, dict | list):
            text = json.dumps(value, default=str, ensure_ascii=False)
            return value if len(text) <= 512 else text[:512] + "…"
        if isinstance(value, str) and len(value) > 512:
            return value[:512] + "…"
        return value
