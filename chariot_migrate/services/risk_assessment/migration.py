"""Backfill/verify/repair mapping: legacy ``#risk#`` rows, risk-status statistics (``type: risk``)
and ``#job#bulk#…#risk`` jobs ↔ the risk-assessment tables (same item shape). The asset read
model is not owned data and is not migrated (``asset.discovered`` events rebuild it)."""

from __future__ import annotations

import os
from typing import Any

from chariot_migrate.dual_write.migration import TableSpec
from chariot_migrate.services.asset_discovery.entity_table import VERSION_ATTRIBUTE
from chariot_migrate.services.asset_discovery.migration import BULK_JOBS, STATUS_STATISTICS
from chariot_migrate.services.read_cache import flush_service_cache

from .store import ASSETS, JOBS, RISKS, SERVICE, STATISTICS

Item = dict[str, Any]


class RiskAssessmentMigration:
    service = "risk-assessment"
    legacy_prefixes = ["#risk#", STATUS_STATISTICS, BULK_JOBS]
    ignore_fields = [VERSION_ATTRIBUTE]

    def __init__(self, table_prefix: str | None = None) -> None:
        prefix = os.environ.get("TABLE_PREFIX", "") if table_prefix is None else table_prefix
        self.table_prefix = prefix
        self.risks, self.statistics, self.jobs = (prefix + t for t in (RISKS, STATISTICS, JOBS))
        self.new_tables = [TableSpec(t, "username", "key") for t in (self.risks, self.statistics, self.jobs)]

    def table_of(self, item: Item) -> str | None:
        key = str(item.get("key", ""))
        if key.startswith("#risk#"):
            return self.risks
        if key.startswith(STATUS_STATISTICS) and item.get("type") == "risk":
            return self.statistics
        if key.startswith(BULK_JOBS) and key.endswith("#risk"):
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


migration = RiskAssessmentMigration()


class AssetViewMigration:
    """Seeds the ``risk-assessment-assets`` read model from legacy ``#asset#`` rows (after a
    backfill, before ``asset.discovered`` events have flowed)."""

    service = "risk-assessment-asset-view"
    legacy_prefixes = ["#asset#"]
    ignore_fields = [VERSION_ATTRIBUTE]

    def __init__(self, table_prefix: str | None = None) -> None:
        prefix = os.environ.get("TABLE_PREFIX", "") if table_prefix is None else table_prefix
        self.table_prefix = prefix
        self.view = prefix + ASSETS
        self.new_tables = [TableSpec(self.view, "username", "key")]

    def to_new(self, item: Item) -> tuple[str, Item] | None:
        return (self.view, dict(item)) if str(item.get("key", "")).startswith("#asset#") else None

    def to_legacy(self, table: str, item: Item) -> Item:
        return {k: v for k, v in item.items() if k != VERSION_ATTRIBUTE}

    def tables_changed(self, aws_endpoint_url: str | None) -> str:
        return flush_service_cache(SERVICE, self.table_prefix, aws_endpoint_url)


read_model_migration = AssetViewMigration()
