"""risk-assessment's own DynamoDB tables (database per service).

* ``risk-assessment-risks``       risks
* ``risk-assessment-statistics``  the legacy ``#statistic#my#status:…`` rows for risk statuses
* ``risk-assessment-jobs``        bulk-upsert job records (``#job#bulk#…#risk``)
* ``risk-assessment-assets``      read model of asset-discovery's assets (from ``asset.discovered``)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chariot_migrate.services.kit.graph.entity_table import EntityTable
from chariot_migrate.services.kit.repository import TableSpec

SERVICE = "risk-assessment"
RISKS = f"{SERVICE}-risks"
STATISTICS = f"{SERVICE}-statistics"
JOBS = f"{SERVICE}-jobs"
ASSETS = f"{SERVICE}-assets"
TABLE_NAMES = (RISKS, STATISTICS, JOBS, ASSETS)


def table_specs(prefix: str = "") -> list[TableSpec]:
    return [TableSpec(prefix + name) for name in TABLE_NAMES]


@dataclass
class RiskStore:
    risks: EntityTable
    statistics: EntityTable
    jobs: EntityTable
    asset_view: EntityTable  # read model fed by asset.discovered

    @classmethod
    def connect(cls, client: Any, prefix: str = "") -> RiskStore:
        t = {name: EntityTable(client, spec) for name, spec in zip(TABLE_NAMES, table_specs(prefix), strict=True)}
        return cls(t[RISKS], t[STATISTICS], t[JOBS], t[ASSETS])

    def tables(self) -> list[EntityTable]:
        return [self.risks, self.statistics, self.jobs, self.asset_view]
