"""Asset rows: the key of an add, a new row and a row seen again, exactly as the legacy handlers
shape them (history entries, ttl, class, surfaces). Pure functions over plain dicts, used by the
legacy stack and asset-discovery alike."""

from __future__ import annotations

from typing import Any

from . import keys
from .classes import asset_class, is_private
from .history import history_entry, ttl_of


def asset_key_for(kind: str, dns: str, name: str) -> str:
    """An asset's key, or a generic entity's of another ``kind``."""
    return keys.asset_key(dns, name) if kind == "asset" else keys.generic_key(kind, dns, name)


def merge_asset(existing: dict[str, Any], principal: str, now: str, *, status: str | None,
                surface: list[str] | None, capability: str, comment: str | None,
                extra: dict[str, Any] | None) -> dict[str, Any]:
    """An existing asset seen again: new status (with history), surfaces and capability merged."""
    item = dict(existing)
    old = item.get("status")
    if status and status != old:
        item["status"] = status
        item["history"] = [*item.get("history", []), history_entry(old or "", status, principal, now, comment)]
    if surface:
        item["attackSurface"] = sorted(set(item.get("attackSurface", [])) | set(surface))
    if capability and capability not in item.get("capability", []):
        item["capability"] = [*item.get("capability", []), capability]
    item.update(extra or {})
    item["visited"] = item["updated"] = now
    return item


def new_asset(username: str, principal: str, key: str, dns: str, name: str, now: str, *, status: str | None,
              source: str, surface: list[str] | None, kind: str, origin: str, capability: str,
              comment: str | None, created: str, extra: dict[str, Any] | None) -> dict[str, Any]:
    """A new asset (or generic graph entity of ``kind``) row, shaped as the legacy API stores it."""
    surface = [s for s in (surface or []) if s] or ["external"]
    lowered_dns, lowered_name = (dns.lower(), name.lower()) if kind == "asset" else (dns, name)
    item = {
        "username": username, "key": key, "dns": lowered_dns, "name": lowered_name,
        "group": lowered_dns, "identifier": lowered_name,
        "class": asset_class(lowered_dns, lowered_name, source), "status": status or "A",
        "source": source, "origin": origin or source, "private": is_private(lowered_name),
        "created": created, "updated": now, "visited": now, "ttl": ttl_of(now),
        "attackSurface": surface, "capability": [capability] if capability else [],
        "isExternal": "external" in surface, "isInternal": "internal" in surface,
        "isCloud": "cloud" in surface, "isApplication": "application" in surface,
        "isRepository": "repository" in surface,
        "history": [history_entry("", status or "A", principal, now, comment)], "tags": [],
        "type": kind,
    }
    item.update(extra or {})
    return item


def update_fields(attack_surface: list[str] | None, secret: str | None) -> dict[str, Any] | None:
    """What an asset update (``PUT /asset`` with a key) writes besides its status: the attack
    surfaces (blank ones dropped) and the secret, each only when given; None when neither is."""
    if attack_surface is None and secret is None:
        return None
    fields: dict[str, Any] = {}
    if attack_surface is not None:
        fields["attackSurface"] = [s for s in attack_surface if s]
    if secret is not None:
        fields["secret"] = secret
    return fields
