"""``GET /my`` answered from a cached copy of one partition of a ``(username, key)`` table.

What is cached: one partition of one table — every row of ``username`` in ``table``, in key
order — under ``cache_key("rows", table, username)``. Every ``GET /my`` of that partition (any
key prefix, ``exact``, ``desc``, ``label``, ``field:value``) is then answered from memory with the
same key condition and filters the DynamoDB query applies.

Only where that is exactly what DynamoDB would answer: the whole partition fits in one page (at
most ``page_size`` rows and well under DynamoDB's 1 MB page), so the query could not have stopped
early and there is no ``offset`` to give; requests with ``offset`` or a ``to`` range, and
partitions too big for one page, are answered by DynamoDB as before.

Invalidation: the store calls ``after_write(table, username, key)`` after every put and delete
(:class:`~chariot_migrate.services.kit.plain_store.PlainStore`); :func:`invalidate_partitions` turns that
into invalidating ``rows:<table>:<username>`` — the one entry that row can be part of.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any

from anyio import to_thread

from .cache import ReadThroughCache, cache_key
from .plain_store import MyQuery, PlainStore, bucketize, filter_my_items, run_my_query

# A partition is cached whole only below this JSON size: half of DynamoDB's 1 MB page, since an
# item's JSON is never much smaller than its stored size (names and values are there in full).
MAX_PARTITION_JSON_BYTES = 512_000
Snapshot = dict[str, Any]  # {"complete": bool, "rows": [...]}; rows only when complete


def partition_key(table: str, username: str) -> str:
    return cache_key("rows", table, username)


def snapshot_of(rows: list[dict[str, Any]], page_size: int) -> Snapshot:
    """What is cached for a partition whose first ``page_size + 1`` rows are ``rows`` (pure)."""
    if len(rows) > page_size:
        return {"complete": False, "rows": []}
    try:
        size = len(json.dumps(rows))
    except (TypeError, ValueError):  # e.g. binary attributes: not JSON, so not cacheable as is
        return {"complete": False, "rows": []}
    if size > MAX_PARTITION_JSON_BYTES:
        return {"complete": False, "rows": []}
    return {"complete": True, "rows": rows}


def needs_dynamodb(q: MyQuery) -> bool:
    """Requests a one-page snapshot cannot answer: a next page (``offset``), a ``to`` range."""
    return q.start is not None or (q.field_filter is None and not q.exact and bool(q.to))


def answer_from_snapshot(snapshot: Snapshot, q: MyQuery) -> dict[str, Any] | None:
    """``GET /my`` over a cached partition, as the DynamoDB query gives it (pure); None when the
    snapshot cannot answer it."""
    if not snapshot["complete"] or needs_dynamodb(q):
        return None
    rows: list[dict[str, Any]] = snapshot["rows"]
    if q.field_filter is None and q.exact:
        selected = [r for r in rows if r["key"] == q.term]
    else:
        prefix = q.key_prefix
        selected = [r for r in rows if str(r["key"]).startswith(prefix)]
    if q.desc:
        selected.reverse()
    return bucketize(filter_my_items(selected, q), None)


async def cached_my(cache: ReadThroughCache, store: PlainStore, table: str, q: MyQuery, *,
                    page_size: int) -> dict[str, Any]:
    """One ``GET /my`` answer: from the cached partition when it can, else from DynamoDB."""
    if not needs_dynamodb(q):
        def load() -> Snapshot:
            return snapshot_of(store.query_all(table, q.username, "", limit=page_size + 1), page_size)

        snapshot = await cache.get_or_load(partition_key(table, q.username), lambda: to_thread.run_sync(load))
        answer = answer_from_snapshot(snapshot, q)
        if answer is not None:
            return answer
    return await to_thread.run_sync(lambda: run_my_query(store.client, store.table(table), q, page_size=page_size))


def invalidate_partitions(cache: ReadThroughCache, tables: Collection[str]) -> Callable[[str, str, str], None]:
    """A ``PlainStore.after_write`` hook: a write to ``tables`` invalidates its partition's entry."""

    def after_write(table: str, username: str, key: str) -> None:
        if table in tables:
            cache.invalidate_from_thread([partition_key(table, username)])

    return after_write
