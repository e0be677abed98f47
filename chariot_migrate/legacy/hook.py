"""``PUT /hook/{b64 principal}/{pin}``: the unauthenticated inbound webhook.

The pin must match the account's ``#account#{principal}#hook#{pin}`` row. The body
``{dns, name[, finding]}`` creates the asset (and a risk for a finding) and tags the asset
with the attribute ``source=webhook``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from chariot_migrate.model.clock import now_iso
from chariot_migrate.model.keys import account_key
from chariot_migrate.model.requests import HookBody

from . import graph, store
from .auth import Caller
from .http import ApiError, Request, api, bad_request


def _principal(encoded: str) -> str:
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad_request("the webhook path must be /hook/<base64 principal>/<pin>") from None


@api
def handler(req: Request) -> Any:
    if req.method not in ("PUT", "POST"):
        raise ApiError(405, f"method {req.method} is not allowed on the webhook")
    parts = [p for p in req.path.split("/") if p]
    encoded = req.path_params.get("username") or req.path_params.get("principal") or (parts[1] if len(parts) > 2 else "")
    pin = req.path_params.get("pin") or (parts[2] if len(parts) > 2 else "")
    if not encoded or not pin:
        raise bad_request("the webhook path must be /hook/<base64 principal>/<pin>")
    principal = _principal(encoded)
    if "#" in principal or "#" in pin or not store.get(principal, account_key(principal, "hook", pin)):
        raise ApiError(401, "Unauthorized")
    m = req.model(HookBody)
    caller = Caller(principal="webhook", username=principal, role="admin", now=now_iso())
    asset = graph.upsert_asset(caller, m.dns, m.name, status="A", source="provided", origin="webhook")
    graph.upsert_attribute(caller, asset["key"], "source", "webhook", require_source=False)
    out: dict[str, Any] = {"assets": [asset]}
    if m.finding:
        out["risks"] = [graph.upsert_risk(caller, asset["dns"], m.finding, "TI", source="webhook",
                                          target=asset["key"])]
    return out
