"""Reading a dual-write replay's ``X-Migrate-Primary-Result`` header (pure).

The proxy's replay worker sends the primary side's answer so the receiving side adopts its
generated values (keys, ids, timestamps, history authors) instead of minting its own. Wire format
(owned by ``chariot_migrate.dual_write.replay_protocol``): ``z1.`` + base64url(zlib(JSON
``{"status", "headers", "body" | "body_b64", "truncated"}``)). Decoded here without importing the
toolkit, because the legacy Lambda package ships only ``legacy/`` and ``model/``.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Mapping
from typing import Any

HEADER = "x-migrate-primary-result"


def primary_entity(value: str | None) -> dict[str, Any]:
    """The entity the primary answered with, as a dict of its non-empty fields; ``{}`` when the
    header is absent, truncated, garbled, not a 2xx, or not one entity."""
    if not value or not value.startswith("z1."):
        return {}
    data = value[3:]
    try:
        doc = json.loads(zlib.decompress(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))))
        if doc.get("truncated") or not 200 <= int(doc.get("status", 0)) < 300:
            return {}
        body = base64.b64decode(doc["body_b64"]) if "body_b64" in doc else doc.get("body", "").encode()
        entity: Any = json.loads(body)
    except (ValueError, KeyError, TypeError, zlib.error, UnicodeDecodeError):
        return {}
    if isinstance(entity, dict) and len(entity) == 1:  # e.g. PUT /risk answers {"risks": [risk]}
        (inner,) = entity.values()
        entity = inner if isinstance(inner, list) else entity
    if isinstance(entity, list) and len(entity) == 1:  # e.g. PUT /asset answers [asset]
        entity = entity[0]
    return {k: v for k, v in entity.items() if v not in (None, "")} if isinstance(entity, dict) else {}


def author(primary: Mapping[str, Any]) -> str | None:
    """Who the primary recorded as the author of this change (its last history entry's ``by``)."""
    history = primary.get("history")
    if isinstance(history, list) and history and isinstance(history[-1], Mapping):
        by = history[-1].get("by")
        return by if isinstance(by, str) and by else None
    return None
