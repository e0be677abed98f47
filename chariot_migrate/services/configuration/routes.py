"""Configuration routes: the same contract as the legacy setting and schema functions, plus the
internal flag read used by :class:`~chariot_migrate.services.kit.flags.FlagCache` loaders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request

from chariot_migrate.model import requests as rq
from chariot_migrate.model.clock import now_iso
from chariot_migrate.model.keys import configuration_key, setting_key
from chariot_migrate.services.kit import Caller, require_internal
from chariot_migrate.services.kit.auth import caller, chariot_caller
from chariot_migrate.services.kit.openapi import MY_QUERY, openapi_doc
from chariot_migrate.services.kit.plain_store import plain
from chariot_migrate.services.kit.replay import adopt, replay_values
from chariot_migrate.services.kit.request import bad_request, json_body, not_found, parse_model

from .events import publish_change
from .store import SETTINGS, ConfigurationStore

router = APIRouter()
KINDS: dict[str, Callable[[str], str]] = {"setting": setting_key, "configuration": configuration_key}


def _store(request: Request) -> ConfigurationStore:
    return request.app.state.store


def named_row(kind: str, username: str, m: rq.NamedValue, updated: str) -> dict[str, Any]:
    """The stored row for ``PUT /setting`` or ``PUT /configuration`` (pure; 400 on bad values)."""
    if m.value is None:
        raise bad_request(f"{kind} needs a 'value'")
    if kind == "configuration" and not isinstance(m.value, dict):
        raise bad_request("configuration 'value' must be a JSON object")
    return {"username": username, "key": KINDS[kind](m.name), "name": m.name, "value": m.value,
            "updated": updated}


async def _put(kind: str, request: Request, who: Caller) -> Any:
    body = await json_body(request)
    m = parse_model(rq.NamedValue, body)
    row = named_row(kind, who.account, m, adopt(replay_values(request, body), "updated", now_iso()))
    await to_thread.run_sync(lambda: _store(request).put(SETTINGS, row))
    await publish_change(request.app, who.account, kind, row)
    return plain(row)


async def _delete(kind: str, request: Request, who: Caller) -> Any:
    body = await json_body(request)
    m = parse_model(rq.NameOnly, body)
    key = KINDS[kind](m.name)
    old = await to_thread.run_sync(lambda: _store(request).delete(SETTINGS, who.account, key))
    if not old:
        raise not_found(f"{kind} {m.name} not found")
    await publish_change(request.app, who.account, kind, old, deleted=True)
    return plain(old)


@router.put("/setting", openapi_extra=openapi_doc(rq.NamedValue))
async def put_setting(request: Request, who: Caller = Depends(chariot_caller)) -> Any:
    return await _put("setting", request, who)


@router.delete("/setting", openapi_extra=openapi_doc(rq.NameOnly))
async def delete_setting(request: Request, who: Caller = Depends(chariot_caller)) -> Any:
    return await _delete("setting", request, who)


@router.put("/configuration", openapi_extra=openapi_doc(rq.NamedValue))
async def put_configuration(request: Request, who: Caller = Depends(chariot_caller)) -> Any:
    return await _put("configuration", request, who)


@router.delete("/configuration", openapi_extra=openapi_doc(rq.NameOnly))
async def delete_configuration(request: Request, who: Caller = Depends(chariot_caller)) -> Any:
    return await _delete("configuration", request, who)


@router.get("/my", openapi_extra=openapi_doc(query=MY_QUERY))
async def my(request: Request, who: Caller = Depends(caller)) -> Any:
    size = request.app.state.settings.page_size
    store = _store(request)
    return await to_thread.run_sync(lambda: store.query_my(SETTINGS, request, who.account, page_size=size))


@router.get("/schema")
async def schema(who: Caller = Depends(caller)) -> Any:
    return rq.entity_schemas()


@router.get("/internal/api/flags")
async def flags(
    request: Request, account: str = Query(min_length=1), _: Caller = Depends(require_internal)
) -> dict[str, Any]:
    """``{name: value}`` of the account's settings (settings double as feature flags)."""
    rows = await to_thread.run_sync(lambda: _store(request).query_all(SETTINGS, account, "#setting#"))
    return {"account": account, "flags": {r["name"]: plain(r.get("value")) for r in rows}}
