"""``PUT /asset`` (add or update by key/prefix), ``DELETE /asset``, ``POST /bulk/asset``."""

from __future__ import annotations

from typing import Any

from chariot_migrate.model import assets
from chariot_migrate.model.requests import AssetAdd, AssetUpdate, KeyBody

from . import bulk, graph
from .auth import Caller, secured
from .http import Request, dispatch, not_found


def add_one(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    m = AssetAdd.model_validate(body)
    return graph.upsert_asset(caller, m.group, m.identifier, status=m.status, surface=m.attack_surface,
                              kind=m.type, body=body,
                              extra={"resourceType": m.resource_type} if m.resource_type else None)


def _is_update(body: dict[str, Any]) -> bool:
    return "key" in body and not any(body.get(f) for f in ("group", "identifier", "dns", "name"))


def put(req: Request, caller: Caller) -> Any:
    body = req.body_dict()
    if not _is_update(body):
        req.model(AssetAdd, body)  # validates; the asset is built from the body as sent
        return [add_one(caller, body)]
    m = req.model(AssetUpdate, body)
    targets = graph.matching(caller, m.key, "asset")
    if not targets:
        raise not_found(f"no asset matches key {m.key}")
    out = []
    for item in targets:
        if m.status:
            item = graph.set_asset_status(caller, item, m.status, m.comment, body)
        if (extra := assets.update_fields(m.attack_surface, m.secret)) is not None:
            item = graph.upsert_asset(caller, item["dns"], item["name"], status=None, body=body, extra=extra,
                                      kind=item.get("type", "asset"))
        out.append(item)
    return out


def delete(req: Request, caller: Caller) -> Any:
    body = req.body_dict()
    m = req.model(KeyBody, body)
    targets = graph.matching(caller, m.key, "asset")
    if not targets:
        raise not_found(f"asset {m.key} not found")
    deleted = [graph.set_asset_status(caller, t, "D", body.get("comment"), body) for t in targets]
    return deleted[0] if len(deleted) == 1 else deleted


def bulk_add(req: Request, caller: Caller) -> Any:
    return bulk.run(req, caller, "asset", add_one)


ROUTES = {("PUT", "/asset"): put, ("DELETE", "/asset"): delete, ("POST", "/bulk/asset"): bulk_add}


@secured
def handler(req: Request, caller: Caller) -> Any:
    return dispatch(req, ROUTES, caller)
