"""``POST/DELETE /account/hook``, ``GET/POST/DELETE /account/alert`` (legacy contract), the
delivery log, and the internal pin check integration-hub uses for inbound webhooks."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request

from chariot_migrate.model.keys import account_key
from chariot_migrate.model.links import linked_data
from chariot_migrate.model.requests import AccountLink

from ..kit import Caller, require_internal
from ..kit.auth import chariot_caller
from ..kit.events import Event
from ..kit.openapi import openapi_doc
from ..kit.replay import adopt, replay_values
from ..kit.request import json_body, not_found, parse_model
from . import rows
from .store import ACCOUNTS_TABLE, DELIVERIES_TABLE

router = APIRouter()
LINK_DOC = openapi_doc(AccountLink, body_required=False)


def _accounts(request: Request):
    return request.app.state.tables[ACCOUNTS_TABLE]


async def _link(request: Request, who: Caller, member: str) -> dict[str, Any]:
    body = await json_body(request, {})
    m = parse_model(AccountLink, body)
    now = adopt(replay_values(request, body), "updated", request.app.state.clock())
    row = rows.link_row(who.account, member, m, now)
    table = _accounts(request)
    if member == "hook":  # one webhook per account: a new pin replaces the old one
        for old in await table.aquery_all(who.account, account_key(who.account, "hook")):
            await table.adelete(who.account, old["key"])
            await _announce(request, old, False)
    await table.aput(row)
    await _announce(request, row, True)
    return row


async def _unlink(request: Request, who: Caller, member: str) -> dict[str, Any]:
    body = await json_body(request, {})
    m = parse_model(AccountLink, body)
    key = rows.unlink_key(who.account, member, m)
    row = await _accounts(request).adelete(who.account, key)
    if not row:
        raise not_found(f"account {member} is not linked")
    await _announce(request, row, False)
    return row


async def _announce(request: Request, row: dict[str, Any], linked: bool) -> None:
    # The account service lists hook/alert rows in its #account# read model (GET /my?key=#account#).
    await request.app.state.bus.publish(Event.new("integration.linked", row["username"], linked_data(row, linked)))


@router.post("/account/hook", openapi_extra=LINK_DOC)
async def add_hook(request: Request, who: Caller = Depends(chariot_caller)) -> dict[str, Any]:
    return await _link(request, who, "hook")


@router.delete("/account/hook", openapi_extra=LINK_DOC)
async def delete_hook(request: Request, who: Caller = Depends(chariot_caller)) -> dict[str, Any]:
    return await _unlink(request, who, "hook")


@router.get("/account/alert")
async def list_alerts(request: Request, who: Caller = Depends(chariot_caller)) -> list[dict[str, Any]]:
    return await _accounts(request).aquery_all(who.account, account_key(who.account, "alert"))


@router.post("/account/alert", openapi_extra=LINK_DOC)
async def add_alert(request: Request, who: Caller = Depends(chariot_caller)) -> dict[str, Any]:
    return await _link(request, who, "alert")


@router.delete("/account/alert", openapi_extra=LINK_DOC)
async def delete_alert(request: Request, who: Caller = Depends(chariot_caller)) -> dict[str, Any]:
    return await _unlink(request, who, "alert")


@router.get("/notification/deliveries")
async def deliveries(request: Request, who: Caller = Depends(chariot_caller)) -> dict[str, Any]:
    """The delivery log of the caller's account, newest first (not a legacy route)."""
    table = request.app.state.tables[DELIVERIES_TABLE]
    items, _ = await to_thread.run_sync(lambda: table.query_page(who.account, prefix="#delivery#", descending=True))
    return {"deliveries": sorted(items, key=lambda d: d.get("updated", ""), reverse=True)}


@router.get("/internal/api/hook")
async def check_pin(request: Request, account: str = Query(min_length=1), pin: str = Query(min_length=1),
                    who: Caller = Depends(require_internal)) -> dict[str, bool]:
    """Is ``pin`` the account's current webhook pin? (integration-hub's inbound ``/hook``)."""
    if "#" in account or "#" in pin:
        return {"valid": False}
    row = await _accounts(request).aget(account, account_key(account, "hook", pin))
    return {"valid": row is not None}



