"""Gathering gate evidence from the edges: request windows, the diff store, the outbox and the
last data verification. Everything decision-like lives in ``gates``; this module only reads."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from .analysis import AnalysisConfig, MetricReading, render_query
from .gates import Evidence
from .safety import DataEvidence
from .windows import WindowStore

T = TypeVar("T")

BacklogFn = Callable[[str], tuple[int, int]]  # service -> (backlog, dead letters)



def records_dir(kind: str, state_url: str | None = None) -> Path:
    """Where older versions left `data backfill` / `data verify` results as files (``kind`` =
    backfill | verify). Read once as a fallback and imported into the state store."""
    from ..statedir import under

    return under(kind, state_url)


@contextlib.contextmanager
def _store(state_url: str | None, store: Any) -> Iterator[Any]:
    if store is not None:
        yield store
        return
    from .store import open_state_store

    s = open_state_store(state_url)
    try:
        yield s
    finally:
        s.close()


def write_record(kind: str, service: str, doc: dict, state_url: str | None = None, *, store: Any = None) -> None:
    """Keep a `data backfill` / `data verify` result in the state store (``--state``), where the
    gates, the safety rule and an in-cluster controller read it."""
    with _store(state_url, store) as s:
        s.put_record(kind, service, json.loads(json.dumps(doc, default=str)))


def read_record(kind: str, service: str, state_url: str | None = None, *, store: Any = None) -> dict | None:
    """The record from the state store; else a file an older version wrote under the state
    directory, imported into the store on this first read (so it is read from a file only once)."""
    with _store(state_url, store) as s:
        doc = s.get_record(kind, service)
        if doc is not None:
            return doc
        try:
            doc = json.loads((records_dir(kind, state_url) / f"{service}.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict):
            return None
        s.put_record(kind, service, doc)
        return doc


def _ts(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def outbox_backlog(outbox: Any) -> BacklogFn:
    """Adapt an async Outbox's ``status()`` to the synchronous controller."""

    def fn(service: str) -> tuple[int, int]:
        status = asyncio.run(outbox.status())
        s = status.get(service)
        return (s.backlog, s.dead_letters) if s else (0, 0)

    return fn


def last_verify_clean(service: str, verify_dir: str | Path | None = None, *, state_url: str | None = None,
                      store: Any = None) -> bool | None:
    """What the last `chariot-migrate data verify` found (from the state store); None when it
    never ran. ``verify_dir``: read a folder of result files instead (tests, old layouts)."""
    if verify_dir is not None and store is None and state_url is None:
        p = Path(verify_dir) / f"{service}.json"
        try:
            return bool(json.loads(p.read_text()).get("ok"))
        except (OSError, ValueError):
            return None
    doc = read_record("verify", service, state_url, store=store)
    return None if doc is None else bool(doc.get("ok"))


def new_signatures(routes: Any, first_seen: dict[str, float | None], since_ts: float) -> tuple[str, ...]:
    """Mismatch signatures of the window that are not known noise and not ignored, and that were
    first seen in the window. The diff store counts per minute, so "in the window" starts at the
    minute holding ``since_ts``: a signature that appeared just before a change in the same minute
    counts as new (hold) rather than slipping through. "insufficient" signatures count too: a
    difference the noise model cannot call yet is not a reason to promote."""
    start = (since_ts // 60) * 60
    # "path kind (id)": what differs for the reader, the id for `chariot-migrate diffs ignore ID`
    return tuple(sorted({
        f"{sig.path} {sig.kind} ({sig.signature})" for r in routes for sig in r.signatures
        if sig.classification != "noise" and not sig.ignored and (first_seen.get(sig.signature) or 0) >= start
    }))


class EvidenceSource:
    def __init__(self, windows: WindowStore, diff_store: Any = None, *, backlog: BacklogFn | None = None,
                 verify_dir: str | Path | None = None, ignores: Any = None, store: Any = None, state_url: str | None = None,
                 clock: Callable[[], float] = time.time, shadow_min_samples: int | None = None,
                 shadow_confidence: float = 0.95, analysis: AnalysisConfig | None = None,
                 prometheus: Any = None) -> None:
        """``analysis``: plan.analysis; ``prometheus``: its client (anything with
        ``query(name, query, at) -> MetricReading``; default: a PrometheusClient on its URL)."""
        self.windows = windows
        self.analysis = analysis if analysis is not None and analysis.active else None
        if self.analysis is not None and prometheus is None:
            from .prometheus import PrometheusClient

            url = self.analysis.prometheus or ""  # set: the analysis is active
            prometheus = PrometheusClient(url, timeout_s=self.analysis.timeout_s)
        self.prometheus = prometheus
        self.diff_store = diff_store
        self.backlog = backlog
        self.verify_dir = verify_dir
        self.store, self.state_url = store, state_url  # where `data verify` results are (the state store)
        self.ignores = ignores
        self.clock = clock
        # The shadow section's own classification settings, so gates and `report` agree.
        self.report_opts: dict = {"confidence": shadow_confidence}
        if shadow_min_samples is not None:
            self.report_opts["min_samples"] = shadow_min_samples

    def query_metrics(self, service: str, since_ts: float, step: str) -> tuple[tuple, ...]:
        """Each plan.analysis metric's reading over the window ``[since_ts, now]``."""
        assert self.analysis is not None and self.prometheus is not None
        now = self.clock()
        out = []
        for m in self.analysis.metrics:
            q = render_query(m.query, service=service, window_s=now - since_ts, step=step)
            try:
                reading = self.prometheus.query(m.name, q, now)
            except Exception as e:  # noqa: BLE001 — a failing edge is a reason to hold, never a crash
                reading = MetricReading(m.name, q, error=f"{type(e).__name__}: {e}")
            out.append((m, reading))
        return tuple(out)

    def verify_clean(self, service: str) -> bool | None:
        return last_verify_clean(service, self.verify_dir, state_url=self.state_url, store=self.store)

    def gather(self, service: str, since_ts: float, *, slo_p95_ms: float | None, shadow_step: bool,
               step: str = "") -> Evidence:
        win = self.windows.query(service, since_ts, now=self.clock())
        new, legacy = win.get("new"), win.get("legacy")
        pairs, match_rate = 0, None
        new_sigs: tuple[str, ...] = ()
        shadow_new_errors = shadow_new_total = 0
        shadow_new_p95 = shadow_legacy_p95 = None
        if self.diff_store is not None:
            from ..shadow.report import build_report

            now = self.clock()
            rep = build_report(self.diff_store, service=service, since_s=max(1.0, now - since_ts),
                               ignores=self.ignores, now=now, top=10_000, **self.report_opts)
            svc = next((s for s in rep.services if s.service == service), None)
            if svc is not None:
                pairs, match_rate = svc.pairs, svc.adjusted_match_rate
                full = build_report(self.diff_store, service=service, ignores=self.ignores, now=now, top=10_000,
                                    **self.report_opts)
                first_seen = {sig.signature: _ts(sig.first_seen) for s in full.services for r in s.routes
                              for sig in r.signatures}
                new_sigs = new_signatures(svc.routes, first_seen, since_ts)
                for r in svc.routes:
                    shadow_new_errors += r.errors.get("new", 0)
                    shadow_new_total += r.pairs
                    lat_new, lat_legacy = r.latency.get("new"), r.latency.get("legacy")
                    if lat_new and lat_new.p95_ms is not None:
                        shadow_new_p95 = max(shadow_new_p95 or 0, lat_new.p95_ms)
                    if lat_legacy and lat_legacy.p95_ms is not None:
                        shadow_legacy_p95 = max(shadow_legacy_p95 or 0, lat_legacy.p95_ms)
        backlog = dead = None
        if self.backlog is not None:
            backlog, dead = self.backlog(service)
        if shadow_step:
            # The new side only sees copies: judge it by the shadow pairs.
            new_requests, new_errors = shadow_new_total, shadow_new_errors
            new_p95, legacy_p95 = shadow_new_p95, shadow_legacy_p95
        else:
            new_requests = new.requests if new else 0
            new_errors = new.errors if new else 0
            new_p95 = new.percentile_ms(0.95) if new else None
            legacy_p95 = legacy.percentile_ms(0.95) if legacy else None
        return Evidence(new_requests=new_requests, new_errors=new_errors, new_p95_ms=new_p95,
                        legacy_p95_ms=legacy_p95, pairs=pairs, match_rate=match_rate, new_signatures=new_sigs,
                        backlog=backlog, dead_letters=dead, verify_clean=self.verify_clean(service),
                        slo_p95_ms=slo_p95_ms, shadow_step=shadow_step,
                        prometheus=self.analysis is not None,
                        metrics=self.query_metrics(service, since_ts, step)
                        if self.analysis is not None and not shadow_step else ())


class DataEvidenceSource:
    """What the safety rule (``safety.py``) needs about one service's data, read from the edges:
    the last backfill and verify records, the outbox's per-side backlog and dead letters."""

    def __init__(self, config: Any, state_url: str | None = None, *, outbox: Any = None,
                 clock: Callable[[], float] = time.time, store: Any = None) -> None:
        from ..statedir import adopt_stack_env

        self.config, self.state_url, self.clock, self.store = config, state_url, clock, store
        self._outbox = outbox
        adopt_stack_env(state_url)  # the mappers it may import read the stack's environment

    def _has_data(self, service: str) -> bool:
        from ..dual_write.mapping import MappingError, load_mapper

        if self.config is None:
            return True
        try:
            return load_mapper(self.config, service, required=False) is not None
        except MappingError:
            return True  # a mapper that cannot load: the data question is open, so assume there is data

    def outbox_status(self) -> dict:
        from ..dual_write.config import outbox_url
        from ..dual_write.outbox import open_outbox

        async def read() -> dict:
            ob = self._outbox or open_outbox(outbox_url(self.config.dual_write if self.config else None,
                                                        state_url=self.state_url))
            try:
                return await ob.status()
            finally:
                if self._outbox is None:
                    await ob.aclose()

        return _run(read())

    def gather(self, service: str, outbox_status: dict | Exception | None = None) -> DataEvidence:
        """``outbox_status``: a status (or the error reading it) already read for several services."""
        backfill = read_record("backfill", service, self.state_url, store=self.store) or {}
        verify = read_record("verify", service, self.state_url, store=self.store) or {}
        pending: dict[str, int] = {}
        dead: dict[str, int] = {}
        error = None
        try:
            status = self.outbox_status() if outbox_status is None else outbox_status
            if isinstance(status, Exception):
                raise status
            st = status.get(service)
        except Exception as e:  # noqa: BLE001 — an unreadable outbox is evidence too (it blocks)
            st, error = None, f"{type(e).__name__}: {e}"
        if st is not None:
            for side, counts in st.per_target.items():
                pending[side], dead[side] = counts.pending, counts.dead
        return DataEvidence(
            now=self.clock(), has_data=self._has_data(service),
            backfill_started_at=backfill.get("started_at") if backfill.get("finished_at") else None,
            backfill_finished_at=backfill.get("finished_at"),
            verify_at=verify.get("at"), verify_ok=verify.get("ok"),
            pending=pending, dead=dead, outbox_error=error)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, also when called from inside a running loop (admin API)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class StaticDataEvidence:
    """Data evidence given as data (an embedding system that knows its stores are in sync, and
    tests): ``StaticDataEvidence()`` says "no data of its own, nothing in flight"."""

    def __init__(self, evidence: DataEvidence | None = None, clock: Callable[[], float] = time.time) -> None:
        self.evidence, self.clock = evidence, clock

    def outbox_status(self) -> dict:
        return {}

    def gather(self, service: str, outbox_status: dict | Exception | None = None) -> DataEvidence:
        import dataclasses

        ev = self.evidence or DataEvidence(now=0.0, has_data=False)
        return dataclasses.replace(ev, now=self.clock())
