"""Backfill/verify/repair mapping: legacy ``#account#{owner}#hook#…`` / ``#alert#…`` rows ↔
``notification-accounts`` (same shape)."""

from __future__ import annotations

import os
from typing import Any

from chariot_migrate.services.kit.migration import TableSpec

from .store import ACCOUNTS_TABLE, OWNED_MEMBERS

Item = dict[str, Any]


class NotificationMigration:
    service = "notification"
    legacy_prefixes = ["#account#"]  # narrowed per row in to_new (only hook/alert members)
    ignore_fields = ["version"]

    def __init__(self, table_prefix: str | None = None) -> None:
        prefix = os.environ.get("TABLE_PREFIX", "") if table_prefix is None else table_prefix
        self.table = prefix + ACCOUNTS_TABLE
        self.new_tables = [TableSpec(self.table, "username", "key")]

    def to_new(self, item: Item) -> tuple[str, Item] | None:
        parts = str(item.get("key", "")).split("#")
        # #account#{owner}#{member}#{value}: owned when member is hook/alert and the row is the owner's
        if len(parts) >= 5 and parts[1] == "account" and parts[3] in OWNED_MEMBERS and parts[2] == item.get("username"):
            return self.table, dict(item)
        return None

    def to_legacy(self, table: str, item: Item) -> Item:
        return {k: v for k, v in item.items() if k != "version"}


migration = NotificationMigration()
