"""asset-discovery's types: Asset, Attribute (and seeds, which are assets with the Seed label)."""

from __future__ import annotations

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from .api import gateway, pick
from .pages import Page, page_of
from .risks import GraphRow, Risk, risks_by_dns  # Asset.risks: resolved by risk-assessment's module


@strawberry.type(description="An asset (`#asset#{dns}#{name}`), owned by asset-discovery.")
class Asset(GraphRow):
    @strawberry.field(description="Risks on this asset (risk-assessment), batched across assets.")
    async def risks(self, info: Info) -> list[Risk]:
        return [Risk.of(r) for r in await risks_by_dns(info).load(self.dns or "")]

    @strawberry.field(description="Attributes whose source is this asset, batched across assets.")
    async def attributes(self, info: Info) -> list[Attribute]:
        return [Attribute.of(r) for r in await attributes_by_source(info).load(self.key)]


@strawberry.type(description="An attribute (`#attribute#{name}#{value}#{source key}`), owned by asset-discovery.")
class Attribute:
    key: str
    name: str | None
    value: str | None
    source: str | None
    created: str | None
    updated: str | None

    @classmethod
    def of(cls, row: dict) -> Attribute:
        return cls(**pick(row, ("key", "name", "value", "source", "created", "updated")))


def attributes_by_source(info: Info) -> DataLoader:
    return gateway(info).rows_under("attribute", lambda row: row.get("source"))


@strawberry.type
class Query:
    @strawberry.field(description="GET /my?key=#asset#{key}: assets whose key starts with `key`.")
    async def assets(self, info: Info, key: str = "", offset: str | None = None) -> Page[Asset]:
        return await page_of(info, "asset", f"#asset#{key.removeprefix('#asset#')}", offset, Asset.of)

    @strawberry.field(description="GET /my?key=#attribute#{key}.")
    async def attributes(self, info: Info, key: str = "", offset: str | None = None) -> Page[Attribute]:
        return await page_of(info, "attribute", f"#attribute#{key.removeprefix('#attribute#')}", offset, Attribute.of)

    @strawberry.field(description="POST /my {node: {labels: [Seed]}}: the seeds, as the client lists them.")
    async def seeds(self, info: Info, key: str = "") -> list[Asset]:
        node: dict = {"labels": ["Seed"], "filters": []}
        if key:
            node["filters"].append({"field": "key", "operator": "STARTS WITH", "value": key})
        doc = await gateway(info).call("POST", "/my", body={"node": node})
        return [Asset.of(r) for r in doc.get("assets", [])] if isinstance(doc, dict) else []


@strawberry.type
class Mutation:
    @strawberry.mutation(description="PUT /asset: add an asset (dns = group, name = identifier).")
    async def add_asset(self, info: Info, dns: str, name: str, status: str = "A") -> Asset:
        doc = await gateway(info).call("PUT", "/asset", body={"group": dns, "identifier": name, "status": status,
                                                              "type": "asset"})
        return Asset.of(doc[0] if isinstance(doc, list) else doc)

    @strawberry.mutation(description="PUT /attribute on an asset or risk key.")
    async def add_attribute(self, info: Info, key: str, name: str, value: str) -> Attribute:
        doc = await gateway(info).call("PUT", "/attribute", body={"key": key, "name": name, "value": value})
        return Attribute.of(doc["attributes"][0] if isinstance(doc, dict) and doc.get("attributes") else doc)
