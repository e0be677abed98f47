"""Backfill/verify/repair mapping: legacy ``#risk#`` rows, risk-status statistics (``type: risk``)
and ``#job#bulk#…#risk`` jobs ↔ the risk-assessment tables (same item shape). The asset read
model is not owned data and is not migrated (``asset.discovered`` events rebuild it)."""

from __future__ import annotations

from typing import Any

from chariot_migrate.services.kit.graph.migration import (
    BULK_JOBS,
    STATUS_STATISTICS,
    GraphTablesMigration,
    ReadModelMigration,
    table_prefix_of,
)
from chariot_migrate.services.kit.migration import TableSpec

from .store import ASSETS, JOBS, RISKS, SERVICE, STATISTICS

Item = dict[str, Any]


class RiskAssessmentMigration(GraphTablesMigration):
    owner = SERVICE
    service = "risk-assessment"
    legacy_prefixes = ["#risk#", STATUS_STATISTICS, BULK_JOBS]

    def __init__(self, table_prefix: str | None = None) -> None:
        prefix = self.table_prefix = table_prefix_of(table_prefix)
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


migration = RiskAssessmentMigration()


class AssetViewMigration(ReadModelMigration):
    """Seeds the ``risk-assessment-assets`` read model from legacy ``#asset#`` rows (after a
    backfill, before ``asset.discovered`` events have flowed)."""

    service = "risk-assessment-asset-view"
    owner = SERVICE
    legacy_prefixes = ["#asset#"]
    view_table = ASSETS


read_model_migration = AssetViewMigration()
