"""reporting's type: Report (a stored file, `#file#{name}`)."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from .api import pick
from .pages import Page, page_of


@strawberry.type(description="A stored file or exported report, owned by reporting.")
class Report:
    key: str
    name: str | None
    updated: str | None

    @classmethod
    def of(cls, row: dict) -> Report:
        return cls(**pick(row, ("key", "name", "updated")))


@strawberry.type
class Query:
    @strawberry.field(description="GET /my?key=#file#{key}.")
    async def reports(self, info: Info, key: str = "", offset: str | None = None) -> Page[Report]:
        return await page_of(info, "file", f"#file#{key.removeprefix('#file#')}", offset, Report.of)
