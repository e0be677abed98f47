"""Backfill/verify/repair mapping: legacy rows asset-discovery owns ↔ its tables.

The item shape is the legacy one (same ``username``/``key``), so the mapping is the choice of
table: assets and seeds (and other asset-like kinds ``PUT /asset`` adds), attributes, preseeds,
the asset-status statistics rows (``type: asset``) and the bulk jobs of assets/attributes.
The risk read model is not owned data and is not migrated (events rebuild it).
"""

from __future__ import annotations

import os
from typing import Any

from chariot_migrate.dual_write.migration import TableSpec
from chariot_migrate.services.read_cache import flush_service_cache

from .entity_table import VERSION_ATTRIBUTE
from .store import ASSETS, ATTRIBUTES, JOBS, PRESEEDS, RISKS, SERVICE, STATISTICS

Item = dict[str, Any]
# Asset-like kinds PUT /asset may create besides #asset# (``type`` other than "asset").
ASSET_KINDS = ("#asset#", "#addomain#", "#repository#", "#webapplication#", "#generic#")
STATUS_STATISTICS = "#statistic#my#status:"
BULK_JOBS = "#job#bulk#"


class AssetDiscoveryMigration:
    service = "asset-discovery"
    legacy_prefixes = [*ASSET_KINDS, "#attribute#", "#preseed#", STATUS_STATISTICS, BULK_JOBS]
    ignore_fields = [VERSION_ATTRIBUTE]

    def __init__(self, table_prefix: str | None = None) -> None:
        prefix = os.environ.get("TABLE_PREFIX", "") if table_prefix is None else table_prefix
        self.table_prefix = prefix
        self.assets, self.attributes, self.preseeds, self.statistics, self.jobs = (
            prefix + t for t in (ASSETS, ATTRIBUTES, PRESEEDS, STATISTICS, JOBS))
        self.new_tables = [TableSpec(t, "username", "key") for t in
                           (self.assets, self.attributes, self.preseeds, self.statistics, self.jobs)]

    def table_of(self, item: Item) -> str | None:
        key = str(item.get("key", ""))
        if key.startswith(ASSET_KINDS):
            return self.assets
        if key.startswith("#attribute#"):
            return self.attributes
        if key.startswith("#preseed#"):
            return self.preseeds
        if key.startswith(STATUS_STATISTICS) and item.get("type") == "asset":
            return self.statistics
        if key.startswith(BULK_JOBS) and key.rsplit("#", 1)[-1] in ("asset", "attribute"):
            return self.jobs
        return None

    def to_new(self, item: Item) -> tuple[str, Item] | None:
        table = self.table_of(item)
        return None if table is None else (table, dict(item))

    def to_legacy(self, table: str, item: Item) -> Item:
        return {k: v for k, v in item.items() if k != VERSION_ATTRIBUTE}

    def tables_changed(self, aws_endpoint_url: str | None) -> str:
        """After a backfill/repair wrote the tables around the service: drop its cached reads."""
        return flush_service_cache(SERVICE, self.table_prefix, aws_endpoint_url)


migration = AssetDiscoveryMigration()


class RiskViewMigration:
    """Seeds the ``asset-discovery-risks`` read model from legacy ``#risk#`` rows (after a backfill,
    before ``risk.assessed`` events have flowed); verify shows drift of the read model."""

    service = "asset-discovery-risk-view"
    legacy_prefixes = ["#risk#"]
    ignore_fields = [VERSION_ATTRIBUTE]

    def __init__(self, table_prefix: str | None = None) -> None:
        prefix = os.environ.get("TABLE_PREFIX", "") if table_prefix is None else table_prefix
        self.table_prefix = prefix
        self.view = prefix + RISKS
        self.new_tables = [TableSpec(self.view, "username", "key")]

    def to_new(self, item: Item) -> tuple[str, Item] | None:
        return (self.view, dict(item)) if str(item.get("key", "")).startswith("#risk#") else None

    def to_legacy(self, table: str, item: Item) -> Item:
        return {k: v for k, v in item.items() if k != VERSION_ATTRIBUTE}

    def tables_changed(self, aws_endpoint_url: str | None) -> str:
        return flush_service_cache(SERVICE, self.table_prefix, aws_endpoint_url)


read_model_migration = RiskViewMigration()
