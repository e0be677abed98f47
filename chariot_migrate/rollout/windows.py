"""Request aggregates per (service, side) over time: what SLO gates read.

Proxy workers count requests, 5xx and a latency histogram in memory per second and flush every
few seconds into a shared store — SQLite on one host, Redis across replicas — so the rollout
controller sees the whole fleet. The store keeps two resolutions: per second for the last
FINE_RETENTION_S (so "only data since the last change" is exact to the second, even with short
gate windows) and per minute for long reports. Pure helpers (histogram, percentiles, roll-ups,
which rows a query reads) are separate from the stores.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..observability.latency import LATENCY_BUCKETS

# Upper bounds in milliseconds; the last bucket is open-ended. The same edges as the Prometheus
# request histograms (observability.metrics.LATENCY_BUCKETS, in seconds), so the gates' p95 and
# Grafana's histogram_quantile agree.
BOUNDS_MS = tuple(round(b * 1000, 6) for b in LATENCY_BUCKETS)
# Bucket rows are stored by index: the tables/fields of this layout are named apart from the
# earlier 19-bucket layout's (``winb``/``b<i>``), so old indexes are never read as these buckets.
_BTABLE = {"win": "winh", "win_s": "winh_s"}
_BFIELD = "h"
DEFAULT_METRICS_URL = "sqlite:///.chariot-migrate/metrics.db"
FINE_RETENTION_S = 3600  # per-second rows kept this long; older windows read minute roll-ups
SIDES = ("legacy", "new")


def bucket_of(ms: float) -> int:
    for i, b in enumerate(BOUNDS_MS):
        if ms <= b:
            return i
    return len(BOUNDS_MS)


@dataclass
class SideStats:
    requests: int = 0
    errors: int = 0  # status >= 500 or no response
    buckets: dict[int, int] = field(default_factory=dict)

    def add(self, other: SideStats) -> None:
        self.requests += other.requests
        self.errors += other.errors
        for b, n in other.buckets.items():
            self.buckets[b] = self.buckets.get(b, 0) + n

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def percentile_ms(self, q: float) -> float | None:
        """Upper bound of the bucket holding the q-quantile (overstates by at most one bucket)."""
        total = sum(self.buckets.values())
        if not total:
            return None
        need = q * total
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen >= need:
                return float(BOUNDS_MS[b]) if b < len(BOUNDS_MS) else float("inf")
        return float("inf")


Key = tuple[str, str, int]  # service, side, epoch second


class WindowStore(Protocol):
    def add(self, rows: dict[Key, SideStats]) -> None: ...

    def query(self, service: str, since_ts: float, now: float | None = None) -> dict[str, SideStats]:
        """Sums of every side's rows from ``since_ts`` on (second-exact while within FINE_RETENTION_S)."""
        ...

    def close(self) -> None: ...


def rollup_minutes(rows: dict[Key, SideStats]) -> dict[Key, SideStats]:
    """Per-second rows → per-minute rows (minute = epoch second // 60)."""
    out: dict[Key, SideStats] = defaultdict(SideStats)
    for (svc, side, sec), s in rows.items():
        out[(svc, side, sec // 60)].add(s)
    return dict(out)


@dataclass(frozen=True)
class QueryPlan:
    minutes: tuple[int, int] | None  # [lo, hi) minute indexes read from the roll-ups, if any
    fine_from: int  # first epoch second read from the per-second rows


def query_plan(since_ts: float, now: float) -> QueryPlan:
    """Which rows cover ``[since_ts, now]``: per-second rows from the first whole second at or after
    ``since_ts`` (nothing before a change leaks in); only when ``since_ts`` is older than the
    per-second retention, minute roll-ups cover the older part (starting at since's minute)."""
    fine_from = math.ceil(since_ts)
    horizon_min = math.ceil((now - FINE_RETENTION_S + 60) / 60)  # first minute surely all in fine rows
    if fine_from >= horizon_min * 60:
        return QueryPlan(None, fine_from)
    return QueryPlan((int(since_ts // 60), horizon_min), horizon_min * 60)


class SQLiteWindowStore:
    """Two tables per resolution: ``win_s``/``winh_s`` (per second, pruned after FINE_RETENTION_S)
    and ``win``/``winh`` (per minute, kept for reports)."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self._local = threading.local()
        self._last_prune = 0.0
        self._conn().executescript("""
            CREATE TABLE IF NOT EXISTS win (service TEXT, side TEXT, minute INTEGER, requests INTEGER,
              errors INTEGER, PRIMARY KEY (service, side, minute));
            CREATE TABLE IF NOT EXISTS winh (service TEXT, side TEXT, minute INTEGER, bucket INTEGER, n INTEGER,
              PRIMARY KEY (service, side, minute, bucket));
            CREATE TABLE IF NOT EXISTS win_s (service TEXT, side TEXT, sec INTEGER, requests INTEGER,
              errors INTEGER, PRIMARY KEY (service, side, sec));
            CREATE TABLE IF NOT EXISTS winh_s (service TEXT, side TEXT, sec INTEGER, bucket INTEGER, n INTEGER,
              PRIMARY KEY (service, side, sec, bucket));""")

    def _conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "c", None)
        if c is None:
            c = sqlite3.connect(self.path, timeout=5, isolation_level=None)
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=NORMAL")
            self._local.c = c
        return c

    def add(self, rows: dict[Key, SideStats]) -> None:
        c = self._conn()
        now = self.clock()
        c.execute("BEGIN IMMEDIATE")
        try:
            for table, key_rows in (("win_s", rows), ("win", rollup_minutes(rows))):
                for (svc, side, t), s in key_rows.items():
                    col = "sec" if table == "win_s" else "minute"
                    c.execute(f"INSERT INTO {table} (service, side, {col}, requests, errors) VALUES (?,?,?,?,?) "
                              "ON CONFLICT DO UPDATE SET requests = requests + excluded.requests, "
                              "errors = errors + excluded.errors", (svc, side, t, s.requests, s.errors))
                    c.executemany(f"INSERT INTO {_BTABLE[table]} (service, side, {col}, bucket, n) "
                                  "VALUES (?,?,?,?,?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
                                  [(svc, side, t, b, n) for b, n in s.buckets.items()])
            if now - self._last_prune > 60:
                self._last_prune = now
                cutoff = int(now - FINE_RETENTION_S)
                c.execute("DELETE FROM win_s WHERE sec < ?", (cutoff,))
                c.execute("DELETE FROM winh_s WHERE sec < ?", (cutoff,))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def _sum(self, out: dict[str, SideStats], table: str, col: str, service: str, lo: int, hi: int | None) -> None:
        c = self._conn()
        cond, args = f"service=? AND {col}>=?", [service, lo]
        if hi is not None:
            cond += f" AND {col}<?"
            args.append(hi)
        for side, req, err in c.execute(f"SELECT side, SUM(requests), SUM(errors) FROM {table} WHERE {cond} "
                                        "GROUP BY side", args):
            out[side].requests += int(req)
            out[side].errors += int(err)
        for side, b, n in c.execute(f"SELECT side, bucket, SUM(n) FROM {_BTABLE[table]} WHERE {cond} "
                                    "GROUP BY side, bucket", args):
            out[side].buckets[int(b)] = out[side].buckets.get(int(b), 0) + int(n)

    def query(self, service: str, since_ts: float, now: float | None = None) -> dict[str, SideStats]:
        out: dict[str, SideStats] = defaultdict(SideStats)
        plan = query_plan(since_ts, self.clock() if now is None else now)
        if plan.minutes is not None:
            self._sum(out, "win", "minute", service, plan.minutes[0], plan.minutes[1])
        self._sum(out, "win_s", "sec", service, plan.fine_from, None)
        return {k: v for k, v in out.items() if v.requests}

    def close(self) -> None:
        c = getattr(self._local, "c", None)
        if c is not None:
            c.close()
            self._local.c = None


class RedisWindowStore:
    """Per-second hashes (``{p}{svc}:s:{sec}:{side}``, indexed by a sorted set, expiring after
    FINE_RETENTION_S) and per-minute hashes (``{p}{svc}:{minute}:{side}``, kept MINUTE_TTL_S)."""

    MINUTE_TTL_S = 8 * 86400  # a week of phase report plus a day

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:

        from ..redis_conn import sync_redis
        from ..redis_keys import split_redis_url

        clean, prefix = split_redis_url(url, "chariot-migrate:")
        self.prefix = prefix + "win:"
        self._r = sync_redis(clean, socket_timeout=2, decode_responses=True)
        self.clock = clock

    @staticmethod
    def _incr(p: Any, k: str, s: SideStats, ttl: int) -> None:  # p: a Redis pipeline
        p.hincrby(k, "requests", s.requests)
        p.hincrby(k, "errors", s.errors)
        for b, n in s.buckets.items():
            p.hincrby(k, f"{_BFIELD}{b}", n)
        p.expire(k, ttl)

    def add(self, rows: dict[Key, SideStats]) -> None:
        p = self._r.pipeline(transaction=False)
        cutoff = int(self.clock() - FINE_RETENTION_S)
        for (svc, side, sec), s in rows.items():
            self._incr(p, f"{self.prefix}{svc}:s:{sec}:{side}", s, FINE_RETENTION_S)
            p.zadd(f"{self.prefix}{svc}:secs", {str(sec): sec})
        for svc in {k[0] for k in rows}:
            p.zremrangebyscore(f"{self.prefix}{svc}:secs", "-inf", f"({cutoff}")
            p.expire(f"{self.prefix}{svc}:secs", FINE_RETENTION_S)
        for (svc, side, minute), s in rollup_minutes(rows).items():
            self._incr(p, f"{self.prefix}{svc}:{minute}:{side}", s, self.MINUTE_TTL_S)
            p.sadd(f"{self.prefix}{svc}:minutes", minute)
            p.expire(f"{self.prefix}{svc}:minutes", self.MINUTE_TTL_S)
        p.execute()

    def _sum(self, out: dict[str, SideStats], keys: list[str]) -> None:
        p = self._r.pipeline(transaction=False)
        for k in keys:
            p.hgetall(k)
        for k, h in zip(keys, p.execute(), strict=True):
            if h:
                side = k.rsplit(":", 1)[1]
                out[side].add(SideStats(int(h.get("requests", 0)), int(h.get("errors", 0)),
                                        {int(f[1:]): int(v) for f, v in h.items() if f.startswith(_BFIELD)}))

    def query(self, service: str, since_ts: float, now: float | None = None) -> dict[str, SideStats]:
        plan = query_plan(since_ts, self.clock() if now is None else now)
        out: dict[str, SideStats] = defaultdict(SideStats)
        keys: list[str] = []
        if plan.minutes is not None:
            lo, hi = plan.minutes
            minutes = [int(m) for m in self._r.smembers(f"{self.prefix}{service}:minutes") if lo <= int(m) < hi]
            keys += [f"{self.prefix}{service}:{m}:{side}" for m in minutes for side in SIDES]
        secs = [int(s) for s in self._r.zrangebyscore(f"{self.prefix}{service}:secs", plan.fine_from, "+inf")]
        keys += [f"{self.prefix}{service}:s:{s}:{side}" for s in secs for side in SIDES]
        self._sum(out, keys)
        return {k: v for k, v in out.items() if v.requests}

    def close(self) -> None:
        self._r.close()


def open_window_store(url: str | None = None) -> WindowStore:
    url = url or DEFAULT_METRICS_URL
    if url.startswith("sqlite://"):
        return SQLiteWindowStore(url.removeprefix("sqlite:///"))
    if url.startswith(("redis://", "rediss://")):
        return RedisWindowStore(url)
    raise ValueError(f"unknown metrics store URL {url!r}: use sqlite:///path.db or redis://host:port/0")


class WindowRecorder:
    """In-memory accumulation on the hot path (a dict update); flushed in a thread by the caller."""

    def __init__(self) -> None:
        self._rows: dict[Key, SideStats] = {}
        self._lock = threading.Lock()

    def observe(self, service: str, side: str, status: int, seconds: float, now: float | None = None) -> None:
        key = (service, side, int(now if now is not None else time.time()))
        with self._lock:
            s = self._rows.get(key)
            if s is None:
                s = self._rows[key] = SideStats()
            s.requests += 1
            if status >= 500:
                s.errors += 1
            b = bucket_of(seconds * 1000)
            s.buckets[b] = s.buckets.get(b, 0) + 1

    def take(self) -> dict[Key, SideStats]:
        with self._lock:
            rows, self._rows = self._rows, {}
        return rows


def merge(parts: Iterable[dict[str, SideStats]]) -> dict[str, SideStats]:
    out: dict[str, SideStats] = defaultdict(SideStats)
    for p in parts:
        for side, s in p.items():
            out[side].add(s)
    return dict(out)
