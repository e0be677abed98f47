"""What a service declares to have its data migrated, plus checkpoints and rate limiting.

Each service's ``migration.py`` implements :class:`ServiceMigration`; the generic engine in
:mod:`chariot_migrate.dual_write.data` (backfill, verify, repair) only talks to it.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

Item = dict[str, Any]


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A new-side table: its name and key attributes (string/number keys)."""

    name: str
    hash_key: str
    range_key: str | None = None

    @property
    def key_names(self) -> tuple[str, ...]:
        return (self.hash_key,) if self.range_key is None else (self.hash_key, self.range_key)

    def key_of(self, item: Item) -> Item:
        missing = [k for k in self.key_names if k not in item]
        if missing:
            raise ValueError(f"item for table {self.name!r} lacks key attribute(s) {missing}")
        return {k: item[k] for k in self.key_names}


@runtime_checkable
class ServiceMigration(Protocol):
    """A service's mapping between the legacy single table and its own tables.

    Optional attributes the engine reads with defaults: ``ignore_fields: list[str]`` (field
    paths left out of verify, e.g. ``updated`` or ``meta.*.ts``), ``compare_fields:
    list[str] | None`` (compare only these top-level fields), ``legacy_sort_key: str`` (the
    legacy sort-key attribute the prefixes apply to; default: the table's range key),
    ``owns_new_item(table, item) -> bool`` (False for a new-side item that is the service's own
    bookkeeping, e.g. saga logs or job leases: verify neither counts nor reports it), and
    ``tables_changed(endpoint_url) -> str`` (called by ``data backfill``/``repair`` after they
    wrote the new tables, so the service can drop cached reads; returns a line for the operator).
    """

    service: str
    legacy_prefixes: list[str]  # sort-key prefixes this service owns, e.g. ["#asset#"]
    new_tables: list[TableSpec]

    def to_new(self, item: Item) -> tuple[str, Item] | None:
        """Legacy item → (new table name, new item); ``None`` skips an item it does not own."""
        ...

    def to_legacy(self, table: str, item: Item) -> Item:
        """New-side item of ``table`` → the legacy item (with the legacy key attributes)."""
        ...


def table_spec(migration: ServiceMigration, name: str) -> TableSpec:
    for t in migration.new_tables:
        if t.name == name:
            return t
    known = ", ".join(t.name for t in migration.new_tables)
    raise ValueError(f"{migration.service}: to_new returned unknown table {name!r} (declared: {known})")


# --- DynamoDB values <-> JSON (checkpoints, outbox bodies) -------------------------------------


def _enc(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$N": str(value)}
    if isinstance(value, (bytes, bytearray)):
        return {"$B": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, (set, frozenset)):
        return {"$SET": [_enc(v) for v in sorted(value, key=repr)]}
    if isinstance(value, dict):
        enc = {k: _enc(v) for k, v in value.items()}
        # A map with "$..." keys could be mistaken for a tag: wrap it so decoding is exact.
        return {"$MAP": enc} if any(str(k).startswith("$") for k in value) else enc
    if isinstance(value, (list, tuple)):
        return [_enc(v) for v in value]
    if isinstance(value, float):
        return {"$N": repr(value)}
    return value


def _dec(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$N"}:
            return Decimal(value["$N"])
        if set(value) == {"$B"}:
            return base64.b64decode(value["$B"])
        if set(value) == {"$SET"}:
            return {_dec(v) for v in value["$SET"]}
        if set(value) == {"$MAP"}:
            return {k: _dec(v) for k, v in value["$MAP"].items()}
        return {k: _dec(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dec(v) for v in value]
    return value


def dumps_item(item: Any) -> str:
    """JSON that round-trips DynamoDB values (Decimal, bytes, sets) exactly."""
    return json.dumps(_enc(item), separators=(",", ":"), sort_keys=True)


def loads_item(text: str | bytes) -> Any:
    return _dec(json.loads(text))


def to_dynamo(value: Any) -> Any:
    """Make plain JSON data acceptable to boto3 (floats → Decimal)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_dynamo(v) for v in value]
    return value


# --- checkpoints ------------------------------------------------------------------------------


class CheckpointStore(Protocol):
    def load(self, name: str) -> dict[str, Any] | None: ...

    def save(self, name: str, state: dict[str, Any]) -> None: ...

    def clear(self, name: str) -> None: ...


class FileCheckpointStore:
    """One JSON file per checkpoint name, replaced atomically (write temp, fsync, rename)."""

    def __init__(self, directory: str | os.PathLike[str] = ".chariot-migrate/checkpoints") -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return self.directory / f"{safe}.json"

    def load(self, name: str) -> dict[str, Any] | None:
        p = self._path(name)
        if not p.exists():
            return None
        return loads_item(p.read_text())

    def save(self, name: str, state: dict[str, Any]) -> None:
        p = self._path(name)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=p.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(dumps_item(state))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)

    def clear(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)


class MemoryCheckpointStore:
    def __init__(self) -> None:
        self.states: dict[str, str] = {}

    def load(self, name: str) -> dict[str, Any] | None:
        s = self.states.get(name)
        return None if s is None else loads_item(s)

    def save(self, name: str, state: dict[str, Any]) -> None:
        self.states[name] = dumps_item(state)

    def clear(self, name: str) -> None:
        self.states.pop(name, None)


# --- rate limiting ------------------------------------------------------------------------------


class RateLimiter:
    """Token bucket (items per second, burst = one second's worth); ``None`` rate = unlimited. Thread-safe."""

    def __init__(
        self,
        rate_per_s: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_s is not None and rate_per_s <= 0:
            raise ValueError("rate_limit_per_s must be positive (or None for unlimited)")
        self.rate = rate_per_s
        self.capacity = max(1.0, rate_per_s or 1.0)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._last = clock()
        self._lock = threading.Lock()  # parallel scan segments share one budget

    def acquire(self, n: float = 1.0) -> None:
        if self.rate is None:
            return
        with self._lock:
            self._acquire(n)

    def _acquire(self, n: float) -> None:
        assert self.rate is not None
        while True:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= n - 1e-9:  # tolerance: float sums may fall short by an ulp
                self._tokens = max(0.0, self._tokens - n)
                return
            self._sleep((n - self._tokens) / self.rate)
