"""Events of risk-assessment.

Publishes ``risk.assessed`` (key, dns, name, status, previous_status, asset_key and the whole
``entity``) on every risk write. Consumes ``asset.discovered`` into the ``risk-assessment-assets``
read model, which answers "does this asset exist?" and relationship queries when
asset-discovery's internal API is not configured or not reachable.
"""

from __future__ import annotations

from typing import Any

from anyio import to_thread

from chariot_migrate.services.kit import Event
from chariot_migrate.services.kit.graph.readmodel import fold_entity

PUBLISHES = ("risk.assessed",)
CONSUMER_GROUP = "risk-assessment"


async def on_asset_discovered(event: Event, app: Any) -> None:
    entity = event.data.get("entity")
    if not isinstance(entity, dict):
        # A producer that sends only the required fields still tells us the asset exists.
        entity = {k: v for k, v in event.data.items() if k in ("key", "dns", "name", "status", "source", "class")}
    service = app.state.risk_assessment
    await to_thread.run_sync(lambda: fold_entity(service.store.asset_view, event.account, entity))


SUBSCRIPTIONS = [(CONSUMER_GROUP, ["asset.discovered"], on_asset_discovered)]
