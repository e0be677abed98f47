"""Folding a peer's entity events into a read-model table: entities only move forward."""

from __future__ import annotations

from typing import Any

from .contract import public
from .entity_table import EntityTable


def version_of(entity: dict[str, Any]) -> tuple[str, int]:
    """Entities only move forward: ``updated`` (second precision) then the history length, which
    every status change and comment extends (two changes within one second still order)."""
    history = entity.get("history")
    return str(entity.get("updated", "")), len(history) if isinstance(history, list) else 0


def newer(incoming: dict[str, Any], current: dict[str, Any] | None) -> bool:
    """Keep the newest version of an entity (events may arrive out of order or twice)."""
    return current is None or version_of(incoming) >= version_of(current)


def fold_entity(table: EntityTable, account: str, entity: dict[str, Any]) -> bool:
    """Write ``entity`` into a read-model table unless a newer version is there; True if written."""
    key = entity.get("key")
    if not isinstance(key, str) or not key:
        return False
    item = public(entity) | {"username": account}
    if not newer(item, table.get(account, key)):
        return False
    table.put(item)
    return True
