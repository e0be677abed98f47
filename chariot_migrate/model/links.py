"""Linked accounts (integrations, hooks, alerts): what ``integration.linked`` carries.

integration-hub and notification both publish it when a row is linked or unlinked; the account
service folds it into its ``#account#`` read model.
"""

from __future__ import annotations

from typing import Any


def linked_data(row: dict[str, Any], linked: bool) -> dict[str, Any]:
    """The ``integration.linked`` payload: the legacy row's fields, so the account service's
    ``#account#`` read model lists the row exactly like legacy's ``GET /my?key=#account#``.
    (The config travels on the internal bus because legacy returns it there too.)"""
    data = {"member": row["member"], "linked": linked, "name": row.get("value", ""), "value": row.get("value", ""),
            "key": row["key"], "updated": row.get("updated", ""), "config": row.get("config") or {}}
    if row.get("role"):
        data["role"] = row["role"]
    return data
