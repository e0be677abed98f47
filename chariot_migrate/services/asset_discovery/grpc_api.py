"""asset-discovery's gRPC API (``AssetDiscoveryService``, ``kit/proto/asset_discovery.proto``):
the same store, rules and answers as its REST API, for peer services (internal token only).

``serve(app, address)`` starts a ``grpc.aio`` server on the app's event loop, with the standard
health service (SERVING once the app has started) and server reflection; ``stop`` drains it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
from anyio import to_thread
from fastapi import FastAPI
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from chariot_migrate.model.classes import asset_class
from chariot_migrate.model.errors import ApiError
from chariot_migrate.model.requests import AssetAdd
from chariot_migrate.services.kit.graph.contract import validate
from chariot_migrate.services.kit.grpc_auth import internal_caller
from chariot_migrate.services.kit.grpc_codegen import stubs

from . import domain
from .grpc_messages import asset_fields, attributes_of, edges

pb, pb_grpc = stubs("asset_discovery")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AssetDiscoveryService"].full_name
DEFAULT_PAGE = 100
MAX_PAGE = 1000
log = logging.getLogger("chariot.asset-discovery.grpc")


def asset_message(entity: dict[str, Any]) -> Any:
    return pb.Asset(**asset_fields(entity))


# Generated at install (git-ignored), so the type checker sees only a module: the base is Any to it.
_GeneratedServicer: Any = pb_grpc.AssetDiscoveryServiceServicer


class AssetDiscoveryServicer(_GeneratedServicer):
    """Reads the running service from ``app.state`` (set by the HTTP app's startup)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    @property
    def service(self) -> Any:
        return self.app.state.asset_discovery

    async def _account(self, context: grpc.aio.ServicerContext) -> str:
        who = await internal_caller(context, getattr(self.app.state, "auth", None))
        return who.account

    async def DiscoverAssets(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        account = await self._account(context)
        prefix = request.prefix or "#asset#"
        if not prefix.startswith("#"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "prefix must be a key prefix starting with '#'")
        page_size = min(request.page_size or DEFAULT_PAGE, MAX_PAGE)
        metrics = self.app.state.metrics
        sent = metrics.grpc_messages_sent.labels(metrics.service, "DiscoverAssets")
        count = 0
        # The RPC ending (the client cancelled or went away) ends the stream. grpc.aio does not
        # always cancel a handler whose write waits on flow control (seen on grpcio 1.85.3: it
        # waited forever), so each write races the RPC's end.
        ended = asyncio.Event()
        context.add_done_callback(lambda _: ended.set())
        end = asyncio.ensure_future(ended.wait())
        try:
            for table in self.service.store.owned_tables(prefix):
                pages = iter(table.pages(account, prefix, page_size))
                # One store page per read, only as fast as the client takes them: each write
                # waits for HTTP/2 flow control, so a slow client holds the next page back.
                while (page := await to_thread.run_sync(next, pages, None)) is not None:
                    for entity in page:
                        write = asyncio.ensure_future(context.write(asset_message(entity)))
                        while not write.done() and not end.done():
                            await asyncio.wait({write, end}, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
                            if context.cancelled() or context.done():  # in case no callback comes
                                break
                        if not write.done():
                            write.cancel()
                            raise asyncio.CancelledError
                        write.result()
                        sent.inc()
                        count += 1
        except asyncio.CancelledError:  # the client went away (or grpc.aio cancelled the handler)
            metrics.grpc_streams_cancelled.labels(metrics.service, "DiscoverAssets").inc()
            log.info("DiscoverAssets cancelled", extra={"sent": count})
            raise
        finally:
            end.cancel()

    async def ValidateAsset(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        account = await self._account(context)
        body: dict[str, Any] = {"group": request.dns, "identifier": request.name or request.dns}
        body.update({k: v for k, v in (("status", request.status), ("type", request.type)) if v})
        if request.attackSurface:
            body["attackSurface"] = list(request.attackSurface)
        try:
            m = validate(AssetAdd, body)
        except ApiError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.message)
        key = domain.asset_key_for(m.type, m.group, m.identifier)
        existing = await to_thread.run_sync(lambda: self.service.store.assets.get(account, key))
        dns, name = (m.group.lower(), m.identifier.lower()) if m.type == "asset" else (m.group, m.identifier)
        return pb.ValidationResult(valid=True, key=key, status=m.status, exists=existing is not None,
                                   **{"class": asset_class(dns, name, "self")})

    async def GetAssetRelationships(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        account = await self._account(context)
        if bool(request.key) == bool(request.prefix):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "set exactly one of key or prefix")
        if not (request.key or request.prefix).startswith("#"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "key and prefix must start with '#'")
        if request.key:
            nodes = await to_thread.run_sync(lambda: self._one(account, request.key))
        else:
            nodes = await self.service.owned_entities(account, request.prefix)
        if request.related:
            attributes = await self.service.owned_entities(account, "#attribute#")
            seen = {n["key"] for n in nodes}
            nodes = [*nodes, *(a for a in attributes_of(nodes, attributes) if a["key"] not in seen)]
        return pb.RelationshipGraph(nodes=[asset_message(n) for n in nodes],
                                    relationships=[pb.Relationship(source=s, label=lb, target=t)
                                                   for s, lb, t in edges(nodes)])

    def _one(self, account: str, key: str) -> list[dict[str, Any]]:
        tables = self.service.store.owned_tables(key)  # none for kinds other services own (risks, ...)
        item = tables[0].get(account, key) if tables else None
        return [item] if item else []


async def serve(app: FastAPI, address: str) -> grpc.aio.Server:
    """Start serving on ``address`` (``host:port``; the port may be held, not listening, by a
    parent such as ``up``: gRPC binds with SO_REUSEPORT, so it takes that port over)."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
    pb_grpc.add_AssetDiscoveryServiceServicer_to_server(AssetDiscoveryServicer(app), server)
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    if server.add_insecure_port(address) == 0:
        raise RuntimeError(f"gRPC cannot listen on {address}")
    await server.start()
    for name in (SERVICE_NAME, ""):
        await checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("gRPC listening", extra={"address": address})
    return server
