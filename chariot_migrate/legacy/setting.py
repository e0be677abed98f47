"""``PUT/DELETE /setting`` and ``PUT/DELETE /configuration`` (named values of an account)."""

from __future__ import annotations

from typing import Any

from chariot_migrate.model.keys import configuration_key, setting_key
from chariot_migrate.model.requests import NamedValue, NameOnly

from . import store
from .auth import Caller, secured
from .http import Request, bad_request, dispatch, not_found


def _put(req: Request, caller: Caller, make_key: Any, kind: str) -> Any:
    body = req.body_dict()
    m = req.model(NamedValue, body)
    if m.value is None:
        raise bad_request(f"{kind} needs a 'value'")
    if kind == "configuration" and not isinstance(m.value, dict):
        raise bad_request("configuration 'value' must be a JSON object")
    row = {"username": caller.username, "key": make_key(m.name), "name": m.name, "value": m.value,
           "updated": caller.stamp(body)}
    store.put(row)
    return row


def _delete(req: Request, caller: Caller, make_key: Any, kind: str) -> Any:
    m = req.model(NameOnly)
    key = make_key(m.name)
    row = store.get(caller.username, key)
    if not row:
        raise not_found(f"{kind} {m.name} not found")
    store.delete(caller.username, key)
    return row


ROUTES = {
    ("PUT", "/setting"): lambda r, c: _put(r, c, setting_key, "setting"),
    ("DELETE", "/setting"): lambda r, c: _delete(r, c, setting_key, "setting"),
    ("PUT", "/configuration"): lambda r, c: _put(r, c, configuration_key, "configuration"),
    ("DELETE", "/configuration"): lambda r, c: _delete(r, c, configuration_key, "configuration"),
}


@secured
def handler(req: Request, caller: Caller) -> Any:
    return dispatch(req, ROUTES, caller)
