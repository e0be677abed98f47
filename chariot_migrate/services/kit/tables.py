"""Legacy-shaped access to one service table: the kit's one table layer (capabilities,
notification, reporting, integration-hub and the graph services use it).

Services keep their own tables (database-per-service) but must answer ``GET /my`` exactly like
the legacy search function: the same bucketing, the same ``offset`` (the DynamoDB
LastEvaluatedKey as a JSON object, round-tripped unchanged by the client) and the same GSIs
(``username-<field>-index``). Writes go through ``kit.Repository``; its optimistic ``version``
attribute is bookkeeping and never shown to clients.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from anyio import to_thread

from chariot_migrate.model import search as my_search
from chariot_migrate.model.search import SearchError
from chariot_migrate.model.table import GLOBAL_USERNAME, GSI_FIELDS, gsi_name, storable

from .repository import IndexSpec, Repository, TableSpec, deserialize_item, serialize_item

HIDDEN_FIELDS = frozenset({"version"})
DEFAULT_PAGE_SIZE = 1000


def legacy_table_spec(name: str, gsi_fields: tuple[str, ...] = ()) -> TableSpec:
    """A table keyed like the legacy one (username, key) with ``username-<field>-index`` GSIs."""
    return TableSpec(name, indexes=tuple(IndexSpec(gsi_name(f), "username", f) for f in gsi_fields))


def public(item: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A stored item as clients see it (bookkeeping and ``_``-prefixed fields dropped)."""
    if item is None:
        return None
    return {k: v for k, v in item.items() if k not in HIDDEN_FIELDS and not k.startswith("_")}


class LegacyShapedTable:
    """get/put/delete through kit.Repository; paged queries with legacy-shaped offsets."""

    def __init__(self, repo: Repository, gsi_fields: tuple[str, ...] = ()) -> None:
        self.repo = repo
        self.gsi_fields = gsi_fields

    # -- sync ---------------------------------------------------------------------------------
    def get(self, username: str, key: str) -> dict[str, Any] | None:
        return public(self.repo.get(username, key))

    def put(self, item: Mapping[str, Any]) -> dict[str, Any]:
        self.repo.put(storable(item, self.gsi_fields))
        return dict(item)

    def delete(self, username: str, key: str) -> dict[str, Any] | None:
        return public(self.repo.delete(username, key))

    def query_page(
        self,
        username: str,
        *,
        prefix: str | None = None,
        exact: str | None = None,
        between: tuple[str, str] | None = None,
        index_field: str | None = None,
        index_value: str | None = None,
        index_exact: bool = False,
        start: dict[str, Any] | None = None,
        limit: int | None = None,
        descending: bool = False,
        key_prefix_filter: str | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        names: dict[str, str] = {"#u": "username"}
        values: dict[str, Any] = {":u": {"S": username}}
        cond = "#u = :u"
        kwargs: dict[str, Any] = {"TableName": self.repo.table, "ScanIndexForward": not descending}
        if index_field:
            kwargs["IndexName"] = gsi_name(index_field)
            if index_value:
                names["#f"] = index_field
                values[":v"] = {"S": index_value}
                cond += " AND #f = :v" if index_exact else " AND begins_with(#f, :v)"
            if key_prefix_filter:
                names["#k"] = "key"
                values[":kp"] = {"S": key_prefix_filter}
                kwargs["FilterExpression"] = "begins_with(#k, :kp)"
        elif exact is not None:
            names["#k"], values[":k"] = "key", {"S": exact}
            cond += " AND #k = :k"
        elif between is not None:
            names["#k"] = "key"
            values[":a"], values[":b"] = {"S": between[0]}, {"S": between[1]}
            cond += " AND #k BETWEEN :a AND :b"
        elif prefix:
            names["#k"], values[":p"] = "key", {"S": prefix}
            cond += " AND begins_with(#k, :p)"
        kwargs.update(KeyConditionExpression=cond, ExpressionAttributeNames=names,
                      ExpressionAttributeValues=values)
        if start:
            kwargs["ExclusiveStartKey"] = serialize_item(start)
        if limit:
            kwargs["Limit"] = limit
        resp = self.repo.client.query(**kwargs)
        items = [public(deserialize_item(r)) or {} for r in resp.get("Items", [])]
        last = resp.get("LastEvaluatedKey")
        return items, (deserialize_item(last) if last else None)

    def query_all(self, username: str, prefix: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        start = None
        while True:
            items, start = self.query_page(username, prefix=prefix, start=start)
            out.extend(items)
            if not start:
                return out

    # -- async (boto3 blocks: run in a worker thread) ----------------------------------------
    async def aget(self, username: str, key: str) -> dict[str, Any] | None:
        return await to_thread.run_sync(lambda: self.get(username, key))

    async def aput(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return await to_thread.run_sync(lambda: self.put(item))

    async def adelete(self, username: str, key: str) -> dict[str, Any] | None:
        return await to_thread.run_sync(lambda: self.delete(username, key))

    async def aquery_all(self, username: str, prefix: str) -> list[dict[str, Any]]:
        return await to_thread.run_sync(lambda: self.query_all(username, prefix))


# --- GET /my, exactly like legacy/search.get_my ------------------------------------------------


def search_my(table: LegacyShapedTable, account: str, params: Mapping[str, str],
              page_size: int = DEFAULT_PAGE_SIZE) -> dict[str, Any]:
    """``GET /my`` over one table (``params``: each query parameter's last value), exactly like
    the legacy search function (:mod:`chariot_migrate.model.search`); raises ``SearchError``."""
    return my_search.search_my(table, params.get, account, page_size=page_size, indexed=table.gsi_fields)


__all__ = ["DEFAULT_PAGE_SIZE", "GLOBAL_USERNAME", "GSI_FIELDS", "LegacyShapedTable", "SearchError", "gsi_name",
           "legacy_table_spec", "public", "search_my", "storable"]
