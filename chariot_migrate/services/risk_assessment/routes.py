"""risk-assessment's routes: the legacy ``chariot-risk`` function and ``POST /my`` for Risk, plus
the internal read API asset-discovery uses for ``Asset -HAS_VULNERABILITY-> Risk`` queries."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from chariot_migrate.model import requests as rq
from chariot_migrate.services.asset_discovery.contract import WriteContext
from chariot_migrate.services.asset_discovery.graph_routes import (
    GRAPH_QUERY_DOC,
    answer_graph_query,
    respond,
    run_write,
)
from chariot_migrate.services.common import authenticated, openapi_doc, param
from chariot_migrate.services.kit import AuthError

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


async def _internal(request: Request) -> str:
    who = await authenticated(request)
    if not who.internal:
        raise AuthError(403, "Forbidden: internal API")
    return who.account


@router.get("/internal/api/entity", include_in_schema=False)
async def internal_entity(request: Request) -> JSONResponse:
    username = await _internal(request)
    key = param(request, "key") or ""
    if not key.startswith("#risk#"):
        return respond(404, {"message": f"{key} is not owned by risk-assessment"})
    item = await to_thread.run_sync(lambda: _service(request).store.risks.get(username, key))
    if item is None:
        return respond(404, {"message": f"{key} not found"})
    return respond(200, item)


@router.get("/internal/api/entities", include_in_schema=False)
async def internal_entities(request: Request) -> JSONResponse:
    username = await _internal(request)
    prefix = param(request, "prefix") or ""
    if not prefix.startswith("#") or prefix.count("#") < 2:
        return respond(400, {"message": "query parameter 'prefix' must look like #<kind>#"})
    if not prefix.startswith("#risk#"):
        return respond(200, {"items": []})
    service = _service(request)
    items = await service.kinds.with_prefix(username, prefix)
    if items is None:
        items = await to_thread.run_sync(lambda: service.store.risks.query_all(username, prefix))
    return respond(200, {"items": items})
