"""The graph services' per-(partition, kind) entity lists, read through ``app.state.cache``.

``POST /my`` evaluates its query in memory over whole kinds (relationships need them), so what a
request loads is "every entity of kind K in partition P" — ``EntityTable.query_all(P, "#K#")``.
That load is the unit cached, under ``cache_key("kind", K, P)`` (P: an account, or ``global``).
The internal ``/internal/api/entities`` read the peer service uses is answered from it too.

Invalidation is tied to the tables, not to the routes: every write method of
:class:`~.entity_table.EntityTable` calls ``after_write(username, key)`` once it has written, and
:func:`invalidate_on_write` turns that into invalidating ``kind:<kind_of(key)>:<username>``. A row
is part of the load (K, P) only if its key starts with ``#K#`` in partition P, and then
``kind_of(key) == K``: so each write invalidates the one entry its row can be in, whichever path
wrote it (routes, dual-write replays — they are routes —, bulk, the event handlers that fold the
peer's entities into read models).

Only kinds in :data:`CACHED_KINDS` read from this service's own tables (read models included) are
cached. Kinds read from the peer's internal API are not: the peer's writes could not invalidate
them here (the peer caches its own side of that read).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from anyio import to_thread

from chariot_migrate.model.keys import kind_of
from chariot_migrate.services.kit.cache import ReadThroughCache, cache_key

from .entity_table import EntityTable
from .search import KindSource

Entities = list[dict[str, Any]]
# Kinds POST /my loads that are worth caching; any other label (a typo, "TTL") reads the store.
# A closed set keeps the number of entries per partition bounded whatever labels clients send.
CACHED_KINDS = frozenset({"asset", "addomain", "repository", "webapplication", "generic",
                          "attribute", "preseed", "risk"})
PartitionLoader = Callable[[str], Entities]  # partition → that kind's entities (blocking)


def kind_key(partition: str, kind: str) -> str:
    return cache_key("kind", kind, partition)


def keys_to_invalidate(username: str, key: str) -> list[str]:
    """The cache entries a write of row (``username``, ``key``) can change (pure)."""
    kind = kind_of(key)
    return [kind_key(username, kind)] if kind in CACHED_KINDS else []


def invalidate_on_write(cache: ReadThroughCache, tables: Iterable[EntityTable]) -> None:
    """Hook every table's writes to the cache (call once at startup, for ALL the service's tables)."""

    def after_write(username: str, key: str) -> None:
        cache.invalidate_from_thread(keys_to_invalidate(username, key))

    for table in tables:
        table.after_write = after_write


def table_loader(table: EntityTable, kind: str) -> PartitionLoader:
    return lambda partition: table.query_all(partition, f"#{kind}#")


class KindLists:
    """Cached kind loads of one service instance: ``loaders[kind](partition)`` reads the store."""

    def __init__(self, cache: ReadThroughCache, loaders: Mapping[str, PartitionLoader]) -> None:
        unknown = set(loaders) - CACHED_KINDS
        if unknown:  # an entry no write could invalidate would never change
            raise ValueError(f"kinds {sorted(unknown)} are not invalidated by writes (not in CACHED_KINDS)")
        self.cache = cache
        self.loaders = dict(loaders)

    async def get(self, partition: str, kind: str) -> Entities:
        load = self.loaders[kind]
        return await self.cache.get_or_load(kind_key(partition, kind),
                                            lambda: to_thread.run_sync(lambda: load(partition)))

    async def with_prefix(self, partition: str, prefix: str) -> Entities | None:
        """Entities whose key starts with ``prefix`` (``#kind#…``), from the cached kind; None when
        that kind is not cached here (read the store then)."""
        kind = kind_of(prefix)
        if kind not in self.loaders or not prefix.startswith(f"#{kind}#"):
            return None
        return [e for e in await self.get(partition, kind) if str(e["key"]).startswith(prefix)]

    async def preload(self, partition: str, kinds: Iterable[str]) -> dict[str, Entities]:
        """The cached kinds among ``kinds``; the others are left to the caller's own source."""
        wanted = sorted(set(kinds) & set(self.loaders))
        lists = await asyncio.gather(*(self.get(partition, kind) for kind in wanted))
        return dict(zip(wanted, lists, strict=True))


def preferring(preloaded: Mapping[str, Entities], fallback: KindSource) -> KindSource:
    """A kind source answering from ``preloaded`` first (pure)."""

    def source(kind: str) -> Entities:
        found = preloaded.get(kind)
        return found if found is not None else fallback(kind)

    return source
