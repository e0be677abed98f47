"""Stored entities ↔ the gRPC contract's messages (``kit/proto/asset_discovery.proto``). Pure."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from chariot_migrate.model import query as gq
from chariot_migrate.model.keys import kind_of

ASSET_FIELDS = ("key", "dns", "name", "status", "source", "class", "created", "updated", "username")


def asset_fields(entity: dict[str, Any]) -> dict[str, Any]:
    """The ``Asset`` message's fields for a stored entity (the whole entity rides as JSON)."""
    fields: dict[str, Any] = {f: str(entity[f]) for f in ASSET_FIELDS if isinstance(entity.get(f), str)}
    fields["entity"] = json.dumps(entity, separators=(",", ":"), sort_keys=True).encode()
    return fields


def edges(nodes: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Every ``(source key, label, target key)`` among ``nodes``, as ``POST /my`` derives edges
    (``model.query.related`` decides; candidates come from a key and a dns index, not n²)."""
    by_key = {str(n.get("key")): n for n in nodes}
    by_dns: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for n in nodes:
        by_dns[n.get("dns")].append(n)
    found = []
    for node in nodes:
        owner = by_key.get(str(node.get("source")))
        if owner is not None and gq.related("HAS_ATTRIBUTE", owner, node):
            found.append((str(owner["key"]), "HAS_ATTRIBUTE", str(node["key"])))
        if node.get("source") == "seed":
            found += [(str(node["key"]), "DISCOVERED", str(d["key"])) for d in by_dns[node.get("dns")]
                      if gq.related("DISCOVERED", node, d)]
    return sorted(found)


def attributes_of(assets: list[dict[str, Any]], attributes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The attributes whose source is one of ``assets``."""
    keys = {a.get("key") for a in assets if kind_of(str(a.get("key", ""))) == "asset"}
    return [a for a in attributes if a.get("source") in keys]
