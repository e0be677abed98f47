"""Asset, seed, attribute and preseed rules as pure functions over plain dicts.

Each function takes the stored item (or None) and the request's values and returns the item
to store, exactly as the legacy handlers shape it (history entries, ttl, class, surfaces).
"""

from __future__ import annotations

from typing import Any

from chariot_migrate.model import assets
from chariot_migrate.model.assets import asset_key_for  # noqa: F401 — re-exported for the service's modules
from chariot_migrate.model.history import history_entry, ttl_of
from chariot_migrate.services.kit.graph.contract import WriteContext


def merge_asset(existing: dict[str, Any], ctx: WriteContext, now: str, **values: Any) -> dict[str, Any]:
    """An existing asset seen again (:func:`chariot_migrate.model.assets.merge_asset`)."""
    return assets.merge_asset(existing, ctx.principal, now, **values)


def new_asset(ctx: WriteContext, key: str, dns: str, name: str, now: str, **values: Any) -> dict[str, Any]:
    """A new asset row (:func:`chariot_migrate.model.assets.new_asset`)."""
    return assets.new_asset(ctx.username, ctx.principal, key, dns, name, now, **values)


def with_asset_status(item: dict[str, Any], ctx: WriteContext, now: str, status: str,
                      comment: str | None = None) -> dict[str, Any]:
    old = item.get("status")
    item = dict(item)
    if status != old:
        item["status"] = status
        item["history"] = [*item.get("history", []), history_entry(old or "", status, ctx.principal, now, comment)]
    item["updated"] = now
    return item


def new_attribute(ctx: WriteContext, key: str, source_key: str, name: str, value: str, now: str, *,
                  capability: str, created: str) -> dict[str, Any]:
    return {
        "username": ctx.username, "key": key, "source": source_key, "origin_source": "self",
        "name": name, "value": value, "status": "A", "capability": capability,
        "created": created, "ttl": ttl_of(now), "metadata": {},
    }


def new_preseed(ctx: WriteContext, key: str, type_: str, title: str, value: str, *, display: str,
                status: str, capability: str, created: str) -> dict[str, Any]:
    return {
        "username": ctx.username, "key": key, "type": type_, "title": title, "value": value,
        "display": display, "status": status, "created": created,
        "capability": capability, "metadata": {}, "ttl": 0,
    }


def with_preseed_status(item: dict[str, Any], ctx: WriteContext, now: str, status: str,
                        comment: str | None) -> dict[str, Any]:
    item = dict(item)
    if status != item.get("status"):
        entry = {"from": item.get("status", ""), "to": status, "by": ctx.principal, "updated": now,
                 **({"comment": comment} if comment else {})}
        item["history"] = [*item.get("history", []), entry]
    item.update(status=status, updated=now)
    return item


def is_asset_update(body: dict[str, Any]) -> bool:
    """``PUT /asset`` with a key and no identity fields updates (by key or prefix) instead of adding."""
    return "key" in body and not any(body.get(f) for f in ("group", "identifier", "dns", "name"))


def is_seed_add(body: dict[str, Any]) -> bool:
    return "model" in body or ("type" in body and "key" not in body)


def seed_extra(model: dict[str, Any]) -> dict[str, Any]:
    drop = ("dns", "name", "group", "identifier", "status", "key", "username", "source")
    return {k: v for k, v in model.items() if k not in drop}


def discovered_event(item: dict[str, Any]) -> dict[str, Any] | None:
    """``asset.discovered`` data for a stored asset (None for kinds the schema does not cover)."""
    key = str(item.get("key", ""))
    if not key.startswith("#asset#") or not item.get("dns") or not item.get("name"):
        return None
    data: dict[str, Any] = {"key": key, "dns": item["dns"], "name": item["name"]}
    for f in ("status", "source", "class"):
        if isinstance(item.get(f), str) and item[f]:
            data[f] = item[f]
    # The whole entity rides along so consumers keep faithful read models (relationship queries).
    data["entity"] = item
    return data
