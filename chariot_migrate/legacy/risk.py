"""``PUT /risk`` (add or update), ``DELETE /risk``, ``POST /bulk/risk``."""

from __future__ import annotations

from typing import Any

from chariot_migrate.model import keys
from chariot_migrate.model.capabilities import REGISTRY
from chariot_migrate.model.requests import RiskAdd, RiskDelete, RiskUpdate
from chariot_migrate.model.status import TRIAGE_STATUSES

from . import bulk, graph, store
from .auth import Caller, secured
from .http import Request, bad_request, dispatch, not_found


def _target_dns(caller: Caller, key: str) -> str:
    kind = keys.kind_of(key)
    if kind not in ("asset", "attribute"):
        raise bad_request(f"key must be the asset (or attribute) the risk is on, got {key!r}")
    if not store.get(caller.username, key):
        raise not_found(f"{kind} {key} not found")
    if kind == "attribute":
        key = keys.parse_attribute_key(key).source
    return keys.parse_asset_key(key).dns if keys.kind_of(key) == "asset" else key.split("#")[2]


def add_one(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    m = RiskAdd.model_validate(body)
    manual = not m.source or m.source not in REGISTRY
    if manual and m.status not in TRIAGE_STATUSES:
        raise bad_request(f"a manually added risk must use a triage status (TI/TL/TM/TH/TC), got {m.status!r}")
    dns = _target_dns(caller, m.key)
    return graph.upsert_risk(caller, dns, m.name, m.status, source=m.source, comment=m.comment, title=m.title,
                             tags=m.tags, target=m.key, body=body)


def put(req: Request, caller: Caller) -> Any:
    body = req.body_dict()
    if "name" in body and keys.kind_of(str(body.get("key", ""))) != "risk":
        req.model(RiskAdd, body)
        return {"risks": [add_one(caller, body)]}
    m = req.model(RiskUpdate, body)
    targets = graph.matching(caller, m.key, "risk")
    if not targets:
        raise not_found(f"no risk matches key {m.key}")
    return {"risks": [graph.update_risk(caller, t, status=m.status, comment=m.comment, title=m.title, tags=m.tags,
                                        remove=m.remove, body=body) for t in targets]}


def delete(req: Request, caller: Caller) -> Any:
    body = req.body_dict()
    m = req.model(RiskDelete, body)
    targets = graph.matching(caller, m.key, "risk")
    if not targets:
        raise not_found(f"risk {m.key} not found")
    out = [graph.update_risk(caller, t, status=m.status, comment=m.comment, body=body) for t in targets]
    return out[0] if len(out) == 1 else out


def bulk_add(req: Request, caller: Caller) -> Any:
    return bulk.run(req, caller, "risk", add_one)


ROUTES = {("PUT", "/risk"): put, ("DELETE", "/risk"): delete, ("POST", "/bulk/risk"): bulk_add}


@secured
def handler(req: Request, caller: Caller) -> Any:
    return dispatch(req, ROUTES, caller)
