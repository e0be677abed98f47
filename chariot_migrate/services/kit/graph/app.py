"""One app factory for the graph services (asset-discovery, risk-assessment), parameterised by
the service: its settings, its store, which kinds its peer owns and how to read them.

A graph service owns some entity kinds in its own tables and keeps a read model of the kinds
its peer owns (fed by the peer's events). Relationship queries read the peer's kinds from the
peer's ``/internal/api`` when its URL is configured (falling back to the read model when the
peer is down), else from the read model. Each service supplies a :class:`GraphService` subclass
with its own ``ops``, ``own_table`` (the table of a kind it owns) and ``own_loaders``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import boto3
from anyio import to_thread
from fastapi import APIRouter, FastAPI

from chariot_migrate.aws_resources import dynamodb_endpoint, ensure_bucket

from ..auth import MembershipLookup
from ..cache import ReadThroughCache
from ..chariot import create_chariot_app
from ..events import Subscription
from ..repository import TableSpec
from ..settings import ChariotSettings
from .contract import WriteContext
from .entity_table import EntityTable
from .kind_cache import KindLists, PartitionLoader, invalidate_on_write, table_loader
from .peers import FallbackSource, HttpPeerSource, PeerSource, ReadModelSource
from .search import DEFAULT_MAX_RESPONSE_BYTES


class GraphSettings(ChariotSettings):
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES  # legacy: CHARIOT_MAX_RESPONSE_BYTES
    files_bucket: str = "graph-files"  # bulk results files (``{account}/bulk/…``); per service

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None, **overrides: Any):
        env = os.environ if env is None else env
        own = "CHARIOT_" + service.upper().replace("-", "_") + "_MAX_RESPONSE_BYTES"
        if "CHARIOT_MAX_RESPONSE_BYTES" in env and not any(v in env for v in ("MAX_RESPONSE_BYTES", own)):
            overrides.setdefault("max_response_bytes", env["CHARIOT_MAX_RESPONSE_BYTES"])
        return super().from_env(service, env, **overrides)


class GraphService:
    """The running graph service: its store, S3 for bulk results, and how the peer's kinds are read.

    Subclasses set ``peer_service`` (the peer's name, for logs) and implement ``ops``,
    ``own_table(kind)`` (None for a kind the peer owns), ``peer_view(store)`` (the read-model
    table) and ``own_loaders()`` (the kind loads of its own tables worth caching)."""

    peer_service = ""
    peer_kinds: frozenset[str] = frozenset()  # the peer's kinds cached when the read model answers

    def __init__(self, settings: GraphSettings, store: Any, s3: Any, peer: PeerSource | None = None) -> None:
        self.settings = settings
        self.store = store
        self.s3 = s3
        # The HTTP client we created for the peer (closed at shutdown); None for injected peers.
        self.peer_client: Any = None
        view = ReadModelSource(self.peer_view(store))
        self.peer: PeerSource = FallbackSource(peer, view, self.peer_service) if peer else view
        # Nothing is cached until create_graph_app's startup wires app.state.cache in.
        self.kinds = KindLists(ReadThroughCache(None, namespace="unwired"), {})

    def peer_view(self, store: Any) -> EntityTable:
        raise NotImplementedError

    def own_table(self, kind: str) -> EntityTable | None:
        raise NotImplementedError

    def own_loaders(self) -> dict[str, PartitionLoader]:
        raise NotImplementedError

    def ops(self, ctx: WriteContext) -> Any:
        raise NotImplementedError

    def write_results_for(self, username: str) -> Any:
        def write(name: str, data: bytes) -> None:
            self.s3.put_object(Bucket=self.settings.files_bucket, Key=f"{username}/{name}", Body=data,
                               ContentType="application/json")
        return write

    def kind_source(self, username: str) -> Any:
        def source(kind: str) -> list[dict[str, Any]]:
            table = self.own_table(kind)
            if table is None:
                return self.peer.list(username, kind)
            return table.query_all(username, f"#{kind}#")
        return source

    def cached_loaders(self) -> dict[str, PartitionLoader]:
        """The kind loads worth caching: our own tables' kinds, and the peer's kinds when our read
        model (not the peer's API) answers them."""
        loaders = self.own_loaders()
        if isinstance(self.peer, ReadModelSource):
            loaders |= {kind: table_loader(self.peer.table, kind) for kind in self.peer_kinds}
        return loaders


def create_graph_app(service_name: str, settings: GraphSettings, *,
                     service_class: Callable[[GraphSettings, Any, Any, PeerSource | None], GraphService],
                     connect_store: Callable[[Any, str], Any], peer_url: str | None, state_name: str,
                     router: APIRouter, tables: Sequence[TableSpec], subscriptions: Sequence[Subscription],
                     membership: MembershipLookup | None = None, peer: PeerSource | None = None,
                     peer_factory: Callable[[FastAPI], tuple[PeerSource, Any]] | None = None,
                     on_startup: Sequence[Callable[[FastAPI], Any]] = (),
                     on_shutdown: Sequence[Callable[[FastAPI], Any]] = ()) -> FastAPI:
    """The FastAPI app of a graph service; the running service is ``app.state.<state_name>``.

    ``peer_factory(app)``, when given, builds the peer source once the app has its service token
    (e.g. a gRPC client) and returns it with the client to close at shutdown; it wins over
    ``peer_url``. ``on_startup`` hooks run once the service is in ``app.state``."""

    async def startup(app: FastAPI) -> None:
        ddb = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint(settings.aws_endpoint_url),
                           region_name=settings.aws_region)
        s3 = boto3.client("s3", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)
        await to_thread.run_sync(lambda: ensure_bucket(s3, settings.files_bucket, settings.aws_region))
        source = peer
        owned = None
        if source is None and peer_factory is not None:
            source, owned = peer_factory(app)
        elif source is None and peer_url:
            source = HttpPeerSource(peer_url, app.state.service_token)
            owned = source.client
        service = service_class(settings, connect_store(ddb, settings.table_prefix), s3, source)
        service.peer_client = owned
        invalidate_on_write(app.state.cache, service.store.tables())
        service.kinds = KindLists(app.state.cache, service.cached_loaders())
        setattr(app.state, state_name, service)

    async def shutdown(app: FastAPI) -> None:
        service = getattr(app.state, state_name, None)
        if service is not None and service.peer_client is not None:
            service.peer_client.close()

    return create_chariot_app(service_name, routers=[router], tables=list(tables), settings=settings,
                              subscriptions=list(subscriptions), on_startup=[startup, *on_startup],
                              on_shutdown=[shutdown, *on_shutdown],
                              membership=membership)
