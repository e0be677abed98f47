"""Events of asset-discovery.

Publishes ``asset.discovered`` (data: key, dns, name, status, source, class, and the whole
``entity``) on every asset/seed write, status changes and deletes included, so consumers'
read models follow the asset's life. Consumes ``risk.assessed`` into the ``asset-discovery-risks``
read model that answers relationship queries (``Asset -HAS_VULNERABILITY-> Risk``) when
risk-assessment's internal API is not configured.
"""

from __future__ import annotations

from typing import Any

from anyio import to_thread

from chariot_migrate.services.kit import Event

from .contract import public
from .entity_table import EntityTable

PUBLISHES = ("asset.discovered",)
CONSUMER_GROUP = "asset-discovery"


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


async def on_risk_assessed(event: Event, app: Any) -> None:
    entity = event.data.get("entity")
    if not isinstance(entity, dict):
        return
    service = app.state.asset_discovery
    await to_thread.run_sync(lambda: fold_entity(service.store.risk_view, event.account, entity))


SUBSCRIPTIONS = [(CONSUMER_GROUP, ["risk.assessed"], on_risk_assessed)]
