"""Route plumbing both graph services share: the write context of a request, running the
blocking operation in a worker thread with legacy error mapping, and publishing its events
after the write succeeded."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from anyio import to_thread
from fastapi import Request
from fastapi.responses import JSONResponse

from chariot_migrate.model import query as gq
from chariot_migrate.model.clock import now_iso
from chariot_migrate.model.errors import ApiError
from chariot_migrate.model.table import GLOBAL_USERNAME
from chariot_migrate.services.kit import Event
from chariot_migrate.services.kit.auth import AuthError, caller, chariot_caller
from chariot_migrate.services.kit.openapi import FLAG, GLOBAL_PARAM, MY_QUERY, openapi_doc, query_param
from chariot_migrate.services.kit.replay import is_replay, primary_values, replay_author
from chariot_migrate.services.kit.request import json_body, param_flag
from chariot_migrate.services.kit.tables import LegacyShapedTable, search_my

from . import search as graph_search
from .contract import WriteContext, error_of, public
from .entity_table import EntityTable
from .kind_cache import preferring

log = logging.getLogger("chariot.graph")
# POST /my: the graph query body, ``?tree=true`` and ``?global=true``.
GRAPH_QUERY_DOC = openapi_doc(gq.GraphQuery, query=[
    query_param("tree", "answer as a tree of related entities", schema=FLAG), GLOBAL_PARAM])


INLINE_QUERY_ENTITIES = 2000  # above this many cached entities a graph query runs in a worker thread


def respond(status: int, body: Any) -> JSONResponse:
    return JSONResponse(public(body), status_code=status)


async def write_context(request: Request) -> WriteContext:
    """Authenticate like legacy ``@secured`` (readonly may not write), then describe the write."""
    who = await chariot_caller(request)
    if not is_replay(request):
        return WriteContext(who.principal, who.account, who.role, False, now_iso(), internal=who.internal)
    # A replay records the primary's author and adopts its generated values, so both stores agree.
    primary = primary_values(request)
    return WriteContext(replay_author(primary) or who.principal, who.account, who.role, True, now_iso(),
                        primary=primary)


async def internal_account(request: Request) -> str:
    """The account a service-to-service call of ``/internal/api/…`` acts for (403 otherwise)."""
    who = await caller(request)
    if not who.internal:
        raise AuthError(403, "Forbidden: internal API")
    return who.account


async def read_partition(request: Request) -> str:
    """The partition a read looks at: the caller's account, or ``global`` with ``?global=true``."""
    who = await caller(request)
    return GLOBAL_USERNAME if param_flag(request, "global") else who.account


async def run_write(request: Request, op: Callable[[WriteContext, dict[str, Any]], Any]) -> JSONResponse:
    ctx = await write_context(request)
    body = await json_body(request)
    return await run_blocking(request, lambda: op(ctx, body), ctx)


async def run_blocking(request: Request, fn: Callable[[], Any], ctx: WriteContext | None = None, *,
                       inline: bool = False) -> JSONResponse:
    """Run ``fn`` in a worker thread (``inline``: here, for pure work on data already in memory);
    legacy errors become ``{"message"}`` answers."""
    try:
        result = fn() if inline else await to_thread.run_sync(fn)
    except Exception as exc:
        err = error_of(exc)
        if err is None:  # legacy never lets a request become a 502: a logged 500 "internal error"
            log.exception("unhandled error", extra={"route": request.url.path})
            return respond(500, {"message": "internal error"})
        return respond(err.status, {"message": err.message})
    if ctx is not None and ctx.events:
        await publish(request, ctx)
    return respond(200, result)


async def answer_graph_query(request: Request, service: Any) -> JSONResponse:
    """``POST /my`` of a graph service: the kinds the query can touch come from the service's
    cached kind lists (``service.kinds``) where cached, the rest from ``service.kind_source``."""
    username = await read_partition(request)
    body = await json_body(request)
    try:
        query = gq.parse_query(body)
    except ApiError as e:
        return respond(e.status, {"message": e.message})
    needed = graph_search.kinds_needed(query)
    try:
        preloaded = await service.kinds.preload(username, needed)
    except Exception:  # the store failed: legacy's 500 "internal error", and nothing was cached
        log.exception("unhandled error", extra={"route": request.url.path})
        return respond(500, {"message": "internal error"})
    source = preferring(preloaded, service.kind_source(username))
    # Every kind in memory and not many entities: evaluate right here. A worker thread costs more
    # than such a query (the hop, and the GIL hand-over to a thread doing pure Python work); big
    # partitions still go to a thread so one request cannot hold the event loop for long.
    inline = needed <= preloaded.keys() and sum(map(len, preloaded.values())) <= INLINE_QUERY_ENTITIES
    return await run_blocking(request, lambda: graph_search.run_query(
        query, source, tree=param_flag(request, "tree"), max_response_bytes=service.settings.max_response_bytes),
        inline=inline)


KEY_SEARCH_DOC = openapi_doc(query=MY_QUERY)


async def answer_key_search(request: Request, table_for: Callable[[str], EntityTable], page_size: int) -> JSONResponse:
    """``GET /my?key=#<kind>#…`` over the table holding that kind, exactly like legacy's search
    function over its one table: prefix, ``exact``, ``to`` range, ``desc``, ``label``, ``global``
    and the DynamoDB ``offset`` (both tables are keyed ``username``/``key``, so offsets carry over)."""
    who = await chariot_caller(request)
    params = {k: request.query_params.getlist(k)[-1] for k in request.query_params}
    table = LegacyShapedTable(table_for(params.get("key") or "").repo)
    # SearchError (a bad offset, a malformed term) is a ValueError: run_blocking answers it 400.
    return await run_blocking(request, lambda: search_my(table, who.account, params, page_size))


async def publish(request: Request, ctx: WriteContext) -> None:
    """Publish the write's events; the write is already acknowledged, so failures are logged."""
    bus = getattr(request.app.state, "bus", None)
    if bus is None:
        return
    for event_type, data in ctx.events:
        try:
            await bus.publish(Event.new(event_type, ctx.username, public(data)))
        except Exception as exc:
            log.error("event publish failed", extra={"type": event_type, "error": f"{type(exc).__name__}: {exc}"})
