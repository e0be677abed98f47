"""risk-assessment's type: Risk (`#risk#{dns}#{name}`)."""

from __future__ import annotations

from typing import Self

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from .api import gateway, pick
from .pages import Page, page_of


@strawberry.type
class GraphRow:
    """The fields an asset and a risk row share (`#kind#{dns}#{name}`); in the schema only through them."""

    key: str
    dns: str | None
    name: str | None
    status: str | None
    source: str | None
    created: str | None
    updated: str | None

    @classmethod
    def of(cls, row: dict) -> Self:
        return cls(**pick(row, ("key", "dns", "name", "status", "source", "created", "updated")))


@strawberry.type(description="A risk on an asset, owned by risk-assessment.")
class Risk(GraphRow):
    pass


def risks_by_dns(info: Info) -> DataLoader:
    """Risks grouped by their asset's dns: one query for one asset, one listing for many."""
    return gateway(info).rows_under("risk", lambda row: row.get("dns"))


@strawberry.type
class Query:
    @strawberry.field(description="GET /my?key=#risk#{key}.")
    async def risks(self, info: Info, key: str = "", offset: str | None = None) -> Page[Risk]:
        return await page_of(info, "risk", f"#risk#{key.removeprefix('#risk#')}", offset, Risk.of)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="PUT /risk: add a risk to an asset (status TI/TL/TM/TH/TC).")
    async def add_risk(self, info: Info, asset: str, name: str, status: str = "TI", comment: str = "") -> Risk:
        doc = await gateway(info).call("PUT", "/risk", body={"key": asset, "name": name, "status": status,
                                                             "comment": comment})
        return Risk.of(doc["risks"][0] if isinstance(doc, dict) and doc.get("risks") else doc)
