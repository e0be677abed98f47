"""Entity lifetime and status history, as the legacy graph writes shape them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

TTL_SECONDS = 7 * 86400


def ttl_of(now: str) -> int:
    """The ``ttl`` (epoch seconds) of an entity written at ``now`` (``%Y-%m-%dT%H:%M:%SZ``)."""
    return int(datetime.strptime(now, "%Y-%m-%dT%H:%M:%SZ").timestamp()) + TTL_SECONDS


def history_entry(old: str, new: str, by: str, now: str, comment: str | None = None) -> dict[str, Any]:
    """One status change: ``{from, to, by, updated[, comment]}``."""
    h: dict[str, Any] = {"from": old, "to": new, "by": by, "updated": now}
    if comment:
        h["comment"] = comment
    return h
