"""Backfill/verify/repair mapping: legacy rows asset-discovery owns ↔ its tables.

The item shape is the legacy one (same ``username``/``key``), so the mapping is the choice of
table: assets and seeds (and other asset-like kinds ``PUT /asset`` adds), attributes, preseeds,
the asset-status statistics rows (``type: asset``) and the bulk jobs of assets/attributes.
The risk read model is not owned data and is not migrated (events rebuild it).
"""

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

from .store import ASSETS, ATTRIBUTES, JOBS, PRESEEDS, RISKS, SERVICE, STATISTICS

Item = dict[str, Any]
# Asset-like kinds PUT /asset may create besides #asset# (``type`` other than "asset").
ASSET_KINDS = ("#asset#", "#addomain#", "#repository#", "#webapplication#", "#generic#")


class AssetDiscoveryMigration(GraphTablesMigration):
    owner = SERVICE
    service = "asset-discovery"
    legacy_prefixes = [*ASSET_KINDS, "#attribute#", "#preseed#", STATUS_STATISTICS, BULK_JOBS]

    def __init__(self, table_prefix: str | None = None) -> None:
        prefix = self.table_prefix = table_prefix_of(table_prefix)
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


migration = AssetDiscoveryMigration()


class RiskViewMigration(ReadModelMigration):
    """Seeds the ``asset-discovery-risks`` read model from legacy ``#risk#`` rows (after a backfill,
    before ``risk.assessed`` events have flowed); verify shows drift of the read model."""

    service = "asset-discovery-risk-view"
    owner = SERVICE
    legacy_prefixes = ["#risk#"]
    view_table = RISKS


read_model_migration = RiskViewMigration()
