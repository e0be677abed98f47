"""Routes: ``POST /job``, ``GET /capabilities``, ``GET /my`` (jobs, schedules), schedules CRUD."""

from __future__ import annotations

import uuid
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Request

from chariot_migrate.model import capabilities as caps
from chariot_migrate.model import schedules
from chariot_migrate.model.clock import now_iso
from chariot_migrate.model.requests import JobAdd

from ..kit import AuthError, Caller
from ..kit.auth import caller, chariot_caller
from ..kit.openapi import MY_QUERY, openapi_doc, query_param
from ..kit.replay import adopt, replay_values
from ..kit.request import (
    ApiError,
    bad_request,
    json_body,
    narrowest_prefix,
    not_found,
    param,
    parse_model,
    prefix_overlaps,
)
from ..kit.tables import SearchError, search_my
from .service import JobService
from .store import JOB_PREFIX, JOBS_TABLE, SCHEDULE_PREFIX, SCHEDULES_TABLE, table_for_key

router = APIRouter()


def _service(request: Request) -> JobService:
    return request.app.state.jobs


@router.post("/job", openapi_extra=openapi_doc(JobAdd))
@router.post("/job/", include_in_schema=False)  # the old UI's trailing slash
async def add_job(request: Request, who: Caller = Depends(chariot_caller)) -> list[dict[str, Any]]:
    body = await json_body(request)
    m = parse_model(JobAdd, body)
    return await _service(request).add(who.account, m.key, m.capabilities, m.config, m.credential_ids,
                                       replay_values(request, body))


@router.get("/capabilities", openapi_extra=openapi_doc(query=[
    query_param("name", "capability name"), query_param("target", "target kind"),
    query_param("executor", "executor")]))
async def list_capabilities(request: Request, who: Caller = Depends(chariot_caller)) -> list[dict[str, Any]]:
    return caps.capability_list(param(request, "name") or "", param(request, "target") or "",
                                param(request, "executor") or "")


@router.get("/my", openapi_extra=openapi_doc(query=MY_QUERY))
async def search(request: Request, who: Caller = Depends(chariot_caller)) -> dict[str, Any]:
    params = {k: request.query_params.getlist(k)[-1] for k in request.query_params}
    tables = request.app.state.tables
    table = tables[table_for_key(params.get("key") or "")]
    try:
        return await to_thread.run_sync(
            lambda: search_my(table, who.account, params, request.app.state.settings.page_size))
    except SearchError as e:
        raise bad_request(str(e)) from None


@router.get("/internal/api/entities", include_in_schema=False)
async def internal_entities(request: Request) -> dict[str, Any]:
    """Jobs and schedules under ``prefix`` (service tokens only): reporting's ``GET /my/count``."""
    who = await caller(request)
    if not who.internal:
        raise AuthError(403, "Forbidden: internal API")
    prefix = param(request, "prefix") or ""
    if not prefix.startswith("#"):
        raise bad_request("query parameter 'prefix' must be a key prefix starting with '#'")
    tables = request.app.state.tables
    items: list[dict[str, Any]] = []
    for kind_prefix, name in ((JOB_PREFIX, JOBS_TABLE), (SCHEDULE_PREFIX, SCHEDULES_TABLE)):
        if prefix_overlaps(prefix, kind_prefix):
            items += await tables[name].aquery_all(who.account, narrowest_prefix(prefix, kind_prefix))
    return {"items": items}


# -- schedules ---------------------------------------------------------------------------------------


async def _schedule(request: Request, account: str, schedule_id: str) -> dict[str, Any]:
    problem = schedules.id_problem(schedule_id)
    if problem:
        raise bad_request(problem)
    item = await request.app.state.tables[SCHEDULES_TABLE].aget(account, schedules.schedule_key(schedule_id))
    if not item:
        raise not_found(schedules.not_found_message(schedule_id))
    return item


@router.post("/capability/schedule", openapi_extra=openapi_doc(schedules.ScheduleCreate))
async def create_schedule(request: Request, who: Caller = Depends(chariot_caller)) -> dict[str, Any]:
    body = await json_body(request)
    m = parse_model(schedules.ScheduleCreate, body)
    await _service(request).find_target(who.account, m.target_key)
    replay = replay_values(request, body)
    now = adopt(replay, "createdAt", now_iso())
    item = schedules.build(m, who.account, adopt(replay, "scheduleId", str(uuid.uuid4())), now)
    return await request.app.state.tables[SCHEDULES_TABLE].aput(item)


@router.put("/capability/schedule/{schedule_id}", openapi_extra=openapi_doc(schedules.ScheduleUpdate))
async def update_schedule(schedule_id: str, request: Request, who: Caller = Depends(chariot_caller)) -> dict[str, Any]:
    body = await json_body(request)
    m = parse_model(schedules.ScheduleUpdate, body)
    item = await _schedule(request, who.account, schedule_id)
    now = adopt(replay_values(request, body), "updatedAt", now_iso())
    return await request.app.state.tables[SCHEDULES_TABLE].aput(schedules.apply_update(item, m, now))


@router.delete("/capability/schedule/{schedule_id}")
async def delete_schedule(schedule_id: str, request: Request, who: Caller = Depends(chariot_caller)) -> dict[str, Any]:
    item = await _schedule(request, who.account, schedule_id)
    await request.app.state.tables[SCHEDULES_TABLE].adelete(who.account, item["key"])
    return item


@router.patch("/capability/schedule/{schedule_id}/{action}",
              openapi_extra=openapi_doc({"type": "object"}, body_required=False))
async def pause_resume(schedule_id: str, action: str, request: Request,
                       who: Caller = Depends(chariot_caller)) -> dict[str, Any]:
    problem = schedules.action_problem(action)
    if problem:
        raise bad_request(problem)
    await json_body(request, {})
    item = await _schedule(request, who.account, schedule_id)
    try:
        changed = schedules.transition(item, action, adopt(replay_values(request), "updatedAt", now_iso()))
    except ValueError as e:
        raise ApiError(409, str(e)) from None
    return await request.app.state.tables[SCHEDULES_TABLE].aput(changed)
