"""Legacy-identical rows in a service's own ``(username, key)`` tables: :class:`PlainStore`
and ``GET /my`` over them (the rules are :mod:`chariot_migrate.model.search`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request

from chariot_migrate.model import search as my_search
from chariot_migrate.model.search import MyQuery, SearchError, filter_my_items
from chariot_migrate.model.table import GSI_FIELDS, storable

from .repository import deserialize_item, serialize_item
from .request import bad_request, param

# ---- GET /my over a service's own (username, key) table, with the legacy's semantics ---------

def plain(obj: Any) -> Any:
    """DynamoDB values → JSON (Decimal → int/float); hidden ``_fields`` dropped, like the legacy."""
    if isinstance(obj, Decimal):
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, list | tuple | set | frozenset):
        return [plain(v) for v in obj]
    return obj


def bucketize(items: Sequence[Mapping[str, Any]], last: Mapping[str, Any] | None) -> dict[str, Any]:
    """:func:`chariot_migrate.model.search.bucketize`, as JSON (Decimals to numbers)."""
    return plain(my_search.bucketize(items, last))


def parse_my_query(request: Request, username: str) -> MyQuery:
    """``GET /my?key=#prefix…`` (with ``exact``, ``to``, ``desc``, ``label``, ``global``, ``offset``),
    with the legacy's 400s. ``username`` is the caller's account; ``global=true`` switches to the
    shared ``global`` partition like the legacy."""
    try:
        return my_search.parse_my_query(lambda name: param(request, name), username)
    except SearchError as e:
        raise bad_request(str(e)) from None


def run_my_query(client: Any, table: str, q: MyQuery, *, page_size: int) -> dict[str, Any]:
    """One page of ``q`` from DynamoDB. Blocking (boto3): call it through ``anyio.to_thread``."""
    names = {"#u": "username", "#k": "key"}
    values: dict[str, Any] = {":u": {"S": q.username}}
    cond = "#u = :u"
    if q.field_filter is None and q.exact:
        cond += " AND #k = :k"
        values[":k"] = {"S": q.term}
    elif q.field_filter is None and q.to:
        cond += " AND #k BETWEEN :k AND :to"
        values.update({":k": {"S": q.term}, ":to": {"S": q.to}})
    else:
        cond += " AND begins_with(#k, :k)"
        values[":k"] = {"S": q.key_prefix}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": cond,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": not q.desc,
        "Limit": page_size,
    }
    if q.start:
        kwargs["ExclusiveStartKey"] = {"username": {"S": q.username}, "key": {"S": q.start["key"]}}
    resp = client.query(**kwargs)
    items = filter_my_items([deserialize_item(r) for r in resp.get("Items", [])], q)
    raw_last = resp.get("LastEvaluatedKey")
    last = {k: v.get("S") for k, v in raw_last.items()} if raw_last else None
    return bucketize(items, last)


def query_my(client: Any, table: str, request: Request, username: str, *, page_size: int) -> dict[str, Any]:
    """``GET /my`` over a ``(username, key)`` table: :func:`parse_my_query` + :func:`run_my_query`.

    Blocking (boto3): call it through ``anyio.to_thread.run_sync``.
    """
    return run_my_query(client, table, parse_my_query(request, username), page_size=page_size)


class PlainStore:
    """Blocking get/put/delete/prefix-query over ``(username, key)`` tables whose items must stay
    byte-for-byte like the legacy rows (unlike ``kit.Repository`` it adds no ``version``).

    ``table_names`` maps each declared table name to its real (possibly prefixed) name; call the
    methods through ``anyio.to_thread``. The legacy drops empty GSI attributes (status, source,
    dns) on write; so does this. ``after_write(table, username, key)``, when set, is called after
    every successful ``put``/``delete`` (the hook read caches invalidate from).
    """

    GSI_FIELDS = GSI_FIELDS

    def __init__(self, client: Any, table_names: Mapping[str, str]) -> None:
        self.client = client
        self.names = dict(table_names)
        self.after_write: Callable[[str, str, str], None] | None = None

    @classmethod
    def from_app(cls, app: FastAPI) -> Any:
        repos = app.state.repos
        client = next(iter(repos.values())).sync.client
        return cls(client, {name: repo.sync.table for name, repo in repos.items()})

    def table(self, name: str) -> str:
        return self.names[name]

    def _key(self, username: str, key: str) -> dict[str, Any]:
        return {"username": {"S": username}, "key": {"S": key}}

    def get(self, table: str, username: str, key: str) -> dict[str, Any] | None:
        resp = self.client.get_item(TableName=self.table(table), Key=self._key(username, key), ConsistentRead=True)
        raw = resp.get("Item")
        return deserialize_item(raw) if raw else None

    def put(self, table: str, item: Mapping[str, Any]) -> dict[str, Any]:
        stored = storable(item, self.GSI_FIELDS)
        try:
            self.client.put_item(TableName=self.table(table), Item=serialize_item(stored))
        finally:  # a failed call may still have written (a timeout after the write): invalidate anyway
            self._written(table, str(item.get("username", "")), str(item.get("key", "")))
        return dict(item)

    def delete(self, table: str, username: str, key: str) -> dict[str, Any] | None:
        try:
            resp = self.client.delete_item(
                TableName=self.table(table), Key=self._key(username, key), ReturnValues="ALL_OLD"
            )
        finally:
            self._written(table, username, key)
        raw = resp.get("Attributes")
        return deserialize_item(raw) if raw else None

    def _written(self, table: str, username: str, key: str) -> None:
        if self.after_write is not None:
            self.after_write(table, username, key)

    def query_all(self, table: str, username: str, prefix: str, *, limit: int | None = None,
                  descending: bool = False) -> list[dict[str, Any]]:
        """Rows of ``username`` whose key starts with ``prefix`` (``""``: the whole partition)."""
        out: list[dict[str, Any]] = []
        start = None
        cond, names, values = "#u = :u", {"#u": "username"}, {":u": {"S": username}}
        if prefix:  # DynamoDB rejects an empty begins_with operand
            cond += " AND begins_with(#k, :p)"
            names["#k"], values[":p"] = "key", {"S": prefix}
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self.table(table),
                "KeyConditionExpression": cond,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
                "ScanIndexForward": not descending,
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            resp = self.client.query(**kwargs)
            out.extend(deserialize_item(r) for r in resp.get("Items", []))
            start = resp.get("LastEvaluatedKey")
            if not start or (limit is not None and len(out) >= limit):
                return out[:limit] if limit is not None else out

    def query_my(self, table: str, request: Request, username: str, *, page_size: int) -> dict[str, Any]:
        return query_my(self.client, self.table(table), request, username, page_size=page_size)
