"""What both graph services' migration mappers share: the legacy key prefixes they split between
them (by ``type`` or by the job's entity suffix), the bookkeeping attribute verify ignores, the
item handling of their owned tables (same shape as legacy) and the read-model seeding mapper."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from ..migration import TableSpec
from ..read_cache import flush_service_cache
from .entity_table import VERSION_ATTRIBUTE

Item = dict[str, Any]
STATUS_STATISTICS = "#statistic#my#status:"
BULK_JOBS = "#job#bulk#"


def table_prefix_of(table_prefix: str | None) -> str:
    return os.environ.get("TABLE_PREFIX", "") if table_prefix is None else table_prefix


class GraphTablesMigration:
    """Owned tables keep the legacy item shape, so the mapping is the choice of table
    (``table_of``); ``owner`` is the service whose cached reads a backfill/repair drops."""

    owner: ClassVar[str]
    ignore_fields = [VERSION_ATTRIBUTE]
    table_prefix: str

    def table_of(self, item: Item) -> str | None:
        raise NotImplementedError

    def to_new(self, item: Item) -> tuple[str, Item] | None:
        table = self.table_of(item)
        return None if table is None else (table, dict(item))

    def to_legacy(self, table: str, item: Item) -> Item:
        return {k: v for k, v in item.items() if k != VERSION_ATTRIBUTE}

    def tables_changed(self, aws_endpoint_url: str | None) -> str:
        """After a backfill/repair wrote the tables around the service: drop its cached reads."""
        return flush_service_cache(self.owner, self.table_prefix, aws_endpoint_url)


class ReadModelMigration(GraphTablesMigration):
    """Seeds a graph service's read model of its peer's kind (``legacy_prefixes``: one key prefix)
    from legacy rows, after a backfill and before the peer's events have flowed; verify shows the
    read model's drift."""

    legacy_prefixes: ClassVar[list[str]]
    view_table: ClassVar[str]

    def __init__(self, table_prefix: str | None = None) -> None:
        self.table_prefix = table_prefix_of(table_prefix)
        self.view = self.table_prefix + self.view_table
        self.new_tables = [TableSpec(self.view, "username", "key")]

    def table_of(self, item: Item) -> str | None:
        return self.view if str(item.get("key", "")).startswith(self.legacy_prefixes[0]) else None


__all__ = ["BULK_JOBS", "STATUS_STATISTICS", "VERSION_ATTRIBUTE", "GraphTablesMigration", "ReadModelMigration",
           "table_prefix_of"]
