"""risk-assessment (phase 3): risks, their statuses, history, priority and graph queries.

``uvicorn --factory chariot_migrate.services.risk_assessment.app:create_app`` (or
``chariot-migrate service run risk-assessment``). Settings: env ``CHARIOT_RISK_ASSESSMENT_<FIELD>``
or ``<FIELD>`` (see :class:`RiskAssessmentSettings` and ``services/kit/chariot.py``). The app
itself is the kit's graph-service app (``services/kit/graph/app.py``); assets, attributes and the
other asset-discovery kinds are the peer's.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from chariot_migrate.services.kit import MembershipLookup
from chariot_migrate.services.kit.graph.app import GraphService, GraphSettings, create_graph_app
from chariot_migrate.services.kit.graph.contract import WriteContext
from chariot_migrate.services.kit.graph.entity_table import EntityTable
from chariot_migrate.services.kit.graph.kind_cache import CACHED_KINDS, PartitionLoader, table_loader
from chariot_migrate.services.kit.graph.peers import PeerSource

from . import events
from .ops import RiskOps
from .routes import router
from .store import SERVICE, RiskStore, table_specs


class RiskAssessmentSettings(GraphSettings):
    asset_discovery_url: str | None = None  # consistent asset/attribute reads (risk targets, relationships)
    files_bucket: str = "risk-assessment-files"  # bulk results files (``{account}/bulk/…``)
    # asset-discovery's gRPC API (host:port); when set it answers asset reads instead of the URL's
    # HTTP /internal/api (asset_grpc.py)
    asset_discovery_grpc: str | None = None
    asset_discovery_grpc_deadline_s: float = 2.0

    @classmethod
    def from_env(cls, service: str = SERVICE, env: Any = None, **overrides: Any):
        return super().from_env(service, env, **overrides)


class RiskAssessment(GraphService):
    peer_service = "asset-discovery"
    peer_kinds = frozenset(CACHED_KINDS - {"risk"})
    store: RiskStore

    @property
    def assets(self) -> PeerSource:
        return self.peer

    def peer_view(self, store: RiskStore) -> EntityTable:
        return store.asset_view

    def own_table(self, kind: str) -> EntityTable | None:
        return self.store.risks if kind == "risk" else None

    def own_loaders(self) -> dict[str, PartitionLoader]:
        return {"risk": table_loader(self.store.risks, "risk")}

    def ops(self, ctx: WriteContext) -> RiskOps:
        return RiskOps(self.store, ctx, self.peer)


def create_app(settings: RiskAssessmentSettings | None = None, *, membership: MembershipLookup | None = None,
               asset_peer: PeerSource | None = None) -> FastAPI:
    settings = settings or RiskAssessmentSettings.from_env(SERVICE)

    def grpc_assets(app: FastAPI) -> tuple[PeerSource, Any]:
        from .asset_grpc import GrpcAssetSource  # generates the stubs on first use

        source = GrpcAssetSource.connect(str(settings.asset_discovery_grpc), app.state.service_token,
                                         settings.asset_discovery_grpc_deadline_s)
        return source, source

    return create_graph_app(SERVICE, settings, service_class=RiskAssessment, connect_store=RiskStore.connect,
                            peer_url=settings.asset_discovery_url, state_name="risk_assessment", router=router,
                            tables=table_specs(), subscriptions=events.SUBSCRIPTIONS, membership=membership,
                            peer=asset_peer, peer_factory=grpc_assets if settings.asset_discovery_grpc else None)
