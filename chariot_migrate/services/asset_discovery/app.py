"""asset-discovery (phase 2): assets, seeds, preseeds, attributes and their graph queries.

``uvicorn --factory chariot_migrate.services.asset_discovery.app:create_app`` (or
``chariot-migrate service run asset-discovery``). Settings: env ``CHARIOT_ASSET_DISCOVERY_<FIELD>``
or ``<FIELD>`` (see :class:`AssetDiscoverySettings` and ``services/kit/chariot.py``). The app
itself is the kit's graph-service app (``services/kit/graph/app.py``); risks are the peer's kind.
"""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import FastAPI

from chariot_migrate.services.kit import MembershipLookup
from chariot_migrate.services.kit.graph.app import GraphService, GraphSettings, create_graph_app
from chariot_migrate.services.kit.graph.contract import WriteContext
from chariot_migrate.services.kit.graph.entity_table import EntityTable
from chariot_migrate.services.kit.graph.kind_cache import CACHED_KINDS, PartitionLoader, table_loader
from chariot_migrate.services.kit.graph.peers import PeerSource

from . import events
from .ops import AssetOps
from .routes import router
from .store import SERVICE, AssetStore, table_specs


class AssetDiscoverySettings(GraphSettings):
    risk_assessment_url: str | None = None  # consistent risk reads for relationship queries
    files_bucket: str = "asset-discovery-files"  # bulk results files (``{account}/bulk/…``)
    grpc_address: str | None = None  # host:port of the gRPC API (grpc_api.py); None = HTTP only

    @classmethod
    def from_env(cls, service: str = SERVICE, env: Any = None, **overrides: Any):
        return super().from_env(service, env, **overrides)


class AssetDiscovery(GraphService):
    """The running service: its store, S3 for bulk results, and how risks are read."""

    peer_service = "risk-assessment"
    peer_kinds = frozenset({"risk"})
    store: AssetStore

    @property
    def risks(self) -> PeerSource:
        return self.peer

    def peer_view(self, store: AssetStore) -> EntityTable:
        return store.risk_view

    def own_table(self, kind: str) -> EntityTable | None:
        return self.store.table_for(kind)

    def own_loaders(self) -> dict[str, PartitionLoader]:
        loaders: dict[str, PartitionLoader] = {}
        for kind in CACHED_KINDS:
            table = self.store.table_for(kind)
            if table is not None:
                loaders[kind] = table_loader(table, kind)
        return loaders

    async def owned_entities(self, username: str, prefix: str) -> list[dict[str, Any]]:
        """Every entity this service owns under ``prefix`` (never the risks' read model): one
        kind from the kind cache, a partial prefix (``#``, ``#a``) from every owned table. What
        peers read, over ``/internal/api/entities`` and gRPC alike."""
        tables = self.store.owned_tables(prefix)
        items = await self.kinds.with_prefix(username, prefix) if tables and prefix.count("#") >= 2 else None
        if items is None:
            items = await to_thread.run_sync(lambda: [i for t in tables for i in t.query_all(username, prefix)])
        return items

    def ops(self, ctx: WriteContext) -> AssetOps:
        return AssetOps(self.store, ctx, self.peer)


def create_app(settings: AssetDiscoverySettings | None = None, *, membership: MembershipLookup | None = None,
               risk_peer: PeerSource | None = None) -> FastAPI:
    settings = settings or AssetDiscoverySettings.from_env(SERVICE)

    async def start_grpc(app: FastAPI) -> None:
        if settings.grpc_address:
            from . import grpc_api  # generates the stubs on first use

            app.state.grpc_server = await grpc_api.serve(app, settings.grpc_address)

    async def stop_grpc(app: FastAPI) -> None:
        server = getattr(app.state, "grpc_server", None)
        if server is not None:
            await server.stop(grace=5)  # streams in flight get 5 s, like HTTP requests draining

    return create_graph_app(SERVICE, settings, service_class=AssetDiscovery, connect_store=AssetStore.connect,
                            peer_url=settings.risk_assessment_url, state_name="asset_discovery", router=router,
                            tables=table_specs(), subscriptions=events.SUBSCRIPTIONS, membership=membership,
                            peer=risk_peer, on_startup=[start_grpc], on_shutdown=[stop_grpc])
