"""The shape of Chariot's (username, key) table, which legacy and every service table keep:
the shared ``global`` partition, the GSIs (``username-<field>-index``) and which attribute
values DynamoDB accepts for their keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

GLOBAL_USERNAME = "global"  # the partition ``?global=true`` reads instead of the caller's account
GSI_FIELDS = ("status", "source", "dns")  # each a GSI partitioned by ``username``


def gsi_name(field: str) -> str:
    return f"username-{field}-index"


def storable(item: Mapping[str, Any], gsi_fields: tuple[str, ...] = GSI_FIELDS) -> dict[str, Any]:
    """The item as the legacy table keeps it: GSI key attributes that are empty or not strings
    dropped (DynamoDB rejects them)."""
    out = dict(item)
    for f in gsi_fields:
        if f in out and (not isinstance(out[f], str) or out[f] == ""):
            out.pop(f)
    return out
