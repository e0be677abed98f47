"""Gathering gate evidence from the edges: request windows, the diff store, the outbox and the
last data verification. Everything decision-like lives in ``gates``; this module only reads."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from .gates import Evidence
from .windows import WindowStore

BacklogFn = Callable[[str], tuple[int, int]]  # service -> (backlog, dead letters)

DEFAULT_VERIFY_DIR = ".chariot-migrate/verify"


def _ts(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def outbox_backlog(outbox) -> BacklogFn:
    """Adapt an async Outbox's ``status()`` to the synchronous controller."""

    def fn(service: str) -> tuple[int, int]:
        status = asyncio.run(outbox.status())
        s = status.get(service)
        return (s.backlog, s.dead_letters) if s else (0, 0)

    return fn


def last_verify_clean(service: str, verify_dir: str | Path = DEFAULT_VERIFY_DIR) -> bool | None:
    """`chariot-migrate data verify` writes its result here; None when it never ran."""
    p = Path(verify_dir) / f"{service}.json"
    if not p.exists():
        return None
    try:
        return bool(json.loads(p.read_text()).get("ok"))
    except (OSError, ValueError):
        return None


def new_signatures(routes, first_seen: dict[str, float | None], since_ts: float) -> tuple[str, ...]:
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
    def __init__(self, windows: WindowStore, diff_store=None, *, backlog: BacklogFn | None = None,
                 verify_dir: str | Path = DEFAULT_VERIFY_DIR, ignores=None,
                 clock: Callable[[], float] = time.time, shadow_min_samples: int | None = None,
                 shadow_confidence: float = 0.95) -> None:
        self.windows = windows
        self.diff_store = diff_store
        self.backlog = backlog
        self.verify_dir = verify_dir
        self.ignores = ignores
        self.clock = clock
        # The shadow section's own classification settings, so gates and `report` agree.
        self.report_opts: dict = {"confidence": shadow_confidence}
        if shadow_min_samples is not None:
            self.report_opts["min_samples"] = shadow_min_samples

    def gather(self, service: str, since_ts: float, *, slo_p95_ms: float | None, shadow_step: bool) -> Evidence:
        win = self.windows.query(service, since_ts, now=self.clock())
        new, legacy = win.get("new"), win.get("legacy")
        pairs, match_rate, new_sigs = 0, None, ()
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
                        backlog=backlog, dead_letters=dead, verify_clean=last_verify_clean(service, self.verify_dir),
                        slo_p95_ms=slo_p95_ms, shadow_step=shadow_step)
