"""Diff stores: where shadow comparisons are aggregated (per service, route and minute).

One protocol, two backends with the same behaviour (and the same test suite):

* ``SQLiteDiffStore`` — embedded default, one WAL file (``.chariot-migrate/shadow.db``), safe
  for several proxy workers on one host;
* ``RedisDiffStore`` — several proxy replicas on several hosts.

Stores are synchronous on purpose: the engine writes a whole batch in one transaction from a
worker thread, and reports/CLI read them without an event loop.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from .records import (
    COUNTER_FIELDS,
    BatchDelta,
    PairRecord,
    RouteData,
    SignatureMeta,
    aggregate,
)

DEFAULT_SQLITE_PATH = ".chariot-migrate/shadow.db"
DEFAULT_MAX_EXAMPLES = 5


@runtime_checkable
class DiffStore(Protocol):
    max_examples: int

    def record(self, batch: Sequence[PairRecord]) -> None:
        """Add a batch of comparisons (one transaction)."""

    def load(
        self, *, service: str | None = None, route: str | None = None, since_ts: float | None = None
    ) -> list[RouteData]:
        """Aggregates per (service, route) over minutes ≥ since_ts (all time when None)."""

    def example_counts(self) -> dict[str, int]:
        """Stored examples per signature (lets a restarted engine skip building full ones)."""

    def close(self) -> None: ...


def open_diff_store(url: str | None = None, *, max_examples: int = DEFAULT_MAX_EXAMPLES) -> DiffStore:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db``, a bare path, or ``redis://host:port/db[?prefix=x]``."""
    url = url or f"sqlite:///{DEFAULT_SQLITE_PATH}"
    if url.startswith(("redis://", "rediss://", "unix://")):
        from ..redis_keys import split_redis_url

        clean, prefix = split_redis_url(url, "chariot-migrate:shadow")
        return RedisDiffStore(clean, prefix=prefix, max_examples=max_examples)
    if url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
        path = path[1:] if path.startswith("/") else path  # sqlite:///rel → rel, sqlite:////abs → /abs
        return SQLiteDiffStore(path or DEFAULT_SQLITE_PATH, max_examples=max_examples)
    if "://" in url:
        raise ValueError(f"unsupported diff store URL {url!r}: use sqlite:///path or redis://host:port/db")
    return SQLiteDiffStore(url, max_examples=max_examples)


# --- SQLite --------------------------------------------------------------------------------------

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS minute_stats (
  minute INTEGER NOT NULL, service TEXT NOT NULL, route TEXT NOT NULL,
  {", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in COUNTER_FIELDS)},
  PRIMARY KEY (minute, service, route));
CREATE TABLE IF NOT EXISTS latency (
  minute INTEGER NOT NULL, service TEXT NOT NULL, route TEXT NOT NULL, side TEXT NOT NULL,
  idx INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (minute, service, route, side, idx));
CREATE TABLE IF NOT EXISTS sig_counts (
  minute INTEGER NOT NULL, service TEXT NOT NULL, route TEXT NOT NULL, sig TEXT NOT NULL,
  n INTEGER NOT NULL, PRIMARY KEY (minute, service, route, sig));
CREATE TABLE IF NOT EXISTS path_counts (
  minute INTEGER NOT NULL, service TEXT NOT NULL, route TEXT NOT NULL, path TEXT NOT NULL,
  ab INTEGER NOT NULL DEFAULT 0, aa INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (minute, service, route, path));
CREATE TABLE IF NOT EXISTS set_counts (
  minute INTEGER NOT NULL, service TEXT NOT NULL, route TEXT NOT NULL, set_id TEXT NOT NULL,
  n INTEGER NOT NULL, PRIMARY KEY (minute, service, route, set_id));
CREATE TABLE IF NOT EXISTS sig_meta (
  sig TEXT PRIMARY KEY, service TEXT, route TEXT, path TEXT, kind TEXT, value_class TEXT);
CREATE TABLE IF NOT EXISTS set_meta (set_id TEXT PRIMARY KEY, sigs TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS examples (
  id INTEGER PRIMARY KEY AUTOINCREMENT, service TEXT, route TEXT, sig TEXT, ts REAL, data TEXT);
CREATE INDEX IF NOT EXISTS examples_sig ON examples (sig);
"""


class SQLiteDiffStore:
    def __init__(self, path: str | os.PathLike[str] = DEFAULT_SQLITE_PATH, *, max_examples: int = DEFAULT_MAX_EXAMPLES):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_examples = max_examples
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def record(self, batch: Sequence[PairRecord]) -> None:
        if not batch:
            return
        d = aggregate(list(batch))
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                self._write(db, d)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _write(self, db: sqlite3.Connection, d: BatchDelta) -> None:
        cols = ", ".join(COUNTER_FIELDS)
        upd = ", ".join(f"{c} = {c} + excluded.{c}" for c in COUNTER_FIELDS)
        marks = ", ".join("?" for _ in COUNTER_FIELDS)
        db.executemany(
            f"INSERT INTO minute_stats (minute, service, route, {cols}) VALUES (?, ?, ?, {marks}) "
            f"ON CONFLICT (minute, service, route) DO UPDATE SET {upd}",
            [(*k, *(c.get(f, 0) for f in COUNTER_FIELDS)) for k, c in d.counters.items()],
        )
        db.executemany(
            "INSERT INTO latency VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (minute, service, route, side, idx) DO UPDATE SET n = n + excluded.n",
            [(*k, side, idx, n) for k, h in d.latency.items() for (side, idx), n in h.items()],
        )
        db.executemany(
            "INSERT INTO sig_counts VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (minute, service, route, sig) DO UPDATE SET n = n + excluded.n",
            [(*k, s, n) for k, m in d.sigs.items() for s, n in m.items()],
        )
        for col, src in (("ab", d.ab_paths), ("aa", d.aa_paths)):
            db.executemany(
                f"INSERT INTO path_counts (minute, service, route, path, {col}) VALUES (?, ?, ?, ?, ?) "
                f"ON CONFLICT (minute, service, route, path) DO UPDATE SET {col} = {col} + excluded.{col}",
                [(*k, p, n) for k, m in src.items() for p, n in m.items()],
            )
        db.executemany(
            "INSERT INTO set_counts VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (minute, service, route, set_id) DO UPDATE SET n = n + excluded.n",
            [(*k, s, n) for k, m in d.sets.items() for s, n in m.items()],
        )
        db.executemany("INSERT OR IGNORE INTO sig_meta VALUES (?, ?, ?, ?, ?, ?)", [(s, *m) for s, m in d.sig_meta.items()])
        db.executemany("INSERT OR IGNORE INTO set_meta VALUES (?, ?)", [(s, json.dumps(v)) for s, v in d.set_meta.items()])
        if d.examples:
            stored: dict[str, int] = {}
            dropped: dict[tuple[int, str, str], int] = {}
            for service, route, sig, ts, data in d.examples:
                if sig not in stored:
                    stored[sig] = db.execute("SELECT COUNT(*) FROM examples WHERE sig = ?", (sig,)).fetchone()[0]
                if stored[sig] >= self.max_examples:
                    key = (int(ts // 60) * 60, service, route)
                    dropped[key] = dropped.get(key, 0) + 1
                    continue
                stored[sig] += 1
                db.execute("INSERT INTO examples (service, route, sig, ts, data) VALUES (?, ?, ?, ?, ?)", (service, route, sig, ts, data))
            db.executemany(
                "UPDATE minute_stats SET examples_dropped = examples_dropped + ? WHERE minute = ? AND service = ? AND route = ?",
                [(n, *k) for k, n in dropped.items()],
            )

    def load(self, *, service: str | None = None, route: str | None = None, since_ts: float | None = None) -> list[RouteData]:
        where = ["minute >= ?"]
        args: list[int | str] = [int(since_ts // 60) * 60 if since_ts is not None else -1]
        if service is not None:
            where.append("service = ?")
            args.append(service)
        if route is not None:
            where.append("route = ?")
            args.append(route)
        w = " AND ".join(where)
        out: dict[tuple[str, str], RouteData] = {}

        def rd(s: str, r: str) -> RouteData:
            return out.setdefault((s, r), RouteData(s, r))

        with self._lock:
            db = self._db
            for row in db.execute(f"SELECT minute, service, route, {', '.join(COUNTER_FIELDS)} FROM minute_stats WHERE {w}", args):
                rd(row[1], row[2]).add_counters(row[0], dict(zip(COUNTER_FIELDS, row[3:], strict=True)))
            for s, r, side, idx, n in db.execute(
                f"SELECT service, route, side, idx, SUM(n) FROM latency WHERE {w} GROUP BY service, route, side, idx", args
            ):
                rd(s, r).add_latency(side, idx, n)
            for m, s, r, sig, n in db.execute(f"SELECT minute, service, route, sig, n FROM sig_counts WHERE {w}", args):
                rd(s, r).add_sig(m, sig, n)
            for s, r, p, ab, aa in db.execute(
                f"SELECT service, route, path, SUM(ab), SUM(aa) FROM path_counts WHERE {w} GROUP BY service, route, path", args
            ):
                x = rd(s, r)
                if ab:
                    x.ab_paths[p] = ab
                if aa:
                    x.aa_paths[p] = aa
            set_rows = list(db.execute(f"SELECT minute, service, route, set_id, n FROM set_counts WHERE {w}", args))
            set_ids = {row[3] for row in set_rows}
            metas = dict(_select_in(db, "SELECT set_id, sigs FROM set_meta WHERE set_id IN ({})", set_ids))
            for m, s, r, sid, n in set_rows:
                rd(s, r).add_set(m, frozenset(json.loads(metas.get(sid, "[]"))), n)
            sigs = {sig for x in out.values() for sig in x.signatures}
            for sig, path, kind, vc in _select_in(db, "SELECT sig, path, kind, value_class FROM sig_meta WHERE sig IN ({})", sigs):
                for x in out.values():
                    if sig in x.signatures:
                        x.sig_meta[sig] = SignatureMeta(path, kind, vc)
            for x in out.values():
                for sig in x.signatures:
                    rows = db.execute(
                        "SELECT data FROM examples WHERE sig = ? AND service = ? AND route = ? ORDER BY id", (sig, x.service, x.route)
                    ).fetchall()
                    if rows:
                        x.examples[sig] = [json.loads(r[0]) for r in rows]
        return sorted(out.values(), key=lambda x: (x.service, x.route))

    def example_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT sig, COUNT(*) FROM examples GROUP BY sig").fetchall())

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _select_in(db: sqlite3.Connection, sql: str, keys: set[str]) -> list[tuple]:
    rows: list[tuple] = []
    keys_l = sorted(keys)
    for i in range(0, len(keys_l), 500):
        chunk = keys_l[i : i + 500]
        rows.extend(db.execute(sql.format(", ".join("?" for _ in chunk)), chunk).fetchall())
    return rows


# --- Redis ----------------------------------------------------------------------------------------

_ADD_EXAMPLE = """
if redis.call('LLEN', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('RPUSH', KEYS[1], ARGV[2])
  return 1
end
redis.call('HINCRBY', KEYS[2], 'c:examples_dropped', 1)
return 0
"""


class RedisDiffStore:
    """Keys (all under ``prefix``): ``routes`` hash rk → [service, route]; ``m:{rk}`` zset of
    minutes; ``h:{rk}:{minute}`` hash of counters; ``sigmeta``/``setmeta`` hashes; ``ex:{rk}:{sig}``
    example lists. Minute hashes expire after ``retention_s``."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "chariot-migrate:shadow",
        max_examples: int = DEFAULT_MAX_EXAMPLES,
        retention_s: int = 14 * 86400,
    ):
        from ..redis_conn import sync_redis

        self.max_examples = max_examples
        self.prefix = prefix.rstrip(":")
        self.retention_s = retention_s
        self._r = sync_redis(url)
        self._add_example = self._r.register_script(_ADD_EXAMPLE)

    def _k(self, *parts: object) -> str:
        return ":".join([self.prefix, *map(str, parts)])

    @staticmethod
    def _rk(service: str, route: str) -> str:
        return hashlib.blake2b(f"{service}\x1f{route}".encode(), digest_size=8).hexdigest()

    def record(self, batch: Sequence[PairRecord]) -> None:
        if not batch:
            return
        d = aggregate(list(batch))
        pipe = self._r.pipeline(transaction=True)
        touched: set[tuple[str, int]] = set()
        routes: dict[str, str] = {}

        def h(key: tuple[int, str, str]) -> str:
            minute, service, route = key
            rk = self._rk(service, route)
            if (rk, minute) not in touched:
                touched.add((rk, minute))
                routes[rk] = json.dumps([service, route])
            return self._k("h", rk, minute)

        for key, c in d.counters.items():
            hk = h(key)
            for f, n in c.items():
                if n:
                    pipe.hincrby(hk, f"c:{f}", n)
        for key, hist in d.latency.items():
            hk = h(key)
            for (side, idx), n in hist.items():
                pipe.hincrby(hk, f"l:{side}:{idx}", n)
        for prefix, src in (("s", d.sigs), ("ab", d.ab_paths), ("aa", d.aa_paths), ("set", d.sets)):
            for key, m in src.items():
                hk = h(key)
                for name, n in m.items():
                    pipe.hincrby(hk, f"{prefix}:{name}", n)
        if d.sig_meta:
            for sig, meta in d.sig_meta.items():
                pipe.hsetnx(self._k("sigmeta"), sig, json.dumps(meta))
        for sid, sigs in d.set_meta.items():
            pipe.hsetnx(self._k("setmeta"), sid, json.dumps(sigs))
        for rk, val in routes.items():
            pipe.hset(self._k("routes"), rk, val)
        for rk, minute in touched:
            pipe.zadd(self._k("m", rk), {str(minute): minute})
            pipe.expire(self._k("h", rk, minute), self.retention_s)
        for service, route, sig, ts, data in d.examples:
            rk = self._rk(service, route)
            minute = int(ts // 60) * 60
            self._add_example(
                keys=[self._k("ex", rk, sig), self._k("h", rk, minute)], args=[self.max_examples, data], client=pipe
            )
            pipe.expire(self._k("ex", rk, sig), self.retention_s)
        pipe.execute()

    def load(self, *, service: str | None = None, route: str | None = None, since_ts: float | None = None) -> list[RouteData]:
        lo = int(since_ts // 60) * 60 if since_ts is not None else "-inf"
        out: list[RouteData] = []
        horizon = time.time() - self.retention_s
        for rk_b, val in self._r.hgetall(self._k("routes")).items():
            s, r = json.loads(val)
            if (service is not None and s != service) or (route is not None and r != route):
                continue
            rk = rk_b.decode()
            self._r.zremrangebyscore(self._k("m", rk), "-inf", horizon)
            minutes = [int(m) for m in self._r.zrangebyscore(self._k("m", rk), lo, "+inf")]
            if not minutes:
                continue
            pipe = self._r.pipeline(transaction=False)
            for m in minutes:
                pipe.hgetall(self._k("h", rk, m))
            x = RouteData(s, r)
            set_rows: list[tuple[int, str, int]] = []
            for m, fields in zip(minutes, pipe.execute(), strict=True):
                counters: dict[str, int] = {}
                for fb, nb in fields.items():
                    f, n = fb.decode(), int(nb)
                    kind, _, name = f.partition(":")
                    if kind == "c":
                        counters[name] = n
                    elif kind == "l":
                        side, _, idx = name.partition(":")
                        x.add_latency(side, int(idx), n)
                    elif kind == "s":
                        x.add_sig(m, name, n)
                    elif kind == "ab":
                        x.ab_paths[name] = x.ab_paths.get(name, 0) + n
                    elif kind == "aa":
                        x.aa_paths[name] = x.aa_paths.get(name, 0) + n
                    elif kind == "set":
                        set_rows.append((m, name, n))
                if counters:
                    x.add_counters(m, counters)
            sids = sorted({sid for _, sid, _ in set_rows})
            metas = dict(zip(sids, self._r.hmget(self._k("setmeta"), sids), strict=True)) if sids else {}
            for m, sid, n in set_rows:
                raw = metas.get(sid)
                x.add_set(m, frozenset(json.loads(raw) if raw else []), n)
            sigs = sorted(x.signatures)
            if sigs:
                for sig, raw in zip(sigs, self._r.hmget(self._k("sigmeta"), sigs), strict=True):
                    if raw:
                        _, _, path, kind, vc = json.loads(raw)
                        x.sig_meta[sig] = SignatureMeta(path, kind, vc)
                pipe = self._r.pipeline(transaction=False)
                for sig in sigs:
                    pipe.lrange(self._k("ex", rk, sig), 0, -1)
                for sig, items in zip(sigs, pipe.execute(), strict=True):
                    if items:
                        x.examples[sig] = [json.loads(i) for i in items]
            out.append(x)
        return sorted(out, key=lambda x: (x.service, x.route))

    def example_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for key in self._r.scan_iter(match=self._k("ex", "*"), count=500):
            sig = key.decode().rsplit(":", 1)[1]
            counts[sig] = counts.get(sig, 0) + int(self._r.llen(key))
        return counts

    def close(self) -> None:
        self._r.close()
