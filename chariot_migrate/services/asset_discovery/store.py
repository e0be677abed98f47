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
from typing import Any, Protocol

from chariot_migrate.model.keys import kind_of
from chariot_migrate.services.kit.repository import TableSpec

from .entity_table import EntityTable

SERVICE = "asset-discovery"
ASSETS = f"{SERVICE}-assets"
ATTRIBUTES = f"{SERVICE}-attributes"
PRESEEDS = f"{SERVICE}-preseeds"
STATISTICS = f"{SERVICE}-statistics"
JOBS = f"{SERVICE}-jobs"
RISKS = f"{SERVICE}-risks"
TABLE_NAMES = (ASSETS, ATTRIBUTES, PRESEEDS, STATISTICS, JOBS, RISKS)


def table_specs(prefix: str = "") -> list[TableSpec]:
    return [TableSpec(prefix + name) for name in TABLE_NAMES]


class PeerSource(Protocol):
    """Entities another service owns, seen from here (read model or that service's internal API)."""

    def get(self, username: str, key: str) -> dict[str, Any] | None: ...

    def list(self, username: str, kind: str) -> list[dict[str, Any]]: ...


class ReadModelSource:
    """A peer's entities as this service's read-model table holds them."""

    def __init__(self, table: EntityTable) -> None:
        self.table = table

    def get(self, username: str, key: str) -> dict[str, Any] | None:
        return self.table.get(username, key)

    def list(self, username: str, kind: str) -> list[dict[str, Any]]:
        return self.table.query_all(username, f"#{kind}#")


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
