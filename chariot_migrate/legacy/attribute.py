"""``PUT /attribute``, ``DELETE /attribute``, ``POST /bulk/attribute``."""

from __future__ import annotations

from typing import Any

from chariot_migrate.model.requests import AttributeAdd, KeyBody

from . import bulk, graph, store
from .auth import Caller, secured
from .http import Request, bad_request, dispatch, not_found


def add_one(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    m = AttributeAdd.model_validate(body)
    if not m.key.startswith("#"):
        raise bad_request("key must be the key of the entity the attribute is on (starting with '#')")
    return graph.upsert_attribute(caller, m.key, m.name, m.value, body=body)


def put(req: Request, caller: Caller) -> Any:
    body = req.body_dict()
    req.model(AttributeAdd, body)
    return {"attributes": [add_one(caller, body)]}


def delete(req: Request, caller: Caller) -> Any:
    m = req.model(KeyBody)
    if not m.key.startswith("#attribute#"):
        raise bad_request(f"key must start with #attribute#, got {m.key!r}")
    item = store.get(caller.username, m.key)
    if not item:
        raise not_found(f"attribute {m.key} not found")
    store.delete(caller.username, m.key)
    return item


def bulk_add(req: Request, caller: Caller) -> Any:
    return bulk.run(req, caller, "attribute", add_one)


ROUTES = {("PUT", "/attribute"): put, ("DELETE", "/attribute"): delete, ("POST", "/bulk/attribute"): bulk_add}


@secured
def handler(req: Request, caller: Caller) -> Any:
    return dispatch(req, ROUTES, caller)
