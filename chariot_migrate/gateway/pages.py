"""One page of a Chariot list, as GraphQL: the items and the offset to send back for the next."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import strawberry
from strawberry.types import Info

from .api import gateway

T = TypeVar("T")


@strawberry.type
class Page(Generic[T]):
    items: list[T]
    offset: str | None = strawberry.field(description="pass back as `offset` for the next page; null on the last")


async def page_of(info: Info, kind: str, key: str, offset: str | None, make: Callable[[dict], T]) -> Page[T]:
    rows, nxt = await gateway(info).page(kind, key, offset)
    return Page(items=[make(r) for r in rows], offset=nxt)
