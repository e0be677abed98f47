"""asset-discovery's own DynamoDB tables (database per service) and where each kind lives.

* ``asset-discovery-assets``      assets and seeds (and other asset-like kinds PUT /asset adds)
* ``asset-discovery-attributes``  attributes
* ``asset-discovery-preseeds``    preseeds
* ``asset-discovery-statistics``  the legacy ``#statistic#my#status:…`` rows for asset statuses
* ``asset-discovery-jobs``        bulk-upsert job records (``#job#bulk#…``)
* ``asset-discovery-risks``       read model of risk-assessment's risks (from ``risk.assessed``)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chariot_migrate.model.keys import kind_of
from chariot_migrate.services.kit.graph.entity_table import EntityTable
from chariot_migrate.services.kit.graph.peers import PeerSource
from chariot_migrate.services.kit.repository import TableSpec

SERVICE = "asset-discovery"
ASSETS = f"{SERVICE}-assets"
ATTRIBUTES = f"{SERVICE}-attributes"
PRESEEDS = f"{SERVICE}-preseeds"
STATISTICS = f"{SERVICE}-statistics"
JOBS = f"{SERVICE}-jobs"
RISKS = f"{SERVICE}-risks"
TABLE_NAMES = (ASSETS, ATTRIBUTES, PRESEEDS, STATISTICS, JOBS, RISKS)
# Kinds other services own: never in this service's own entity tables.
NOT_OWNED_KINDS = frozenset({"risk", "statistic", "file", "account", "key", "setting", "configuration",
                             "capability_schedule"})


def table_specs(prefix: str = "") -> list[TableSpec]:
    return [TableSpec(prefix + name) for name in TABLE_NAMES]


@dataclass
class AssetStore:
    assets: EntityTable
    attributes: EntityTable
    preseeds: EntityTable
    statistics: EntityTable
    jobs: EntityTable
    risk_view: EntityTable  # read model fed by risk.assessed
    # Per request: how risks are read (the read model, or risk-assessment's internal API).
    risk_source_factory: Callable[[Any], PeerSource] | None = field(default=None)

    @classmethod
    def connect(cls, client: Any, prefix: str = "") -> AssetStore:
        t = {name: EntityTable(client, spec) for name, spec in zip(TABLE_NAMES, table_specs(prefix), strict=True)}
        return cls(t[ASSETS], t[ATTRIBUTES], t[PRESEEDS], t[STATISTICS], t[JOBS], t[RISKS])

    def table_for(self, key_or_kind: str) -> EntityTable | None:
        """The own table a kind lives in (None for risks, which risk-assessment owns)."""
        kind = kind_of(key_or_kind) if key_or_kind.startswith("#") else key_or_kind
        if kind == "risk":
            return None
        return {"attribute": self.attributes, "preseed": self.preseeds}.get(kind, self.assets)

    def tables(self) -> list[EntityTable]:
        return [self.assets, self.attributes, self.preseeds, self.statistics, self.jobs, self.risk_view]

    def owned_tables(self, prefix: str) -> list[EntityTable]:
        """The tables holding entities this service owns (no read models, no statistics) whose
        keys can start with ``prefix``: one table for ``#<kind>#…``, all of them for ``#`` or a
        partial kind like ``#a``."""
        if prefix.count("#") >= 2:
            kind = kind_of(prefix)
            if kind in NOT_OWNED_KINDS:
                return []
            return [self.jobs] if kind == "job" else [self.table_for(kind) or self.assets]
        return [self.assets, self.attributes, self.preseeds, self.jobs]
