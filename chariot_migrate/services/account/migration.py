"""Data mapping between the legacy single table and the account service's tables.

The account tables keep the legacy layout (``username`` / ``key``), so the mapping is a routing
by key prefix and the items travel unchanged (hidden ``_salt``/``_hash`` included: keys minted
on either side must exchange for tokens on both):

* ``#account#…`` rows (collaborators, their mirror rows, and the integration/webhook rows the
  read model lists) → ``account-members``;
* ``#key#…`` rows, including the ``#apikeys`` lookup partition → ``account-keys``.

The audit trail (``account-audit``) has no legacy counterpart and is not migrated.
"""

from __future__ import annotations

import os
from typing import Any

from chariot_migrate.services.kit.migration import TableSpec
from chariot_migrate.services.kit.read_cache import flush_service_cache

from .store import KEYS, MEMBERS

Item = dict[str, Any]
PREFIX_TABLES = {"#account#": MEMBERS, "#key#": KEYS}


class AccountMigration:
    service = "account"
    legacy_prefixes = list(PREFIX_TABLES)
    legacy_sort_key = "key"
    ignore_fields: list[str] = []

    def __init__(self, table_prefix: str = "") -> None:
        self.prefix = table_prefix
        self.new_tables = [TableSpec(table_prefix + name, "username", "key") for name in (MEMBERS, KEYS)]

    def to_new(self, item: Item) -> tuple[str, Item] | None:
        key = str(item.get("key", ""))
        for prefix, table in PREFIX_TABLES.items():
            if key.startswith(prefix) and item.get("username"):
                return self.prefix + table, dict(item)
        return None

    def to_legacy(self, table: str, item: Item) -> Item:
        if table not in {t.name for t in self.new_tables}:
            raise ValueError(f"account: unknown table {table!r}")
        return dict(item)

    def tables_changed(self, aws_endpoint_url: str | None) -> str:
        """After a backfill/repair wrote the tables around the service: drop its cached reads."""
        return flush_service_cache(self.service, self.prefix, aws_endpoint_url)


# Module-level form (LEGACY_PREFIXES / to_new / to_legacy) for tools that take plain functions.
# Like the services, the CLI's tables follow TABLE_PREFIX (several stacks on one moto/Redis).
_default = AccountMigration(os.environ.get("TABLE_PREFIX", ""))
LEGACY_PREFIXES = _default.legacy_prefixes
to_new = _default.to_new
to_legacy = _default.to_legacy
migration = _default
