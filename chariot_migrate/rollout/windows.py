"""Per-minute request aggregates per (service, side): what SLO gates read.

Proxy workers count requests, 5xx and a latency histogram in memory and flush every few seconds
into a shared store — SQLite on one host, Redis across replicas — so the rollout controller sees
the whole fleet. Pure helpers (histogram, percentiles, merging) are separate from the stores.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, urlparse

# Upper bounds in milliseconds; the last bucket is open-ended.
BOUNDS_MS = (1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10000, 30000)
DEFAULT_METRICS_URL = "sqlite:///.chariot-migrate/metrics.db"


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


Key = tuple[str, str, int]  # service, side, minute


class WindowStore(Protocol):
    def add(self, rows: dict[Key, SideStats]) -> None: ...

    def query(self, service: str, since_ts: float) -> dict[str, SideStats]: ...

    def close(self) -> None: ...


class SQLiteWindowStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conn().executescript("""
            CREATE TABLE IF NOT EXISTS win (service TEXT, side TEXT, minute INTEGER, requests INTEGER,
              errors INTEGER, PRIMARY KEY (service, side, minute));
            CREATE TABLE IF NOT EXISTS winb (service TEXT, side TEXT, minute INTEGER, bucket INTEGER, n INTEGER,
              PRIMARY KEY (service, side, minute, bucket));""")

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
        c.execute("BEGIN IMMEDIATE")
        try:
            for (svc, side, minute), s in rows.items():
                c.execute("INSERT INTO win VALUES (?,?,?,?,?) ON CONFLICT DO UPDATE SET "
                          "requests = requests + excluded.requests, errors = errors + excluded.errors",
                          (svc, side, minute, s.requests, s.errors))
                c.executemany("INSERT INTO winb VALUES (?,?,?,?,?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
                              [(svc, side, minute, b, n) for b, n in s.buckets.items()])
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def query(self, service: str, since_ts: float) -> dict[str, SideStats]:
        m0 = int(since_ts // 60)
        out: dict[str, SideStats] = defaultdict(SideStats)
        c = self._conn()
        for side, req, err in c.execute("SELECT side, SUM(requests), SUM(errors) FROM win WHERE service=? AND minute>=? "
                                        "GROUP BY side", (service, m0)):
            out[side].requests, out[side].errors = int(req), int(err)
        for side, b, n in c.execute("SELECT side, bucket, SUM(n) FROM winb WHERE service=? AND minute>=? "
                                    "GROUP BY side, bucket", (service, m0)):
            out[side].buckets[int(b)] = int(n)
        return dict(out)

    def close(self) -> None:
        c = getattr(self._local, "c", None)
        if c is not None:
            c.close()
            self._local.c = None


class RedisWindowStore:
    TTL_S = 2 * 86400

    def __init__(self, url: str) -> None:
        import redis

        self.prefix = parse_qs(urlparse(url).query).get("prefix", ["chariot-migrate:"])[0] + "win:"
        self._r = redis.Redis.from_url(url.split("?", 1)[0], socket_timeout=2, decode_responses=True)

    def add(self, rows: dict[Key, SideStats]) -> None:
        p = self._r.pipeline(transaction=False)
        for (svc, side, minute), s in rows.items():
            k = f"{self.prefix}{svc}:{minute}:{side}"
            p.hincrby(k, "requests", s.requests)
            p.hincrby(k, "errors", s.errors)
            for b, n in s.buckets.items():
                p.hincrby(k, f"b{b}", n)
            p.expire(k, self.TTL_S)
            p.sadd(f"{self.prefix}{svc}:minutes", minute)
            p.expire(f"{self.prefix}{svc}:minutes", self.TTL_S)
        p.execute()

    def query(self, service: str, since_ts: float) -> dict[str, SideStats]:
        m0 = int(since_ts // 60)
        minutes = [int(m) for m in self._r.smembers(f"{self.prefix}{service}:minutes") if int(m) >= m0]
        out: dict[str, SideStats] = defaultdict(SideStats)
        for side in ("legacy", "new"):
            for m in minutes:
                h = self._r.hgetall(f"{self.prefix}{service}:{m}:{side}")
                if not h:
                    continue
                s = SideStats(int(h.get("requests", 0)), int(h.get("errors", 0)),
                              {int(k[1:]): int(v) for k, v in h.items() if k.startswith("b")})
                out[side].add(s)
        return dict(out)

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
        key = (service, side, int((now or time.time()) // 60))
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
