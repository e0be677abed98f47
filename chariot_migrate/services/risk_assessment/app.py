"""risk-assessment (phase 3): risks, their statuses, history, priority and graph queries.

``uvicorn --factory chariot_migrate.services.risk_assessment.app:create_app`` (or
``chariot-migrate service run risk-assessment``). Settings: env ``CHARIOT_RISK_ASSESSMENT_<FIELD>``
or ``<FIELD>`` (see :class:`RiskAssessmentSettings` and ``services/common.py``).
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from anyio import to_thread
from fastapi import FastAPI

from chariot_migrate.services.asset_discovery.app import _ensure_bucket
from chariot_migrate.services.asset_discovery.contract import WriteContext
from chariot_migrate.services.asset_discovery.graph_search import DEFAULT_MAX_RESPONSE_BYTES
from chariot_migrate.services.asset_discovery.kind_cache import (
    CACHED_KINDS,
    KindLists,
    PartitionLoader,
    invalidate_on_write,
    table_loader,
)
from chariot_migrate.services.asset_discovery.peers import FallbackSource, HttpPeerSource
from chariot_migrate.services.asset_discovery.store import PeerSource, ReadModelSource
from chariot_migrate.services.common import ChariotSettings, create_chariot_app
from chariot_migrate.services.kit import MembershipLookup, ReadThroughCache

from . import events
from .ops import RiskOps
from .routes import router
from .store import SERVICE, RiskStore, table_specs


class RiskAssessmentSettings(ChariotSettings):
    asset_discovery_url: str | None = None  # consistent asset/attribute reads (risk targets, relationships)
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES  # legacy: CHARIOT_MAX_RESPONSE_BYTES
    files_bucket: str = "risk-assessment-files"  # bulk results files (``{account}/bulk/…``)

    @classmethod
    def from_env(cls, service: str = SERVICE, env: Any = None, **overrides: Any):  # type: ignore[override]
        env = os.environ if env is None else env
        if "CHARIOT_MAX_RESPONSE_BYTES" in env and not any(
                v in env for v in ("MAX_RESPONSE_BYTES", "CHARIOT_RISK_ASSESSMENT_MAX_RESPONSE_BYTES")):
            overrides.setdefault("max_response_bytes", env["CHARIOT_MAX_RESPONSE_BYTES"])
        return super().from_env(service, env, **overrides)


class RiskAssessment:
    def __init__(self, settings: RiskAssessmentSettings, store: RiskStore, s3: Any,
                 asset_peer: PeerSource | None = None) -> None:
        self.settings = settings
        self.store = store
        self.s3 = s3
        # The HTTP client we created for the peer (closed at shutdown); None for injected peers.
        self.peer_client: Any = None
        view = ReadModelSource(store.asset_view)
        self.assets: PeerSource = FallbackSource(asset_peer, view, "asset-discovery") if asset_peer else view
        # Nothing is cached until create_app's startup wires app.state.cache in.
        self.kinds = KindLists(ReadThroughCache(None, namespace="unwired"), {})

    def ops(self, ctx: WriteContext) -> RiskOps:
        return RiskOps(self.store, ctx, self.assets)

    def write_results_for(self, username: str) -> Any:
        def write(name: str, data: bytes) -> None:
            self.s3.put_object(Bucket=self.settings.files_bucket, Key=f"{username}/{name}", Body=data,
                               ContentType="application/json")
        return write

    def kind_source(self, username: str) -> Any:
        def source(kind: str) -> list[dict[str, Any]]:
            if kind == "risk":
                return self.store.risks.query_all(username, "#risk#")
            return self.assets.list(username, kind)
        return source

    def cached_loaders(self) -> dict[str, PartitionLoader]:
        """The kind loads worth caching: risks, and the asset kinds when our read model (not
        asset-discovery's API) answers them."""
        loaders = {"risk": table_loader(self.store.risks, "risk")}
        if isinstance(self.assets, ReadModelSource):
            loaders |= {kind: table_loader(self.assets.table, kind) for kind in CACHED_KINDS - {"risk"}}
        return loaders


def create_app(settings: RiskAssessmentSettings | None = None, *, membership: MembershipLookup | None = None,
               asset_peer: PeerSource | None = None) -> FastAPI:
    settings = settings or RiskAssessmentSettings.from_env(SERVICE)

    async def startup(app: FastAPI) -> None:
        ddb = boto3.client("dynamodb", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)
        s3 = boto3.client("s3", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)
        await to_thread.run_sync(lambda: _ensure_bucket(s3, settings.files_bucket, settings.aws_region))
        peer = asset_peer
        owned = None
        if peer is None and settings.asset_discovery_url:
            peer = HttpPeerSource(settings.asset_discovery_url, app.state.service_token)
            owned = peer.client
        service = RiskAssessment(settings, RiskStore.connect(ddb, settings.table_prefix), s3, peer)
        service.peer_client = owned
        invalidate_on_write(app.state.cache, service.store.tables())
        service.kinds = KindLists(app.state.cache, service.cached_loaders())
        app.state.risk_assessment = service

    async def shutdown(app: FastAPI) -> None:
        service = getattr(app.state, "risk_assessment", None)
        if service is not None and service.peer_client is not None:
            service.peer_client.close()

    return create_chariot_app(SERVICE, routers=[router], tables=table_specs(), settings=settings,
                              subscriptions=events.SUBSCRIPTIONS, on_startup=[startup], on_shutdown=[shutdown],
                              membership=membership)
