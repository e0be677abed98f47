"""risk-assessment's routes: the legacy ``chariot-risk`` function and ``POST /my`` for Risk, plus
the internal read API asset-discovery uses for ``Asset -HAS_VULNERABILITY-> Risk`` queries."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
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
from chariot_migrate.services.kit.request import narrowest_prefix, param, prefix_overlaps

router = APIRouter()


def _service(request: Request) -> Any:
    return request.app.state.risk_assessment


@router.put("/risk", openapi_extra=openapi_doc([rq.RiskAdd, rq.RiskUpdate]))
async def put_risk(request: Request) -> JSONResponse:
    service = _service(request)
    return await run_write(request, lambda ctx, body: service.ops(ctx).put_risk(body))


@router.delete("/risk", openapi_extra=openapi_doc(rq.RiskDelete))
async def delete_risk(request: Request) -> JSONResponse:
    service = _service(request)
    return await run_write(request, lambda ctx, body: service.ops(ctx).delete_risk(body))


@router.post("/bulk/risk", openapi_extra=openapi_doc(rq.BulkBody))
async def bulk_risk(request: Request) -> JSONResponse:
    service = _service(request)

    def run(ctx: WriteContext, body: dict[str, Any]) -> Any:
        return service.ops(ctx).bulk(body, service.write_results_for)

    return await run_write(request, run)


@router.post("/my", openapi_extra=GRAPH_QUERY_DOC)
async def post_my(request: Request) -> JSONResponse:
    return await answer_graph_query(request, _service(request))


@router.get("/my", openapi_extra=KEY_SEARCH_DOC)
async def get_my(request: Request) -> JSONResponse:
    """``GET /my?key=#risk#…`` (routes.yaml)."""
    service = _service(request)
    return await answer_key_search(request, lambda term: service.store.risks, service.settings.page_size)


@router.get("/internal/api/entity", include_in_schema=False)
async def internal_entity(request: Request) -> JSONResponse:
    username = await internal_account(request)
    key = param(request, "key") or ""
    if not key.startswith("#risk#"):
        return respond(404, {"message": f"{key} is not owned by risk-assessment"})
    item = await to_thread.run_sync(lambda: _service(request).store.risks.get(username, key))
    if item is None:
        return respond(404, {"message": f"{key} not found"})
    return respond(200, item)


@router.get("/internal/api/entities", include_in_schema=False)
async def internal_entities(request: Request) -> JSONResponse:
    """Every entity this service owns under ``prefix`` (risks, bulk-risk jobs): what asset-discovery
    reads for relationship queries, and reporting for ``GET /my/count`` and report exports."""
    username = await internal_account(request)
    prefix = param(request, "prefix") or ""
    if not prefix.startswith("#"):
        return respond(400, {"message": "query parameter 'prefix' must be a key prefix starting with '#'"})
    store = _service(request).store
    items: list[dict[str, Any]] = []
    if prefix_overlaps(prefix, "#risk#"):
        cached = await _service(request).kinds.with_prefix(username, prefix) if prefix.startswith("#risk#") else None
        items += cached if cached is not None else await to_thread.run_sync(
            lambda: store.risks.query_all(username, narrowest_prefix(prefix, "#risk#")))
    if prefix_overlaps(prefix, "#job#"):
        items += await to_thread.run_sync(lambda: store.jobs.query_all(username, narrowest_prefix(prefix, "#job#")))
    return respond(200, {"items": items})
