"""The ``#statistic#my#status:<S>#…`` rows legacy keeps on every status change: a running total
and today's snapshot, per entity type (``asset``, ``risk``)."""

from __future__ import annotations

from typing import Any, Protocol

from . import keys
from .clock import day_of


class CounterStore(Protocol):
    def add_counter(self, username: str, key: str, delta: int, attrs: dict[str, Any]) -> int: ...

    def put(self, item: dict[str, Any]) -> Any: ...


def record_status(stats: CounterStore, username: str, type_: str, old: str | None, new: str | None,
                  now: str) -> None:
    """Move one ``type_`` entity from status ``old`` to ``new`` in the counters (no-op if equal)."""
    if old == new:
        return
    for status, delta in ((old, -1), (new, 1)):
        if not status:
            continue
        name = f"my#status:{status}"
        attrs = {"type": type_, "name": name, "value": status, "created": now}
        total = stats.add_counter(username, keys.statistic_key(name, "total"), delta, attrs)
        stats.put({"username": username, "key": keys.statistic_key(name, day_of(now)), "type": type_,
                   "name": name, "value": status, "created": day_of(now), "updated": now,
                   "data": {"count": total}})
