"""``POST/DELETE /account/{member}``: collaborators (member is an email, with a role),
integrations (any other member; the client's import quirk passes a file path as ``role``),
the webhook (``member = hook``, value = pin) and alerts (``/account/alert``)."""

from __future__ import annotations

from typing import Any

from chariot_migrate.model.keys import account_key
from chariot_migrate.model.requests import AccountLink, check_role

from . import store
from .auth import Caller, secured
from .http import Request, bad_request, dispatch, not_found


def _member(req: Request) -> str:
    member = req.path_params.get("member") or req.path.rstrip("/").rsplit("/", 1)[-1]
    if not member or member == "account" or "#" in member:
        raise bad_request("path must be /account/{member} with a member email or integration name")
    return member


def link(req: Request, caller: Caller) -> Any:
    member = _member(req)
    body = req.body_dict({})
    m = req.model(AccountLink, body)
    now = caller.stamp(body)
    value = m.value
    row: dict[str, Any] = {"username": caller.username, "name": caller.username, "member": member,
                           "config": m.config, "updated": now, "ttl": 0}
    if "@" in member:
        if member == caller.username:
            raise bad_request("an account cannot add itself as a collaborator")
        row["role"] = check_role(m.role) or "admin"
        value = ""
    elif member == "hook":
        if not value:
            raise bad_request("the webhook needs a pin in 'value'")
        for old in store.query_all(caller.username, account_key(caller.username, "hook")):
            store.delete(caller.username, old["key"])
        row["role"] = m.role or "readonly"
    else:
        if m.role:
            row["role"] = m.role  # integrations keep whatever the client sent (imports pass a path)
    row["key"] = account_key(caller.username, member, value)
    row["value"] = value
    store.put(row)
    if "@" in member:
        # Mirror row so the collaborator sees the accounts it may act for.
        store.put(row | {"username": member})
    return row


def unlink(req: Request, caller: Caller) -> Any:
    member = _member(req)
    body = req.body_dict({})
    m = req.model(AccountLink, body)
    if m.key:
        key = m.key
        if not key.startswith(account_key(caller.username, member)):
            raise bad_request(f"key {key!r} is not a {member} row of this account")
    else:
        key = account_key(caller.username, member, "" if "@" in member else m.value)
    row = store.get(caller.username, key)
    if not row:
        raise not_found(f"account {member} is not linked")
    store.delete(caller.username, key)
    if "@" in member:
        store.delete(member, key)
    return row


def alerts(req: Request, caller: Caller) -> Any:
    return store.query_all(caller.username, account_key(caller.username, "alert"))


ROUTES = {("POST", "/account/{member}"): link, ("DELETE", "/account/{member}"): unlink,
          ("GET", "/account/alert"): alerts, ("POST", "/account/alert"): link,
          ("DELETE", "/account/alert"): unlink, ("POST", "/account/hook"): link,
          ("DELETE", "/account/hook"): unlink}


@secured
def handler(req: Request, caller: Caller) -> Any:
    return dispatch(req, ROUTES, caller)
