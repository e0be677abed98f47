"""What every resolver uses: the caller's REST API through the proxy, and batching loaders."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError
from strawberry.dataloader import DataLoader
from strawberry.types import Info

# (method, path, query, JSON body or None) → (status, decoded JSON answer)
Fetch = Callable[[str, str, dict[str, str], Any], Awaitable[tuple[int, Any]]]
MAX_PAGES = 100  # a loader that lists a whole kind stops here (100 pages of the service's page size)


class ApiFailure(GraphQLError):
    """A REST answer ≥ 400 as a GraphQL error that keeps the status and the service's reason."""

    def __init__(self, status: int, doc: Any, what: str) -> None:
        reason = (doc.get("error") or doc.get("message")) if isinstance(doc, dict) else None
        super().__init__(f"{what}: {reason or 'failed'}", extensions={"status": status})


@dataclass
class Gateway:
    """The request context: ``fetch`` goes through the proxy as the caller; loaders batch reads."""

    fetch: Fetch
    loaders: dict[str, DataLoader] = field(default_factory=dict)

    async def call(self, method: str, path: str, query: dict[str, str] | None = None, body: Any = None) -> Any:
        status, doc = await self.fetch(method, path, query or {}, body)
        if status >= 400:
            raise ApiFailure(status, doc, f"{method} {path}")
        return doc

    async def page(self, kind: str, key: str, offset: str | None) -> tuple[list[dict], str | None]:
        """One page of ``GET /my?key=…`` and the offset of the next (as the real client sends it)."""
        query = {"key": key, **({"offset": offset} if offset else {})}
        doc = await self.call("GET", "/my", query)
        rows = doc.get(plural(kind), []) if isinstance(doc, dict) else []
        nxt = doc.get("offset") if isinstance(doc, dict) else None
        return rows, (None if nxt in (None, "", {}) else nxt if isinstance(nxt, str) else json.dumps(nxt))

    async def all_rows(self, kind: str, key: str) -> list[dict]:
        rows, offset = await self.page(kind, key, None)
        for _ in range(MAX_PAGES):
            if offset is None:
                break
            more, offset = await self.page(kind, key, offset)
            rows += more
        return rows

    def loader(self, name: str, batch: Callable[[list[str]], Awaitable[list[Any]]]) -> DataLoader:
        if name not in self.loaders:
            self.loaders[name] = DataLoader(load_fn=batch)
        return self.loaders[name]

    def rows_under(self, kind: str, group: Callable[[dict], str | None]) -> DataLoader:
        """Rows of ``kind`` grouped by ``group(row)``, for a batch of group values in ONE listing:
        one key-prefix query when the batch has one value, else the kind listed once. Never N+1."""

        async def batch(values: list[str]) -> list[list[dict]]:
            prefix = f"#{kind}#{values[0]}" if len(values) == 1 and kind != "attribute" else f"#{kind}#"
            by: dict[str, list[dict]] = defaultdict(list)
            for row in await self.all_rows(kind, prefix):
                g = group(row)
                if g is not None:
                    by[g].append(row)
            return [by.get(v, []) for v in values]

        return self.loader(f"{kind}-by", batch)


def gateway(info: Info) -> Gateway:
    return info.context["gateway"]


def plural(kind: str) -> str:
    return {"capability_schedule": "capabilityschedules"}.get(kind, kind + "s")


def pick(row: dict, names: Iterable[str]) -> dict[str, Any]:
    """The row's fields a type declares (rows carry more than any one type shows)."""
    return {n: row.get(n) for n in names}
