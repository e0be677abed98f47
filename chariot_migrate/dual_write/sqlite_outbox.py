"""SQLite outbox: one file, WAL, safe for several processes on one host.

Two connections, each driven by its own single thread so the event loop never blocks:

* the **append** connection runs ``synchronous=FULL``: a commit is fsynced before ``append``
  returns. Appends are group-committed: whatever arrives while a commit is in flight goes
  into the next transaction, so N concurrent writers cost ~1 fsync, not N.
* the **ops** connection (claim/ack/nack/status) runs ``synchronous=NORMAL``: losing an ack to
  a power cut only means a redelivery, which receivers dedupe by ``Idempotency-Key``.

Per-lane ``seq`` comes from ``outbox_lanes.last_seq`` inside the append transaction (never
reused, even after records are delivered and deleted). Leases are two columns
(``lease_owner``, ``lease_until``) taken under ``BEGIN IMMEDIATE`` so two workers — in one
process or several — never hold the same record at once.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from chariot_migrate.dual_write.outbox import ServiceStatus, TargetCounts, drain_by_polling
from chariot_migrate.dual_write.records import ReplayRecord, Side

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox_lanes (
    service TEXT NOT NULL, account TEXT NOT NULL, target TEXT NOT NULL,
    last_seq INTEGER NOT NULL,
    PRIMARY KEY (service, account, target)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox_records (
    id TEXT PRIMARY KEY,
    service TEXT NOT NULL, account TEXT NOT NULL, target TEXT NOT NULL,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    last_error TEXT,
    lease_owner TEXT,
    lease_until REAL,
    payload TEXT NOT NULL,
    UNIQUE (service, account, target, seq)
);
CREATE INDEX IF NOT EXISTS outbox_records_state ON outbox_records (state, service);
CREATE INDEX IF NOT EXISTS outbox_records_due ON outbox_records (state, next_attempt_at, id);
"""

_COLS = "id, seq, state, attempts, next_attempt_at, last_error, payload"


def _row_to_record(row: tuple[Any, ...]) -> ReplayRecord:
    _id, seq, state, attempts, next_at, last_error, payload = row
    rec = ReplayRecord.model_validate_json(payload)
    return rec.model_copy(
        update={"seq": seq, "state": state, "attempts": attempts, "next_attempt_at": next_at, "last_error": last_error}
    )


class SQLiteOutbox:
    def __init__(self, path: str | os.PathLike[str] = ".chariot-migrate/outbox.db", *, max_batch: int = 512) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # Request and response bodies are customer data: owner-only from the first byte.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._max_batch = max_batch
        # All writes of this process (appends, claims, acks) run on ONE thread: two writer threads
        # made SQLite's busy handler sleep in a convoy (appends waited seconds under load). Reads
        # (pending_for on the hot path, status) get their own thread: WAL readers never wait.
        self._append_exec = ThreadPoolExecutor(1, thread_name_prefix="outbox-write")
        self._ops_exec = self._append_exec
        self._read_exec = ThreadPoolExecutor(1, thread_name_prefix="outbox-read")
        self._append_db = self._append_exec.submit(self._connect, "FULL").result()
        self._ops_db = self._ops_exec.submit(self._connect, "NORMAL").result()
        self._read_db = self._read_exec.submit(self._connect, "NORMAL").result()
        self._queue: list[tuple[ReplayRecord, asyncio.Future[ReplayRecord]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    def _connect(self, synchronous: str) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("PRAGMA busy_timeout=30000")
        db.executescript(_SCHEMA)
        return db

    async def _ops(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._ops_exec, fn, self._ops_db)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._read_exec, fn, self._read_db)

    # --- append (group commit) -------------------------------------------------------------

    async def append(self, record: ReplayRecord) -> ReplayRecord:
        if self._closed:
            raise RuntimeError("outbox is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[ReplayRecord] = loop.create_future()
        self._queue.append((record, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        # Shield: a caller cancelled mid-commit must not cancel the commit for everyone else.
        return await asyncio.shield(fut)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0)  # let appends issued in the same loop turn join this batch
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            try:
                stored = await loop.run_in_executor(self._append_exec, self._write_batch, [r for r, _ in batch])
            except BaseException as exc:  # noqa: BLE001 - every waiter must learn the batch failed
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, fut), rec in zip(batch, stored, strict=True):
                if not fut.done():
                    fut.set_result(rec)

    def _write_batch(self, records: list[ReplayRecord]) -> list[ReplayRecord]:
        db = self._append_db
        out: list[ReplayRecord] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for rec in records:
                row = db.execute(f"SELECT {_COLS} FROM outbox_records WHERE id = ?", (rec.id,)).fetchone()
                if row is not None:  # append retried after an error we did not see succeed
                    out.append(_row_to_record(row))
                    continue
                (seq,) = db.execute(
                    "INSERT INTO outbox_lanes (service, account, target, last_seq) VALUES (?, ?, ?, 1) "
                    "ON CONFLICT (service, account, target) DO UPDATE SET last_seq = last_seq + 1 "
                    "RETURNING last_seq",
                    rec.lane,
                ).fetchone()
                stored = rec.model_copy(update={"seq": seq, "state": "pending"})
                db.execute(
                    "INSERT INTO outbox_records (id, service, account, target, seq, state, attempts, "
                    "next_attempt_at, created_at, last_error, payload) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        stored.id, stored.service, stored.account, stored.target, seq, "pending",
                        stored.attempts, stored.next_attempt_at, stored.created_at, stored.last_error,
                        stored.model_dump_json(),
                    ),
                )
                out.append(stored)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return out

    # --- worker side -----------------------------------------------------------------------

    async def claim(self, worker_id: str, limit: int, lease_s: float, now: float | None = None) -> list[ReplayRecord]:
        t = time.time() if now is None else now

        def run(db: sqlite3.Connection) -> list[ReplayRecord]:
            db.execute("BEGIN IMMEDIATE")
            try:
                # Due records that head their lane (no older record of any state in it: order per
                # lane, a dead letter blocks its lane). Walks the due index and probes the lane's
                # unique index per candidate, so a claim costs O(limit · log n), not a scan of the
                # backlog (which made a growing backlog slow its own draining).
                rows = db.execute(
                    f"SELECT {', '.join('r.' + c.strip() for c in _COLS.split(','))} FROM outbox_records r "
                    "WHERE r.state = 'pending' AND r.next_attempt_at <= ? "
                    "  AND (r.lease_until IS NULL OR r.lease_until <= ?) "
                    "  AND NOT EXISTS (SELECT 1 FROM outbox_records o WHERE o.service = r.service "
                    "                  AND o.account = r.account AND o.target = r.target AND o.seq < r.seq) "
                    "ORDER BY r.next_attempt_at, r.id LIMIT ?",
                    (t, t, limit),
                ).fetchall()
                db.executemany(
                    "UPDATE outbox_records SET lease_owner = ?, lease_until = ? WHERE id = ?",
                    [(worker_id, t + lease_s, row[0]) for row in rows],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return [_row_to_record(r) for r in rows]

        return await self._ops(run)

    async def ack(self, record_id: str, worker_id: str) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            cur = db.execute("DELETE FROM outbox_records WHERE id = ? AND lease_owner = ?", (record_id, worker_id))
            return cur.rowcount == 1

        return await self._ops(run)

    async def nack(self, record_id: str, worker_id: str, *, error: str, next_attempt_at: float, dead: bool) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE outbox_records SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, "
                "state = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?",
                (error[:2000], next_attempt_at, "dead" if dead else "pending", record_id, worker_id),
            )
            return cur.rowcount == 1

        return await self._ops(run)

    # --- operator side ---------------------------------------------------------------------

    async def get(self, record_id: str) -> ReplayRecord | None:
        def run(db: sqlite3.Connection) -> ReplayRecord | None:
            row = db.execute(f"SELECT {_COLS} FROM outbox_records WHERE id = ?", (record_id,)).fetchone()
            return _row_to_record(row) if row else None

        return await self._ops(run)

    async def status(self) -> dict[str, ServiceStatus]:
        def run(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return db.execute(
                "SELECT service, target, state, COUNT(*), MIN(created_at) FROM outbox_records "
                "GROUP BY service, target, state"
            ).fetchall()

        rows = await self._ops(run)
        now = time.time()
        out: dict[str, ServiceStatus] = {}
        for service, target, state, count, oldest in rows:
            st = out.setdefault(service, ServiceStatus(service=service))
            tc = st.per_target.setdefault(target, TargetCounts())
            if state == "dead":
                tc.dead += count
                st.dead_letters += count
            else:
                tc.pending += count
                st.backlog += count
            age = max(0.0, now - oldest)
            st.oldest_age_s = age if st.oldest_age_s is None else max(st.oldest_age_s, age)
        return out

    async def pending_for(self, service: str, account: str, target: Side) -> int:
        def run(db: sqlite3.Connection) -> int:
            return db.execute(
                "SELECT COUNT(*) FROM outbox_records WHERE service = ? AND account = ? AND target = ?",
                (service, account, target),
            ).fetchone()[0]

        return await self._read(run)

    async def undelivered_accounts(self, service: str, target: Side) -> frozenset[str]:
        """Every account of ``service`` with a record toward ``target`` still in the outbox: one
        query serves every request's hold-back check until the next refresh (the proxy's hot path
        asks per request; a query per account was a thread hop each)."""

        def run(db: sqlite3.Connection) -> frozenset[str]:
            rows = db.execute("SELECT DISTINCT account FROM outbox_records WHERE service = ? AND target = ?",
                              (service, target)).fetchall()
            return frozenset(r[0] for r in rows)

        return await self._read(run)

    async def undelivered_lanes(self, target: Side) -> frozenset[tuple[str, str]]:
        """Every (service, account) with a record toward ``target`` still in the outbox."""

        def run(db: sqlite3.Connection) -> frozenset[tuple[str, str]]:
            rows = db.execute("SELECT DISTINCT service, account FROM outbox_records WHERE target = ?",
                              (target,)).fetchall()
            return frozenset((r[0], r[1]) for r in rows)

        return await self._read(run)

    async def dead_letters(self, service: str | None = None, limit: int = 100) -> list[ReplayRecord]:
        def run(db: sqlite3.Connection) -> list[ReplayRecord]:
            q = f"SELECT {_COLS} FROM outbox_records WHERE state = 'dead'"
            args: tuple[Any, ...] = ()
            if service is not None:
                q += " AND service = ?"
                args = (service,)
            rows = db.execute(q + " ORDER BY created_at, id LIMIT ?", (*args, limit)).fetchall()
            return [_row_to_record(r) for r in rows]

        return await self._ops(run)

    async def retry(self, record_id: str | None = None, service: str | None = None) -> int:
        def run(db: sqlite3.Connection) -> int:
            q = (
                "UPDATE outbox_records SET state = 'pending', attempts = 0, next_attempt_at = 0, "
                "lease_owner = NULL, lease_until = NULL WHERE state = 'dead'"
            )
            args: list[Any] = []
            if record_id is not None:
                q += " AND id = ?"
                args.append(record_id)
            if service is not None:
                q += " AND service = ?"
                args.append(service)
            return db.execute(q, args).rowcount

        return await self._ops(run)

    async def drain(self, timeout: float, service: str | None = None) -> int:
        return await drain_by_polling(self, timeout, service)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None and not self._flusher.done():
            await self._flusher
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._append_exec, self._append_db.close)
        await loop.run_in_executor(self._ops_exec, self._ops_db.close)
        await loop.run_in_executor(self._read_exec, self._read_db.close)
        self._append_exec.shutdown(wait=True)
        self._read_exec.shutdown(wait=True)
