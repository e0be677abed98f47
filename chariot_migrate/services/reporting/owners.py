"""Entities as the services that own them hold them, for ``GET /my/count`` and report exports.

Legacy counts and reports over its one table, so a write is counted by the very next request. The
event-fed read model (``readmodel.py``) is late by the event delay, misses what a lost or
misrouted event carried, and never sees attributes or preseeds (no event type carries them). So
when the owners' URLs are configured, reporting reads the rows from the owners' internal API
(``GET /internal/api/entities?prefix=``, service token, acting for the account) — asset-discovery
(assets, seeds, attributes, preseeds, bulk jobs), risk-assessment (risks, bulk-risk jobs),
capabilities (jobs, schedules) — and its own tables (files, statistics, export jobs). Without
them (a lone reporting process, unit tests) the read model answers, as before.

An owner that fails is a 503 with its name, never a silently smaller count (the proxy then fails
the read over to legacy).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from ..kit.client import ServiceClient

INTERNAL_ENTITIES = "/internal/api/entities"
# Kinds only reporting keeps: no owner is asked for them.
OWN_KIND_PREFIXES = ("#statistic#", "#file#")


class OwnerUnavailable(RuntimeError):
    """An owning service did not answer the read (the message names it and what it answered)."""


def owners_needed(prefix: str) -> bool:
    """Whether any owner can hold keys under ``prefix`` (pure)."""
    return not prefix.startswith(OWN_KIND_PREFIXES)


class OwnerRows:
    """``rows(account, prefix)``: every owner's entities under a key prefix, in one list."""

    def __init__(self, clients: Mapping[str, ServiceClient]) -> None:
        self.clients = dict(clients)

    @classmethod
    def connect(cls, urls: Mapping[str, str | None], token: Callable[[], str], *,
                timeout: float = 5.0) -> OwnerRows | None:
        """None unless every owner's URL is known (a partial view would count wrong)."""
        if not all(urls.values()):
            return None
        return cls({peer: ServiceClient(str(url), peer=peer, token=token, timeout=timeout)
                    for peer, url in urls.items()})

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    async def rows(self, account: str, prefix: str) -> list[dict[str, Any]]:
        if not owners_needed(prefix):
            return []
        parts = await asyncio.gather(*(self._rows(c, account, prefix) for c in self.clients.values()))
        return [row for part in parts for row in part]

    async def _rows(self, client: ServiceClient, account: str, prefix: str) -> list[dict[str, Any]]:
        try:
            resp = await client.get(INTERNAL_ENTITIES, account=account, params={"prefix": prefix})
        except Exception as exc:  # transport error or open breaker
            raise OwnerUnavailable(f"{client.peer} did not answer ({type(exc).__name__})") from None
        if resp.status_code != 200:
            raise OwnerUnavailable(f"{client.peer} answered {resp.status_code}")
        items = resp.json().get("items")
        return items if isinstance(items, list) else []
