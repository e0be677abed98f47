"""Risk rules as pure functions: a new risk, a status/comment/title/tags update, the event.

Status codes, priority and history come from :mod:`chariot_migrate.model.status` and the
legacy handler's shapes (a status change appends ``{from,to,by,updated[,comment]}``, a
comment-only update ``{by,comment,updated}``, ``remove: i`` clears note ``i``).
"""

from __future__ import annotations

from typing import Any

from chariot_migrate.model import keys, risks
from chariot_migrate.model.history import history_entry, ttl_of
from chariot_migrate.model.status import risk_priority
from chariot_migrate.services.kit.graph.contract import WriteContext


def new_risk(ctx: WriteContext, key: str, dns: str, name: str, status: str, now: str, *, source: str,
             comment: str | None, title: str | None, tags: list[str] | None, target: str, created: str,
             guid: str) -> dict[str, Any]:
    norm = keys.normalize_risk_name(name)
    by = source or ctx.principal
    return {
        "username": ctx.username, "key": key, "dns": dns, "name": norm, "title": title or norm,
        "source": source, "status": status, "priority": risk_priority(status),
        "created": created, "updated": now, "visited": now, "ttl": ttl_of(now),
        "plextracid": "", "guid": guid, "proofUniquenessID": "",
        "history": [history_entry("", status, by, now, comment)], "tags": sorted(set(tags or [])),
        "attackSurface": ["external"], "capability": [source] if source else [], "tickets": [],
        "target": target,
    }


def updated_risk(item: dict[str, Any], ctx: WriteContext, now: str, **changes: Any) -> dict[str, Any]:
    return risks.updated_risk(item, ctx.principal, now, **changes)


def target_dns(key: str) -> str:
    """The dns a risk on ``key`` (an asset, or an attribute of one) is filed under."""
    if keys.kind_of(key) == "attribute":
        key = keys.parse_attribute_key(key).source
    return keys.parse_asset_key(key).dns if keys.kind_of(key) == "asset" else key.split("#")[2]


def assessed_event(item: dict[str, Any], previous_status: str | None) -> dict[str, Any] | None:
    """``risk.assessed`` data (None when the item lacks what the schema requires)."""
    if not str(item.get("key", "")).startswith("#risk#") or not item.get("dns") or not item.get("name"):
        return None
    data: dict[str, Any] = {"key": item["key"], "dns": item["dns"], "name": item["name"],
                            "status": item.get("status", ""), "previous_status": previous_status,
                            "entity": item}
    if item.get("target"):
        data["asset_key"] = item["target"]
    return data
