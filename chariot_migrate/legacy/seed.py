"""``PUT /seed``: add a seed (``{"type","model":{dns,…}}``) or change its status (``{"key","status"}``).

Seeds are assets with ``source: "seed"`` keyed ``#asset#{dns}#{dns}``; status D deletes.
"""

from __future__ import annotations

from typing import Any

from chariot_migrate.model.requests import SeedAdd, StatusUpdate

from . import graph, store
from .auth import Caller, secured
from .http import Request, dispatch, not_found


def put(req: Request, caller: Caller) -> Any:
    body = req.body_dict()
    if "model" in body or "type" in body and "key" not in body:
        m = req.model(SeedAdd, body)
        dns = str(m.model.get("dns") or m.model.get("group"))
        extra = {k: v for k, v in m.model.items() if k not in ("dns", "name", "group", "identifier", "status",
                                                                 "key", "username", "source")}
        return graph.upsert_asset(caller, dns, dns, status=m.model.get("status") or "P", source="seed",
                                  kind="asset" if m.type in ("asset", "seed") else m.type, origin="seed",
                                  body=body, extra=extra | {"source": "seed"})
    m2 = req.model(StatusUpdate, body)
    key = m2.key.replace("#seed#", "#asset#", 1) if m2.key.startswith("#seed#") else m2.key
    item = store.get(caller.username, key)
    if not item or item.get("source") != "seed":
        raise not_found(f"seed {m2.key} not found")
    return graph.set_asset_status(caller, item, m2.status, m2.comment, body)


ROUTES = {("PUT", "/seed"): put}


@secured
def handler(req: Request, caller: Caller) -> Any:
    return dispatch(req, ROUTES, caller)
