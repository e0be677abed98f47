"""One service table of Chariot entities (``username`` partition, ``key`` sort key) with the
legacy storage rules, plus the ``#statistic#`` status counters legacy keeps on every change.

Synchronous (boto3): the routes run these in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from chariot_migrate.model.table import storable
from chariot_migrate.services.kit.repository import (
    Repository,
    TableSpec,
    deserialize_item,
    serialize_item,
    to_dynamo,
)

from .contract import public

# Hidden: the legacy item shape has no version attribute, and ``_`` attributes never reach clients.
VERSION_ATTRIBUTE = "_version"
_serializer = TypeSerializer()


class EntityTable:
    """``after_write(username, key)``, when set, is called after every successful write of a row
    (put, delete, put_raw, add_counter): the one hook read caches invalidate from."""

    def __init__(self, client: Any, spec: TableSpec) -> None:
        self.client = client
        self.spec = spec
        self.name = spec.name
        self.repo = Repository(client, spec, version_attribute=VERSION_ATTRIBUTE)
        self.after_write: Callable[[str, str], None] | None = None

    def _written(self, username: str, key: str) -> None:
        if self.after_write is not None:
            self.after_write(username, key)

    def get(self, username: str, key: str) -> dict[str, Any] | None:
        item = self.repo.get(username, key)
        return public(item) if item else None

    def put(self, item: dict[str, Any]) -> dict[str, Any]:
        """Unconditional write of the legacy item shape; ``None`` attributes are kept as NULL like
        legacy's table (the kit repository would drop them, and reads would then differ)."""
        stored = storable(item) | {VERSION_ATTRIBUTE: 1}
        try:
            self.client.put_item(TableName=self.name, Item={k: _serializer.serialize(to_dynamo(v))
                                                             for k, v in stored.items()})
        finally:  # a failed call may still have written (a timeout after the write): invalidate anyway
            self._written(str(item.get("username", "")), str(item.get("key", "")))
        return item

    def delete(self, username: str, key: str) -> dict[str, Any] | None:
        try:
            old = self.repo.delete(username, key)
        finally:
            self._written(username, key)
        return public(old) if old else None

    def query_all(self, username: str, prefix: str) -> list[dict[str, Any]]:
        return [public(i) for i in self.repo.iter_prefix(username, prefix, page_size=1000)]

    def pages(self, username: str, prefix: str, page_size: int) -> Iterable[list[dict[str, Any]]]:
        """The public items under ``prefix``, one store page at a time (lazily: a consumer that
        stops iterating stops reading the table)."""
        page: list[dict[str, Any]] = []
        for item in self.repo.iter_prefix(username, prefix, page_size=page_size):
            page.append(public(item))
            if len(page) == page_size:
                yield page
                page = []
        if page:
            yield page

    def raw_all(self, username: str, prefix: str = "") -> list[dict[str, Any]]:
        return list(self.repo.iter_prefix(username, prefix, page_size=1000))

    def put_raw(self, items: Iterable[dict[str, Any]]) -> int:
        items = list(items)
        try:
            return self.repo.batch_put(items)
        finally:
            for item in items:
                self._written(str(item.get("username", "")), str(item.get("key", "")))

    def add_counter(self, username: str, key: str, delta: int, attrs: dict[str, Any]) -> int:
        """Atomically add ``delta`` to the hidden ``_count`` and mirror it into ``data.count``."""
        names = {"#n": "_count"}
        values: dict[str, Any] = {":d": {"N": str(delta)}}
        sets = []
        for i, (k, v) in enumerate(attrs.items()):
            names[f"#a{i}"] = k
            values[f":a{i}"] = serialize_item({"v": to_dynamo(v)})["v"]
            sets.append(f"#a{i} = :a{i}")
        expr = "ADD #n :d" + (" SET " + ", ".join(sets) if sets else "")
        try:
            resp = self.client.update_item(
                TableName=self.name, Key={"username": {"S": username}, "key": {"S": key}},
                UpdateExpression=expr, ExpressionAttributeNames=names, ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
            total = int(deserialize_item(resp["Attributes"])["_count"])
            self.client.update_item(
                TableName=self.name, Key={"username": {"S": username}, "key": {"S": key}},
                UpdateExpression="SET #d = :v", ExpressionAttributeNames={"#d": "data"},
                ExpressionAttributeValues={":v": {"M": {"count": {"N": str(total)}}}},
            )
        finally:
            self._written(username, key)
        return total

