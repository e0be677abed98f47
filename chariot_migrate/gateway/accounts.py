"""account's, integration-hub's and notification's types: Account (collaborators), Integration
and Notification (alert rules), all rows of ``#account#…``."""

from __future__ import annotations

from typing import Self

import strawberry
from strawberry.types import Info

from .api import gateway, pick

ROW = ("key", "name", "member", "value", "updated")


@strawberry.type
class LinkRow:
    """The fields every ``#account#…`` row has; not in the schema itself, only through the three below."""

    key: str
    name: str | None
    member: str | None
    value: str | None
    updated: str | None

    @classmethod
    def of(cls, row: dict) -> Self:
        return cls(**pick(row, ROW))


@strawberry.type(description="A collaborator link (member is an email), owned by account.")
class Account(LinkRow):
    pass


@strawberry.type(description="An integration link (member is e.g. amazon, github), owned by integration-hub.")
class Integration(LinkRow):
    pass


@strawberry.type(description="An alert rule (GET /account/alert), owned by notification.")
class Notification(LinkRow):
    pass


def is_person(row: dict) -> bool:
    # As the client splits them: collaborators are emails, the rest are integrations (and hooks).
    return "@" in str(row.get("member") or "")


@strawberry.type
class Query:
    @strawberry.field(description="GET /my?key=#account#: collaborators.")
    async def accounts(self, info: Info) -> list[Account]:
        rows = await gateway(info).all_rows("account", "#account#")
        return [Account.of(r) for r in rows if is_person(r)]

    @strawberry.field(description="GET /my?key=#account#: integrations.")
    async def integrations(self, info: Info) -> list[Integration]:
        rows = await gateway(info).all_rows("account", "#account#")
        return [Integration.of(r) for r in rows if not is_person(r) and r.get("member") not in ("hook", "alert")]

    @strawberry.field(description="GET /account/alert.")
    async def notifications(self, info: Info) -> list[Notification]:
        doc = await gateway(info).call("GET", "/account/alert")
        rows = doc if isinstance(doc, list) else doc.get("accounts", []) if isinstance(doc, dict) else []
        return [Notification.of(r) for r in rows]
