"""Data mapping between the legacy single table and the configuration service's table: the
``#setting#`` and ``#configuration#`` rows travel unchanged (same ``username``/``key`` layout)."""

from __future__ import annotations

import os
from typing import Any

from chariot_migrate.services.kit.migration import TableSpec

from .store import SETTINGS

Item = dict[str, Any]


class ConfigurationMigration:
    service = "configuration"
    legacy_prefixes = ["#setting#", "#configuration#"]
    legacy_sort_key = "key"
    ignore_fields: list[str] = []

    def __init__(self, table_prefix: str = "") -> None:
        self.table = table_prefix + SETTINGS
        self.new_tables = [TableSpec(self.table, "username", "key")]

    def to_new(self, item: Item) -> tuple[str, Item] | None:
        key = str(item.get("key", ""))
        if item.get("username") and key.startswith(tuple(self.legacy_prefixes)):
            return self.table, dict(item)
        return None

    def to_legacy(self, table: str, item: Item) -> Item:
        if table != self.table:
            raise ValueError(f"configuration: unknown table {table!r}")
        return dict(item)


# Like the services, the CLI's tables follow TABLE_PREFIX (several stacks on one moto/Redis).
_default = ConfigurationMigration(os.environ.get("TABLE_PREFIX", ""))
LEGACY_PREFIXES = _default.legacy_prefixes
to_new = _default.to_new
to_legacy = _default.to_legacy
migration = _default
