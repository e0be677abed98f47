"""SQLite state store: one file in WAL mode; writers serialise with BEGIN IMMEDIATE."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from .state import HistoryEntry, ServiceState, stamp
from .store import Mutation, StateStoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS services (name TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS history (
  id INTEGER PRIMARY KEY AUTOINCREMENT, service TEXT NOT NULL, at REAL NOT NULL, actor TEXT NOT NULL,
  action TEXT NOT NULL, before TEXT NOT NULL, after TEXT NOT NULL, reason TEXT NOT NULL, evidence TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_service ON history(service, id);
CREATE TABLE IF NOT EXISTS records (kind TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL, at REAL NOT NULL,
  PRIMARY KEY (kind, key));
INSERT OR IGNORE INTO meta(k, v) VALUES ('version', 0);
"""


class SQLiteStateStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._local = threading.local()
            with self._conn() as c:
                c.executescript(_SCHEMA)
                c.execute("SELECT name, state FROM services LIMIT 1").fetchall()
        except sqlite3.DatabaseError as e:
            raise StateStoreError(f"state store {self.path} is not a usable SQLite database ({e}); move the file "
                                  "aside (a new one is created on the next start) or point --state at another "
                                  "store") from e
        except (OSError, sqlite3.Error) as e:
            raise StateStoreError(f"cannot open state store {self.path}: {e}") from e

    def _conn(self) -> sqlite3.Connection:
        # One connection per thread: sqlite3 connections must not cross threads.
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=True)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def version(self) -> int:
        try:
            return int(self._conn().execute("SELECT v FROM meta WHERE k='version'").fetchone()[0])
        except sqlite3.Error as e:
            raise StateStoreError(f"state store {self.path} unreadable: {e}") from e

    def get(self, service: str) -> ServiceState | None:
        row = self._conn().execute("SELECT state FROM services WHERE name=?", (service,)).fetchone()
        return ServiceState.model_validate_json(row[0]) if row else None

    def all(self) -> dict[str, ServiceState]:
        try:
            rows = self._conn().execute("SELECT name, state FROM services").fetchall()
        except sqlite3.Error as e:
            raise StateStoreError(f"state store {self.path} unreadable: {e}") from e
        return {name: ServiceState.model_validate_json(s) for name, s in rows}

    def update(
        self,
        service: str,
        mutate: Mutation,
        *,
        default: ServiceState,
        actor: str,
        action: str,
        reason: str = "",
        evidence: dict[str, Any] | None = None,
    ) -> ServiceState:
        c = self._conn()
        try:
            c.execute("BEGIN IMMEDIATE")
            row = c.execute("SELECT state FROM services WHERE name=?", (service,)).fetchone()
            before = ServiceState.model_validate_json(row[0]) if row else default
            version = int(c.execute("SELECT v FROM meta WHERE k='version'").fetchone()[0]) + 1
            after = stamp(mutate(before), actor=actor, reason=reason, version=version)
            c.execute("INSERT OR REPLACE INTO services(name, state) VALUES (?, ?)", (service, after.model_dump_json()))
            c.execute("UPDATE meta SET v=? WHERE k='version'", (version,))
            c.execute(
                "INSERT INTO history(service, at, actor, action, before, after, reason, evidence) VALUES (?,?,?,?,?,?,?,?)",
                (service, time.time(), actor, action, before.model_dump_json(), after.model_dump_json(), reason,
                 json.dumps(evidence or {})),
            )
            c.execute("COMMIT")
            return after
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    def history(self, service: str | None = None, limit: int = 50) -> list[HistoryEntry]:
        q = "SELECT id, service, at, actor, action, before, after, reason, evidence FROM history"
        args: tuple[Any, ...] = ()
        if service:
            q += " WHERE service=?"
            args = (service,)
        rows = self._conn().execute(q + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [
            HistoryEntry(id=r[0], service=r[1], at=r[2], actor=r[3], action=r[4], before=json.loads(r[5]),
                         after=json.loads(r[6]), reason=r[7], evidence=json.loads(r[8]))
            for r in reversed(rows)
        ]

    def put_record(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        try:
            self._conn().execute("INSERT OR REPLACE INTO records(kind, key, doc, at) VALUES (?,?,?,?)",
                                 (kind, key, json.dumps(doc, default=str), time.time()))
        except sqlite3.Error as e:
            raise StateStoreError(f"state store {self.path} unwritable: {e}") from e

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        try:
            row = self._conn().execute("SELECT doc FROM records WHERE kind=? AND key=?", (kind, key)).fetchone()
        except sqlite3.Error as e:
            raise StateStoreError(f"state store {self.path} unreadable: {e}") from e
        return json.loads(row[0]) if row else None

    def records(self, kind: str) -> dict[str, dict[str, Any]]:
        try:
            rows = self._conn().execute("SELECT key, doc FROM records WHERE kind=? ORDER BY key", (kind,)).fetchall()
        except sqlite3.Error as e:
            raise StateStoreError(f"state store {self.path} unreadable: {e}") from e
        return {k: json.loads(d) for k, d in rows}

    def delete_record(self, kind: str, key: str) -> None:
        try:
            self._conn().execute("DELETE FROM records WHERE kind=? AND key=?", (kind, key))
        except sqlite3.Error as e:
            raise StateStoreError(f"state store {self.path} unwritable: {e}") from e

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
