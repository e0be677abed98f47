"""capabilities' types: Job (`#job#{dns}#{target}#{capability}`) and Capability."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from .api import gateway, pick
from .pages import Page, page_of


@strawberry.type(description="A job running a capability against a target, owned by capabilities.")
class Job:
    key: str
    dns: str | None
    source: str | None
    status: str | None
    created: str | None
    updated: str | None

    @classmethod
    def of(cls, row: dict) -> Job:
        return cls(**pick(row, ("key", "dns", "source", "status", "created", "updated")))


@strawberry.type(description="A capability jobs can run (GET /capabilities).")
class Capability:
    name: str
    title: str | None
    target: str | None
    description: str | None

    @classmethod
    def of(cls, row: dict) -> Capability:
        return cls(**pick(row, ("name", "title", "target", "description")))


@strawberry.type
class Query:
    @strawberry.field(description="GET /my?key=#job#{key}.")
    async def jobs(self, info: Info, key: str = "", offset: str | None = None) -> Page[Job]:
        return await page_of(info, "job", f"#job#{key.removeprefix('#job#')}", offset, Job.of)

    @strawberry.field(description="GET /capabilities.")
    async def capabilities(self, info: Info) -> list[Capability]:
        doc = await gateway(info).call("GET", "/capabilities")
        return [Capability.of(r) for r in doc if isinstance(r, dict)] if isinstance(doc, list) else []


@strawberry.type
class Mutation:
    @strawberry.mutation(description="POST /job: run capabilities (all that apply when none is named) on a key.")
    async def add_job(self, info: Info, key: str, capabilities: list[str] | None = None,
                      config: JSON | None = None) -> list[Job]:
        body: dict = {"key": key}
        if capabilities:
            body["capabilities"] = capabilities
        if config:
            body["config"] = config
        doc = await gateway(info).call("POST", "/job", body=body)
        return [Job.of(r) for r in doc] if isinstance(doc, list) else []
