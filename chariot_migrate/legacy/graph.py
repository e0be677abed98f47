"""Writes of graph entities (assets, seeds, risks, attributes, preseeds) shared by handlers,
the inbound hook and the job worker; statistics are produced here, on every status change."""

from __future__ import annotations

from typing import Any

from chariot_migrate.model import assets, keys, risks, statistics
from chariot_migrate.model.history import history_entry, ttl_of
from chariot_migrate.model.status import risk_priority

from . import store
from .auth import Caller
from .http import not_found


def record_status(username: str, type_: str, old: str | None, new: str | None, now: str) -> None:
    """Keep ``#statistic#my#status:<S>#…`` counters in the legacy table (:mod:`chariot_migrate.model.statistics`)."""
    statistics.record_status(store, username, type_, old, new, now)


def upsert_asset(caller: Caller, dns: str, name: str, *, status: str | None = "A", source: str = "self",
                 surface: list[str] | None = None, kind: str = "asset", origin: str = "",
                 capability: str = "", body: dict[str, Any] | None = None, comment: str | None = None,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    key = caller.adopt(body, "key", assets.asset_key_for(kind, dns, name))
    now = caller.stamp(body)
    existing = store.get(caller.username, key)
    if existing:
        item = assets.merge_asset(existing, caller.principal, now, status=status, surface=surface,
                                  capability=capability, comment=comment, extra=extra)
        store.put(item)
        record_status(caller.username, "asset", existing.get("status"), item.get("status"), now)
        return item
    item = assets.new_asset(caller.username, caller.principal, key, dns, name, now, status=status, source=source,
                            surface=surface, kind=kind, origin=origin, capability=capability, comment=comment,
                            created=caller.adopt(body, "created", now), extra=extra)
    store.put(item)
    record_status(caller.username, "asset", None, item["status"], now)
    return item


def set_asset_status(caller: Caller, item: dict[str, Any], status: str, comment: str | None = None,
                     body: dict[str, Any] | None = None) -> dict[str, Any]:
    now = caller.stamp(body)
    old = item.get("status")
    item = dict(item)
    if status != old:
        item["status"] = status
        item.setdefault("history", []).append(history_entry(old or "", status, caller.principal, now, comment))
    item["updated"] = now
    store.put(item)
    record_status(caller.username, "asset", old, status, now)
    return item


def upsert_risk(caller: Caller, dns: str, name: str, status: str, *, source: str = "", comment: str | None = None,
                title: str | None = None, tags: list[str] | None = None, target: str = "",
                body: dict[str, Any] | None = None) -> dict[str, Any]:
    key = caller.adopt(body, "key", keys.risk_key(dns, name))
    now = caller.stamp(body)
    existing = store.get(caller.username, key)
    if existing:
        return update_risk(caller, existing, status=status, comment=comment, title=title, tags=tags, body=body)
    norm = keys.normalize_risk_name(name)
    by = source or caller.principal
    item = {
        "username": caller.username, "key": key, "dns": dns, "name": norm, "title": title or norm,
        "source": source, "status": status, "priority": risk_priority(status),
        "created": caller.adopt(body, "created", now), "updated": now, "visited": now, "ttl": ttl_of(now),
        "plextracid": "", "guid": caller.adopt(body, "guid", _uuid()), "proofUniquenessID": "",
        "history": [history_entry("", status, by, now, comment)], "tags": sorted(set(tags or [])),
        "attackSurface": ["external"], "capability": [source] if source else [], "tickets": [],
        "target": target,
    }
    store.put(item)
    record_status(caller.username, "risk", None, status, now)
    return item


def update_risk(caller: Caller, item: dict[str, Any], *, status: str | None = None, comment: str | None = None,
                title: str | None = None, tags: list[str] | None = None, remove: int | None = None,
                body: dict[str, Any] | None = None) -> dict[str, Any]:
    now = caller.stamp(body)
    old = item.get("status")
    item = risks.updated_risk(item, caller.principal, now, status=status, comment=comment, title=title, tags=tags,
                              remove=remove)
    store.put(item)
    record_status(caller.username, "risk", old, item["status"], now)
    return item


def _uuid() -> str:
    import uuid

    return str(uuid.uuid4())


def upsert_attribute(caller: Caller, source_key: str, name: str, value: str, *, capability: str = "",
                     body: dict[str, Any] | None = None, require_source: bool = True) -> dict[str, Any]:
    if require_source and not store.get(caller.username, source_key):
        raise not_found(f"source entity {source_key} not found")
    # Derived, never adopted: in the body "key" names the source entity (a replay once stored the
    # attribute over the source asset's row).
    key = keys.attribute_key(name, value, source_key)
    now = caller.stamp(body)
    existing = store.get(caller.username, key)
    item = dict(existing) if existing else {
        "username": caller.username, "key": key, "source": source_key, "origin_source": "self",
        "name": name, "value": value, "status": "A", "capability": capability,
        "created": caller.adopt(body, "created", now), "ttl": ttl_of(now), "metadata": {},
    }
    item["visited"] = item["updated"] = now
    store.put(item)
    return item


def upsert_preseed(caller: Caller, type_: str, title: str, value: str, *, status: str = "A",
                   display: str = "text", capability: str = "", body: dict[str, Any] | None = None) -> dict[str, Any]:
    key = caller.adopt(body, "key", keys.preseed_key(type_, title, value))
    now = caller.stamp(body)
    existing = store.get(caller.username, key)
    item = dict(existing) if existing else {
        "username": caller.username, "key": key, "type": type_, "title": title, "value": value,
        "display": display, "status": status, "created": caller.adopt(body, "created", now),
        "capability": capability, "metadata": {}, "ttl": 0,
    }
    item["status"] = status if not existing else item.get("status", status)
    item["visited"] = item["updated"] = now
    store.put(item)
    return item


def matching(caller: Caller, key: str, kind: str) -> list[dict[str, Any]]:
    """Entities of ``kind`` whose key is ``key`` or starts with it (updates accept prefixes)."""
    if not key.startswith(f"#{kind}#"):
        raise ValueError(f"key must start with #{kind}#, got {key!r}")
    exact = store.get(caller.username, key)
    if exact:
        return [exact]
    return store.query_all(caller.username, key)
