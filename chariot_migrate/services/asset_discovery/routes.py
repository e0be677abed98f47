"""asset-discovery's routes: the legacy ``chariot-asset``, ``chariot-seed``, ``chariot-preseed``,
``chariot-attribute`` functions and ``POST /my`` for Asset/Seed/Attribute/Preseed, plus the
internal read API risk-assessment uses for relationship queries and risk targets."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from chariot_migrate.model import requests as rq
from chariot_migrate.services.common import authenticated, openapi_doc, param
from chariot_migrate.services.kit import AuthError

from .contract import WriteContext
from .graph_routes import GRAPH_QUERY_DOC, answer_graph_query, respond, run_write

router = APIRouter()


def _service(request: Request) -> Any:
    return request.app.state.asset_discovery


def _op(request: Request, name: str, *args: Any) -> Any:
    service = _service(request)

    def run(ctx: WriteContext, body: dict[str, Any]) -> Any:
        return getattr(service.ops(ctx), name)(body, *args)

    return run


@router.put("/asset", openapi_extra=openapi_doc([rq.AssetAdd, rq.AssetUpdate]))
async def put_asset(request: Request) -> JSONResponse:
    return await run_write(request, _op(request, "put_asset"))


@router.delete("/asset", openapi_extra=openapi_doc(rq.KeyBody))
async def delete_asset(request: Request) -> JSONResponse:
    return await run_write(request, _op(request, "delete_asset"))


@router.post("/bulk/asset", openapi_extra=openapi_doc(rq.BulkBody))
async def bulk_asset(request: Request) -> JSONResponse:
    return await run_write(request, _op(request, "bulk", "asset", _service(request).write_results_for))


@router.put("/seed", openapi_extra=openapi_doc([rq.SeedAdd, rq.StatusUpdate]))
async def put_seed(request: Request) -> JSONResponse:
    return await run_write(request, _op(request, "put_seed"))


@router.post("/preseed", openapi_extra=openapi_doc(rq.PreseedAdd))
async def add_preseed(request: Request) -> JSONResponse:
    return await run_write(request, _op(request, "add_preseed"))


@router.put("/preseed", openapi_extra=openapi_doc(rq.StatusUpdate))
async def update_preseed(request: Request) -> JSONResponse:
    return await run_write(request, _op(request, "update_preseed"))


@router.delete("/preseed", openapi_extra=openapi_doc(rq.KeyBody))
async def delete_preseed(request: Request) -> JSONResponse:
    return await run_write(request, _op(request, "delete_preseed"))


@router.put("/attribute", openapi_extra=openapi_doc(rq.AttributeAdd))
async def put_attribute(request: Request) -> JSONResponse:
    return await run_write(request, _op(request, "put_attribute"))


@router.delete("/attribute", openapi_extra=openapi_doc(rq.KeyBody))
async def delete_attribute(request: Request) -> JSONResponse:
    return await run_write(request, _op(request, "delete_attribute"))


@router.post("/bulk/attribute", openapi_extra=openapi_doc(rq.BulkBody))
async def bulk_attribute(request: Request) -> JSONResponse:
    return await run_write(request, _op(request, "bulk", "attribute", _service(request).write_results_for))


@router.post("/my", openapi_extra=GRAPH_QUERY_DOC)
async def post_my(request: Request) -> JSONResponse:
    return await answer_graph_query(request, _service(request))


# ---- internal read API (service-to-service tokens only) -------------------------------------

async def _internal(request: Request) -> str:
    who = await authenticated(request)
    if not who.internal:
        raise AuthError(403, "Forbidden: internal API")
    return who.account


@router.get("/internal/api/entity", include_in_schema=False)
async def internal_entity(request: Request) -> JSONResponse:
    username = await _internal(request)
    key = param(request, "key") or ""
    if not key.startswith("#"):
        return respond(400, {"message": "query parameter 'key' must be an entity key"})
    service = _service(request)
    table = service.store.table_for(key)
    if table is None:
        return respond(404, {"message": f"{key} is not owned by asset-discovery"})
    item = await run_in_thread(lambda: table.get(username, key))
    if item is None:
        return respond(404, {"message": f"{key} not found"})
    return respond(200, item)


@router.get("/internal/api/entities", include_in_schema=False)
async def internal_entities(request: Request) -> JSONResponse:
    username = await _internal(request)
    prefix = param(request, "prefix") or ""
    if not prefix.startswith("#") or prefix.count("#") < 2:
        return respond(400, {"message": "query parameter 'prefix' must look like #<kind>#"})
    service = _service(request)
    table = service.store.table_for(prefix)
    if table is None:  # risks: not ours to answer
        return respond(200, {"items": []})
    items = await service.kinds.with_prefix(username, prefix)
    if items is None:
        items = await run_in_thread(lambda: table.query_all(username, prefix))
    return respond(200, {"items": items})


async def run_in_thread(fn: Any) -> Any:
    from anyio import to_thread

    return await to_thread.run_sync(fn)
