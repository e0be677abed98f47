"""asset-discovery's routes: the legacy ``chariot-asset``, ``chariot-seed``, ``chariot-preseed``,
``chariot-attribute`` functions and ``POST /my`` for Asset/Seed/Attribute/Preseed, plus the
internal read API risk-assessment uses for relationship queries and risk targets."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from chariot_migrate.model import requests as rq
from chariot_migrate.services.kit.graph.contract import WriteContext
from chariot_migrate.services.kit.graph.routes import (
    GRAPH_QUERY_DOC,
    KEY_SEARCH_DOC,
    answer_graph_query,
    answer_key_search,
    internal_account,
    respond,
    run_write,
)
from chariot_migrate.services.kit.openapi import openapi_doc
from chariot_migrate.services.kit.request import param

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


@router.get("/my", openapi_extra=KEY_SEARCH_DOC)
async def get_my(request: Request) -> JSONResponse:
    """``GET /my?key=#asset#…`` (also ``#seed#``, ``#attribute#``, ``#preseed#``: routes.yaml)."""
    service = _service(request)
    return await answer_key_search(request, lambda term: service.store.table_for(term) or service.store.assets,
                                   service.settings.page_size)


# ---- internal read API (service-to-service tokens only) -------------------------------------

@router.get("/internal/api/entity", include_in_schema=False)
async def internal_entity(request: Request) -> JSONResponse:
    username = await internal_account(request)
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
    """Every entity this service owns under ``prefix`` (``#<kind>#…``, or ``#``/``#a`` across kinds):
    what peers read for relationships and job targets, and reporting for ``GET /my/count``."""
    username = await internal_account(request)
    prefix = param(request, "prefix") or ""
    if not prefix.startswith("#"):
        return respond(400, {"message": "query parameter 'prefix' must be a key prefix starting with '#'"})
    return respond(200, {"items": await _service(request).owned_entities(username, prefix)})


async def run_in_thread(fn: Any) -> Any:
    from anyio import to_thread

    return await to_thread.run_sync(fn)
