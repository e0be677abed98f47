"""Where live rollout state lives: the StateStore interface and the URL → store factory.

SQLite (one file, embedded default, safe for several proxy workers on one host) and Redis
(several proxy replicas on several hosts) implement the same interface and pass the same tests.
Every change bumps one global ``version`` counter, which proxies poll to notice changes cheaply.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol

from .state import HistoryEntry, ServiceState

DEFAULT_STATE_URL = "sqlite:///.chariot-migrate/state.db"
Mutation = Callable[[ServiceState], ServiceState]


class StateStoreError(Exception):
    """The store cannot be reached or used; the message says which and how to fix it."""


class StateStore(Protocol):
    def version(self) -> int: ...

    def get(self, service: str) -> ServiceState | None: ...

    def all(self) -> dict[str, ServiceState]: ...

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
        """Atomically read the service's state (``default`` if absent), apply ``mutate``, store
        it with a new version and append one history entry. Returns the new state."""
        ...

    def history(self, service: str | None = None, limit: int = 50) -> list[HistoryEntry]: ...

    # Records: what a gate, the safety rule or the controller reads besides the live state
    # (``verify`` / ``backfill`` results per service, reviewed ``shadow-ignore`` rules per
    # signature). They live in the store, not in local files, so an in-cluster controller sees
    # what an operator's laptop recorded. ``doc`` is a JSON object; a put replaces it whole.

    def put_record(self, kind: str, key: str, doc: dict[str, Any]) -> None: ...

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None: ...

    def records(self, kind: str) -> dict[str, dict[str, Any]]: ...

    def delete_record(self, kind: str, key: str) -> None: ...

    def close(self) -> None: ...


def state_url_from_env(url: str | None = None) -> str:
    """``url``, else CHARIOT_MIGRATE_STATE, else ``state.db`` in the state directory."""
    from ..statedir import under

    return url or os.environ.get("CHARIOT_MIGRATE_STATE") or f"sqlite:///{under('state.db')}"


def open_state_store(url: str | None = None) -> StateStore:
    """``sqlite:///relative/path.db``, ``sqlite:////abs/path.db`` or ``redis://host:port/db[?prefix=x]``."""
    url = state_url_from_env(url)
    if url.startswith("sqlite://"):
        from .sqlite_store import SQLiteStateStore

        return SQLiteStateStore(url.removeprefix("sqlite:///") or ".chariot-migrate/state.db")
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis_store import RedisStateStore

        return RedisStateStore(url)
    raise StateStoreError(f"unknown state store URL {url!r}: use sqlite:///path.db or redis://host:port/0")
