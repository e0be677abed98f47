"""What the engine hands to a diff store, and what a store gives back (plain data).

Aggregation of a batch into per-minute counters is pure and shared by every backend, so the
SQLite and Redis stores only differ in how they add the same deltas.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

SIDES = ("legacy", "new")

# Fixed log-spaced latency buckets: 0.1 ms · 1.15^i up to > 2 min. Percentiles report a bucket's
# upper bound, so they are conservative by at most 15 %.
LATENCY_BOUNDS: tuple[float, ...] = tuple(1e-4 * 1.15**i for i in range(101))


def latency_bucket(seconds: float) -> int:
    return min(bisect.bisect_left(LATENCY_BOUNDS, max(seconds, 0.0)), len(LATENCY_BOUNDS) - 1)


def percentile(hist: dict[int, int] | list[int], q: float) -> float | None:
    """q-quantile (0..1) of a bucketed histogram, as the bucket's upper bound in seconds."""
    items = sorted(hist.items()) if isinstance(hist, dict) else list(enumerate(hist))
    total = sum(n for _, n in items)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for idx, n in items:
        seen += n
        if seen >= rank:
            return LATENCY_BOUNDS[idx]
    return LATENCY_BOUNDS[items[-1][0]]


@dataclass(frozen=True, slots=True)
class HitRecord:
    signature: str
    path: str  # collapsed
    kind: str
    value_class: str


@dataclass(slots=True)
class PairRecord:
    """One shadowed request: the A/B comparison and, when sampled, the A/A one."""

    service: str
    route: str
    ts: float  # epoch seconds
    hits: list[HitRecord] = field(default_factory=list)  # A/B signatures (empty = exact match)
    aa_paths: frozenset[str] | None = None  # collapsed paths differing in A/A; None = not sampled
    latency: dict[str, float | None] = field(default_factory=dict)  # side → seconds
    error: dict[str, bool] = field(default_factory=dict)  # side → status >= 500 or no response
    examples: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (signature, redacted)
    examples_skipped: int = 0  # examples the engine did not build because the store is full


def minute_of(ts: float) -> int:
    return int(ts // 60) * 60


def set_id(signatures: frozenset[str]) -> str:
    return hashlib.blake2b("|".join(sorted(signatures)).encode(), digest_size=8).hexdigest()


RouteKey = tuple[int, str, str]  # (minute, service, route)


@dataclass
class BatchDelta:
    """Counter increments of a batch, keyed per (minute, service, route)."""

    counters: dict[RouteKey, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    latency: dict[RouteKey, dict[tuple[str, int], int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    sigs: dict[RouteKey, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    ab_paths: dict[RouteKey, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    aa_paths: dict[RouteKey, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    sets: dict[RouteKey, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    sig_meta: dict[str, tuple[str, str, str, str, str]] = field(default_factory=dict)  # sig → service, route, path, kind, class
    set_meta: dict[str, list[str]] = field(default_factory=dict)
    examples: list[tuple[str, str, str, float, str]] = field(default_factory=list)  # service, route, sig, ts, json


COUNTER_FIELDS = ("pairs", "exact", "aa_pairs", "err_legacy", "err_new", "n_legacy", "n_new", "examples_dropped")


def aggregate(batch: list[PairRecord]) -> BatchDelta:
    d = BatchDelta()
    for r in batch:
        key = (minute_of(r.ts), r.service, r.route)
        c = d.counters[key]
        c["pairs"] += 1
        if not r.hits:
            c["exact"] += 1
        sigs = frozenset(h.signature for h in r.hits)
        sid = set_id(sigs)
        d.sets[key][sid] += 1
        d.set_meta.setdefault(sid, sorted(sigs))
        for h in r.hits:
            d.sigs[key][h.signature] += 1
            d.sig_meta.setdefault(h.signature, (r.service, r.route, h.path, h.kind, h.value_class))
        for p in {h.path for h in r.hits}:
            d.ab_paths[key][p] += 1
        if r.aa_paths is not None:
            c["aa_pairs"] += 1
            for p in r.aa_paths:
                d.aa_paths[key][p] += 1
        for side in SIDES:
            lat = r.latency.get(side)
            if lat is not None:
                c[f"n_{side}"] += 1
                d.latency[key][(side, latency_bucket(lat))] += 1
            if r.error.get(side):
                c[f"err_{side}"] += 1
        c["examples_dropped"] += r.examples_skipped
        for sig, ex in r.examples:
            d.examples.append((r.service, r.route, sig, r.ts, json.dumps(ex, default=str, ensure_ascii=False)))
    return d


@dataclass(frozen=True, slots=True)
class SignatureMeta:
    path: str
    kind: str
    value_class: str


@dataclass
class MinutePoint:
    pairs: int = 0
    exact: int = 0
    sets: dict[frozenset[str], int] = field(default_factory=dict)


@dataclass
class RouteData:
    """Everything a store knows about one (service, route) over a time window."""

    service: str
    route: str
    pairs: int = 0
    exact: int = 0
    aa_pairs: int = 0
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIDES, 0))
    requests: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIDES, 0))
    latency: dict[str, dict[int, int]] = field(default_factory=lambda: {s: {} for s in SIDES})
    signatures: dict[str, int] = field(default_factory=dict)
    sig_meta: dict[str, SignatureMeta] = field(default_factory=dict)
    sig_first_seen: dict[str, int] = field(default_factory=dict)
    sig_last_seen: dict[str, int] = field(default_factory=dict)
    ab_paths: dict[str, int] = field(default_factory=dict)
    aa_paths: dict[str, int] = field(default_factory=dict)
    diff_sets: dict[frozenset[str], int] = field(default_factory=dict)
    timeline: dict[int, MinutePoint] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    examples_dropped: int = 0

    def add_counters(self, minute: int, c: dict[str, int]) -> None:
        self.pairs += c.get("pairs", 0)
        self.exact += c.get("exact", 0)
        self.aa_pairs += c.get("aa_pairs", 0)
        for side in SIDES:
            self.errors[side] += c.get(f"err_{side}", 0)
            self.requests[side] += c.get(f"n_{side}", 0)
        self.examples_dropped += c.get("examples_dropped", 0)
        pt = self.timeline.setdefault(minute, MinutePoint())
        pt.pairs += c.get("pairs", 0)
        pt.exact += c.get("exact", 0)

    def add_latency(self, side: str, idx: int, n: int) -> None:
        h = self.latency.setdefault(side, {})
        h[idx] = h.get(idx, 0) + n

    def add_sig(self, minute: int, sig: str, n: int) -> None:
        self.signatures[sig] = self.signatures.get(sig, 0) + n
        self.sig_first_seen[sig] = min(self.sig_first_seen.get(sig, minute), minute)
        self.sig_last_seen[sig] = max(self.sig_last_seen.get(sig, minute), minute)

    def add_set(self, minute: int, sigs: frozenset[str], n: int) -> None:
        self.diff_sets[sigs] = self.diff_sets.get(sigs, 0) + n
        pt = self.timeline.setdefault(minute, MinutePoint())
        pt.sets[sigs] = pt.sets.get(sigs, 0) + n
