"""Routes: ``GET /my/count``, ``GET /my`` (statistics, files, export jobs), ``/file``,
``/encrypted-file``, ``POST /export/report``."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Request, Response

from chariot_migrate.model import report
from chariot_migrate.model.keys import file_key
from chariot_migrate.model.table import GLOBAL_USERNAME

from ..kit import Caller
from ..kit.auth import chariot_caller
from ..kit.openapi import FLAG, GLOBAL_PARAM, MY_QUERY, openapi_doc, query_param
from ..kit.replay import adopt
from ..kit.replay import replay_values as replay_of
from ..kit.request import (
    ApiError,
    bad_request,
    json_body,
    narrowest_prefix,
    not_found,
    param,
    param_flag,
    parse_model,
    prefix_overlaps,
)
from ..kit.tables import SearchError, search_my
from . import readmodel
from .blobs import BlobMissing, check_name
from .owners import OwnerRows, OwnerUnavailable
from .store import ENTITIES_TABLE, EXPORTS_TABLE, FILES_TABLE, STATISTICS_TABLE, table_for_key

router = APIRouter()
log = logging.getLogger("chariot.reporting")
FILE_NAME = query_param("name", "the file name (path)", required=True)
# Reporting's own rows that legacy keeps in the account's partition too (counted like the rest).
OWN_TABLES = (("#file#", FILES_TABLE), ("#statistic#", STATISTICS_TABLE), (report.JOB_PREFIX, EXPORTS_TABLE))


def _t(request: Request, name: str):
    return request.app.state.tables[name]


def _now(request: Request) -> str:
    return request.app.state.clock()


def _partition(request: Request, who: Caller) -> str:
    return GLOBAL_USERNAME if param_flag(request, "global") else who.account


@router.get("/my/count", openapi_extra=openapi_doc(query=[
    query_param("key", "a key prefix (default '#') or field:value"), query_param("label", "entity kind"),
    query_param("exact", "match the value exactly", schema=FLAG), GLOBAL_PARAM]))
@router.get("/my/{count}", include_in_schema=False)
async def my_count(request: Request, who: Caller = Depends(chariot_caller)) -> dict[str, Any]:
    # The CLI's `search -c` sends whatever term it was given: a key prefix or field:value.
    term = param(request, "key") or "#"
    username = _partition(request, who)
    if term.startswith("#"):
        return readmodel.count(await _indexed(request, username, term))
    field, sep, value = term.partition(":")
    if not sep or not field:
        raise bad_request("key must be a key prefix starting with '#' or field:value")
    label = (param(request, "label") or "").lower()
    rows = await _indexed(request, username, f"#{label}#" if label else "#")
    exact = param_flag(request, "exact")
    return readmodel.count([r for r in rows if readmodel.field_match(r.get(field), value, exact)])


async def _indexed(request: Request, username: str, prefix: str) -> list[dict[str, Any]]:
    """Every row under a key prefix, as legacy's one table would hold it: the owners' entities
    (their internal API; the event-fed read model when they are not configured) and reporting's
    own files, statistics and export jobs."""
    owners: OwnerRows | None = request.app.state.owners
    try:
        items = (await owners.rows(username, prefix) if owners is not None
                 else await _t(request, ENTITIES_TABLE).aquery_all(username, prefix))
    except OwnerUnavailable as e:
        raise ApiError(503, f"entities unavailable: {e}; try again") from None
    for kind_prefix, table in OWN_TABLES:
        if prefix_overlaps(prefix, kind_prefix):
            items += await _t(request, table).aquery_all(username, narrowest_prefix(prefix, kind_prefix))
    return items


@router.get("/my", openapi_extra=openapi_doc(query=MY_QUERY))
async def search(request: Request, who: Caller = Depends(chariot_caller)) -> dict[str, Any]:
    params = {k: request.query_params.getlist(k)[-1] for k in request.query_params}
    table = _t(request, table_for_key(params.get("key") or ""))
    try:
        return await to_thread.run_sync(lambda: search_my(table, who.account, params,
                                                          request.app.state.settings.page_size))
    except SearchError as e:
        raise bad_request(str(e)) from None


# ---- files ----------------------------------------------------------------------------------------


async def _record(request: Request, account: str, name: str, now: str, size: int | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"username": account, "key": file_key(name), "name": name, "updated": now}
    if size is not None:
        item["bytes"] = size
    return await _t(request, FILES_TABLE).aput(item)


@router.put("/file", openapi_extra=openapi_doc(query=[FILE_NAME]))
async def put_file(request: Request, who: Caller = Depends(chariot_caller)) -> dict[str, Any]:
    name = check_name(param(request, "name"))
    # Like the real API records the file on the S3 event, legacy records it when the upload is granted.
    await _record(request, who.account, name, adopt(replay_of(request, {}), "updated", _now(request)))
    url = await to_thread.run_sync(lambda: request.app.state.blobs.presign("PUT", who.account, name))
    return {"url": url}


@router.get("/file", openapi_extra=openapi_doc(query=[FILE_NAME, GLOBAL_PARAM]))
async def get_file(request: Request, who: Caller = Depends(chariot_caller)) -> dict[str, Any]:
    name = check_name(param(request, "name"))
    owner = _partition(request, who)
    if not await _t(request, FILES_TABLE).aget(owner, file_key(name)):
        raise not_found(f"file {name} not found")
    return {"url": await to_thread.run_sync(lambda: request.app.state.blobs.presign("GET", owner, name))}


@router.delete("/file", openapi_extra=openapi_doc(query=[FILE_NAME]))
async def delete_file(request: Request, who: Caller = Depends(chariot_caller)) -> dict[str, Any]:
    name = check_name(param(request, "name"))
    row = await _t(request, FILES_TABLE).aget(who.account, file_key(name))
    if not row:
        raise not_found(f"file {name} not found")
    await to_thread.run_sync(lambda: request.app.state.blobs.remove(who.account, name))
    await _t(request, FILES_TABLE).adelete(who.account, file_key(name))
    return row


@router.put("/encrypted-file", openapi_extra=openapi_doc(
    {"type": "string", "format": "binary"}, query=[FILE_NAME], media_type="application/octet-stream"))
async def put_encrypted(request: Request, who: Caller = Depends(chariot_caller)) -> dict[str, Any]:
    name = check_name(param(request, "name"))
    data = await request.body()
    await to_thread.run_sync(lambda: request.app.state.blobs.write(who.account, name, data))
    return await _record(request, who.account, name, _now(request), len(data))


@router.get("/encrypted-file", openapi_extra=openapi_doc(query=[FILE_NAME]))
async def get_encrypted(request: Request, who: Caller = Depends(chariot_caller)) -> Response:
    name = check_name(param(request, "name"))
    if not await _t(request, FILES_TABLE).aget(who.account, file_key(name)):
        raise not_found(f"file {name} not found")
    try:
        data = await to_thread.run_sync(lambda: request.app.state.blobs.read(who.account, name))
    except BlobMissing:
        raise not_found(f"file {name} has no content yet: upload it to the URL PUT /file returned") from None
    return Response(data, media_type="application/octet-stream")


# ---- export ---------------------------------------------------------------------------------------


@router.post("/export/report", openapi_extra=openapi_doc(report.ReportBody))
async def export_report(request: Request, who: Caller = Depends(chariot_caller)) -> dict[str, Any]:
    """Like legacy (the reference the CLI was built against): the report is rendered and written
    before the answer, and the job row ``#job#<id>#system#report`` is already passed."""
    body = await json_body(request)
    m = parse_model(report.ReportBody, body)
    problem = report.status_filter_problem(m.status_filter)
    if problem:
        raise bad_request(problem)
    now = _now(request)
    rows = await _indexed(request, who.account, "#risk#")
    risks = report.select_risks(rows, m.status_filter, m.risk_keys)
    job_id = report.adopted_job_id(replay_of(request, body)) or str(uuid.uuid4())
    path = report.output_path(m.config.title, job_id, m.export_format)
    data, ctype = report.render(m, risks)
    await to_thread.run_sync(lambda: request.app.state.blobs.write(who.account, path, data, ctype))
    await _record(request, who.account, path, now, len(data))
    job = await _t(request, EXPORTS_TABLE).aput(report.job_row(who.account, job_id, m, path, len(risks), now))
    return report.answer(job)
