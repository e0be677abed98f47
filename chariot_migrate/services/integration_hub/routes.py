"""``POST/DELETE /account/{member}`` for integrations and the public ``PUT /hook/{principal}/{pin}``."""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from fastapi import APIRouter, Depends, Request

from chariot_migrate.model.keys import account_key
from chariot_migrate.model.links import linked_data
from chariot_migrate.model.requests import AccountLink, HookBody

from ..kit import Caller
from ..kit.auth import chariot_caller
from ..kit.breaker import CircuitOpenError
from ..kit.events import Event
from ..kit.openapi import openapi_doc
from ..kit.replay import adopt, replay_values
from ..kit.request import ApiError, bad_request, json_body, not_found, parse_model
from .peers import PeerRejected
from .store import INTEGRATIONS_TABLE, is_integration

router = APIRouter()
log = logging.getLogger("chariot.integration-hub")


def _member(member: str) -> str:
    if not member or member == "account" or "#" in member:
        raise bad_request("path must be /account/{member} with a member email or integration name")
    if not is_integration(member):
        owner = "notification" if member in ("hook", "alert") else "account"
        raise bad_request(f"{member} is not an integration: the {owner} service manages it")
    return member


def _table(request: Request):
    return request.app.state.tables[INTEGRATIONS_TABLE]


async def _publish(request: Request, row: dict[str, Any], linked: bool) -> None:
    await request.app.state.bus.publish(Event.new("integration.linked", row["username"], linked_data(row, linked)))


@router.post("/account/{member}", openapi_extra=openapi_doc(AccountLink, body_required=False))
async def link(member: str, request: Request, who: Caller = Depends(chariot_caller)) -> dict[str, Any]:
    member = _member(member)
    body = await json_body(request, {})
    m = parse_model(AccountLink, body)
    now = adopt(replay_values(request, body), "updated", request.app.state.clock())
    row: dict[str, Any] = {"username": who.account, "name": who.account, "member": member, "config": m.config,
                           "updated": now, "ttl": 0}
    if m.role:
        row["role"] = m.role  # integrations keep whatever the client sent (imports pass a file path)
    row["key"] = account_key(who.account, member, m.value)
    row["value"] = m.value
    await _table(request).aput(row)
    await _publish(request, row, True)
    return row


@router.delete("/account/{member}", openapi_extra=openapi_doc(AccountLink, body_required=False))
async def unlink(member: str, request: Request, who: Caller = Depends(chariot_caller)) -> dict[str, Any]:
    member = _member(member)
    body = await json_body(request, {})
    m = parse_model(AccountLink, body)
    if m.key:
        if not m.key.startswith(account_key(who.account, member)):
            raise bad_request(f"key {m.key!r} is not a {member} row of this account")
        key = m.key
    else:
        key = account_key(who.account, member, m.value)
    row = await _table(request).adelete(who.account, key)
    if not row:
        raise not_found(f"account {member} is not linked")
    await _publish(request, row, False)
    return row


def _principal(encoded: str) -> str:
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad_request("the webhook path must be /hook/<base64 principal>/<pin>") from None


def _unavailable(exc: Exception) -> ApiError:
    log.warning("webhook peer call failed", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
    if isinstance(exc, CircuitOpenError):
        return ApiError(503, f"{exc.name} is unavailable (circuit open): retry in {exc.retry_after:.0f}s")
    return ApiError(503, "a service the webhook needs is unavailable: try again shortly")


@router.put("/hook/{principal}/{pin}", operation_id="inbound_hook_put", openapi_extra=openapi_doc(HookBody))
@router.post("/hook/{principal}/{pin}", operation_id="inbound_hook_post", openapi_extra=openapi_doc(HookBody))
async def inbound(principal: str, pin: str, request: Request) -> dict[str, Any]:
    """Public: the pin authenticates. Body ``{dns, name[, finding]}`` → asset (+ risk)."""
    account = _principal(principal)
    peers = request.app.state.peers
    if "#" in account or "#" in pin:
        raise ApiError(401, "Unauthorized")
    try:
        valid = await peers.pin_valid(account, pin)
    except Exception as exc:
        raise _unavailable(exc) from None
    if not valid:
        raise ApiError(401, "Unauthorized")
    m = parse_model(HookBody, await json_body(request))
    try:
        asset = await peers.put_asset(account, m.dns, m.name)
        await peers.put_attribute(account, asset["key"], "source", "webhook")
        out: dict[str, Any] = {"assets": [asset]}
        if m.finding:
            out["risks"] = [await peers.put_risk(account, asset["key"], m.finding, "TI", "webhook")]
    except ApiError:
        raise
    except PeerRejected as exc:  # the peer refused this hook's data: the caller's 400, with the reason
        raise bad_request(f"webhook rejected: {exc.reason}") from None
    except Exception as exc:
        raise _unavailable(exc) from None
    return out
