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
from chariot_migrate.services.kit.graph.readmodel import fold_entity

PUBLISHES = ("asset.discovered",)
CONSUMER_GROUP = "asset-discovery"


async def on_risk_assessed(event: Event, app: Any) -> None:
    entity = event.data.get("entity")
    if not isinstance(entity, dict):
        return
    service = app.state.asset_discovery
    await to_thread.run_sync(lambda: fold_entity(service.store.risk_view, event.account, entity))


SUBSCRIPTIONS = [(CONSUMER_GROUP, ["risk.assessed"], on_risk_assessed)]
