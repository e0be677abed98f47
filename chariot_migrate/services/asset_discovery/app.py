"""asset-discovery (phase 2): assets, seeds, preseeds, attributes and their graph queries.

``uvicorn --factory chariot_migrate.services.asset_discovery.app:create_app`` (or
``chariot-migrate service run asset-discovery``). Settings: env ``CHARIOT_ASSET_DISCOVERY_<FIELD>``
or ``<FIELD>`` (see :class:`AssetDiscoverySettings` and ``services/common.py``).
"""

from __future__ import annotations

import logging
from typing import Any

import boto3
from anyio import to_thread
from botocore.exceptions import ClientError
from fastapi import FastAPI

from chariot_migrate.services.common import ChariotSettings, create_chariot_app
from chariot_migrate.services.kit import MembershipLookup, ReadThroughCache

from . import events
from .contract import WriteContext
from .graph_search import DEFAULT_MAX_RESPONSE_BYTES
from .kind_cache import CACHED_KINDS, KindLists, PartitionLoader, invalidate_on_write, table_loader
from .ops import AssetOps
from .peers import FallbackSource, HttpPeerSource
from .routes import router
from .store import SERVICE, AssetStore, PeerSource, ReadModelSource, table_specs

log = logging.getLogger("chariot.asset-discovery")


class AssetDiscoverySettings(ChariotSettings):
    risk_assessment_url: str | None = None  # consistent risk reads for relationship queries
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES  # legacy: CHARIOT_MAX_RESPONSE_BYTES
    files_bucket: str = "asset-discovery-files"  # bulk results files (``{account}/bulk/…``)

    @classmethod
    def from_env(cls, service: str = SERVICE, env: Any = None, **overrides: Any):  # type: ignore[override]
        import os

        env = os.environ if env is None else env
        if "CHARIOT_MAX_RESPONSE_BYTES" in env and not any(
                v in env for v in ("MAX_RESPONSE_BYTES", "CHARIOT_ASSET_DISCOVERY_MAX_RESPONSE_BYTES")):
            overrides.setdefault("max_response_bytes", env["CHARIOT_MAX_RESPONSE_BYTES"])
        return super().from_env(service, env, **overrides)


class AssetDiscovery:
    """The running service: its store, S3 for bulk results, and how risks are read."""

    def __init__(self, settings: AssetDiscoverySettings, store: AssetStore, s3: Any,
                 risk_peer: PeerSource | None = None) -> None:
        self.settings = settings
        self.store = store
        self.s3 = s3
        # The HTTP client we created for the peer (closed at shutdown); None for injected peers.
        self.peer_client: Any = None
        view = ReadModelSource(store.risk_view)
        self.risks: PeerSource = FallbackSource(risk_peer, view, "risk-assessment") if risk_peer else view
        # Nothing is cached until create_app's startup wires app.state.cache in.
        self.kinds = KindLists(ReadThroughCache(None, namespace="unwired"), {})

    def ops(self, ctx: WriteContext) -> AssetOps:
        return AssetOps(self.store, ctx, self.risks)

    def write_results_for(self, username: str) -> Any:
        def write(name: str, data: bytes) -> None:
            self.s3.put_object(Bucket=self.settings.files_bucket, Key=f"{username}/{name}", Body=data,
                               ContentType="application/json")
        return write

    def kind_source(self, username: str) -> Any:
        def source(kind: str) -> list[dict[str, Any]]:
            table = self.store.table_for(kind)
            if table is None:
                return self.risks.list(username, kind)
            return table.query_all(username, f"#{kind}#")
        return source

    def cached_loaders(self) -> dict[str, PartitionLoader]:
        """The kind loads worth caching: our own tables' kinds, and risks when our read model (not
        risk-assessment's API) answers them."""
        loaders: dict[str, PartitionLoader] = {}
        for kind in CACHED_KINDS:
            table = self.store.table_for(kind)
            if table is not None:
                loaders[kind] = table_loader(table, kind)
        if isinstance(self.risks, ReadModelSource):
            loaders["risk"] = table_loader(self.risks.table, "risk")
        return loaders


def create_app(settings: AssetDiscoverySettings | None = None, *, membership: MembershipLookup | None = None,
               risk_peer: PeerSource | None = None) -> FastAPI:
    settings = settings or AssetDiscoverySettings.from_env(SERVICE)

    async def startup(app: FastAPI) -> None:
        ddb = boto3.client("dynamodb", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)
        s3 = boto3.client("s3", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)
        await to_thread.run_sync(lambda: _ensure_bucket(s3, settings.files_bucket, settings.aws_region))
        peer = risk_peer
        owned = None
        if peer is None and settings.risk_assessment_url:
            peer = HttpPeerSource(settings.risk_assessment_url, app.state.service_token)
            owned = peer.client
        service = AssetDiscovery(settings, AssetStore.connect(ddb, settings.table_prefix), s3, peer)
        service.peer_client = owned
        invalidate_on_write(app.state.cache, service.store.tables())
        service.kinds = KindLists(app.state.cache, service.cached_loaders())
        app.state.asset_discovery = service

    async def shutdown(app: FastAPI) -> None:
        service = getattr(app.state, "asset_discovery", None)
        if service is not None and service.peer_client is not None:
            service.peer_client.close()

    return create_chariot_app(SERVICE, routers=[router], tables=table_specs(), settings=settings,
                              subscriptions=events.SUBSCRIPTIONS, on_startup=[startup], on_shutdown=[shutdown],
                              membership=membership)


def _ensure_bucket(s3: Any, bucket: str, region: str) -> None:
    try:
        if region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    except ClientError as e:
        if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
