"""Backfill/verify/repair mapping: legacy integration rows (``#account#{owner}#{member}#{value}``
whose member is not an email, hook or alert) ↔ ``integration-hub-integrations`` (same shape)."""

from __future__ import annotations

import os
from typing import Any

from chariot_migrate.services.kit.migration import TableSpec

from .store import INTEGRATIONS_TABLE, is_integration

Item = dict[str, Any]


class IntegrationHubMigration:
    service = "integration-hub"
    legacy_prefixes = ["#account#"]  # narrowed per row in to_new
    ignore_fields = ["version"]

    def __init__(self, table_prefix: str | None = None) -> None:
        prefix = os.environ.get("TABLE_PREFIX", "") if table_prefix is None else table_prefix
        self.table = prefix + INTEGRATIONS_TABLE
        self.new_tables = [TableSpec(self.table, "username", "key")]

    def to_new(self, item: Item) -> tuple[str, Item] | None:
        parts = str(item.get("key", "")).split("#", 4)
        if len(parts) == 5 and parts[1] == "account" and parts[2] == item.get("username") and is_integration(parts[3]):
            return self.table, dict(item)
        return None

    def to_legacy(self, table: str, item: Item) -> Item:
        return {k: v for k, v in item.items() if k != "version"}


migration = IntegrationHubMigration()
