"""configuration's type: Setting (`#setting#{name}`)."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from .api import gateway, pick
from .pages import Page, page_of


@strawberry.type(description="An account setting, owned by configuration.")
class Setting:
    key: str
    name: str | None
    value: JSON | None
    updated: str | None

    @classmethod
    def of(cls, row: dict) -> Setting:
        return cls(**pick(row, ("key", "name", "value", "updated")))


@strawberry.type
class Query:
    @strawberry.field(description="GET /my?key=#setting#{key}.")
    async def settings(self, info: Info, key: str = "", offset: str | None = None) -> Page[Setting]:
        return await page_of(info, "setting", f"#setting#{key.removeprefix('#setting#')}", offset, Setting.of)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="PUT /setting.")
    async def add_setting(self, info: Info, name: str, value: JSON) -> Setting:
        return Setting.of(await gateway(info).call("PUT", "/setting", body={"name": name, "value": value}))

    @strawberry.mutation(description="DELETE /setting.")
    async def delete_setting(self, info: Info, name: str) -> bool:
        await gateway(info).call("DELETE", "/setting", body={"name": name})
        return True
