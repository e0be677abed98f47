"""``POST /preseed`` (add), ``PUT /preseed`` (status), ``DELETE /preseed``."""

from __future__ import annotations

from typing import Any

from chariot_migrate.model.requests import KeyBody, PreseedAdd, StatusUpdate

from . import graph, store
from .auth import Caller, secured
from .http import Request, bad_request, dispatch, not_found


def add(req: Request, caller: Caller) -> Any:
    body = req.body_dict()
    m = req.model(PreseedAdd, body)
    return [graph.upsert_preseed(caller, m.type, m.title, m.value, status=m.status, display=m.display, body=body)]


def _get(caller: Caller, key: str) -> dict[str, Any]:
    if not key.startswith("#preseed#"):
        raise bad_request(f"key must start with #preseed#, got {key!r}")
    item = store.get(caller.username, key)
    if not item:
        raise not_found(f"preseed {key} not found")
    return item


def update(req: Request, caller: Caller) -> Any:
    body = req.body_dict()
    m = req.model(StatusUpdate, body)
    item = dict(_get(caller, m.key))
    now = caller.stamp(body)
    if m.status != item.get("status"):
        item.setdefault("history", []).append({"from": item.get("status", ""), "to": m.status,
                                               "by": caller.principal, "updated": now,
                                               **({"comment": m.comment} if m.comment else {})})
    item.update(status=m.status, updated=now)
    store.put(item)
    return item


def delete(req: Request, caller: Caller) -> Any:
    m = req.model(KeyBody)
    item = _get(caller, m.key)
    store.delete(caller.username, m.key)
    return item


ROUTES = {("POST", "/preseed"): add, ("PUT", "/preseed"): update, ("DELETE", "/preseed"): delete}


@secured
def handler(req: Request, caller: Caller) -> Any:
    return dispatch(req, ROUTES, caller)
