"""DynamoDB repository for one service table (boto3; moto server locally).

Partitioning follows Chariot's table: partition key = the account (``username``), sort key =
the entity key (``#asset#example.com#1.2.3.4``), so one account's data is one partition and
"list assets" is a prefix query. Optimistic concurrency uses a numeric ``version`` attribute
and conditional writes; a lost race raises :class:`ConflictError`.

boto3 blocks: call these methods from sync FastAPI routes (run in the threadpool) or wrap them
with :class:`AsyncRepository`.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from anyio import to_thread
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from ...observability.aws import instrument_client

Item = dict[str, Any]
T = TypeVar("T")


class RepositoryError(Exception):
    pass


class ConflictError(RepositoryError):
    """A conditional write failed: the item changed (or exists / is gone) since it was read."""


class InvalidCursorError(RepositoryError, ValueError):
    """A paging cursor could not be decoded (clients should answer 400)."""


@dataclass(frozen=True, slots=True)
class IndexSpec:
    name: str
    partition_key: str
    sort_key: str | None = None


@dataclass(frozen=True, slots=True)
class TableSpec:
    name: str
    partition_key: str = "username"
    sort_key: str = "key"
    indexes: Sequence[IndexSpec] = field(default_factory=tuple)
    stream: bool = False  # NEW_AND_OLD_IMAGES stream (dual-write verification, read models)


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Item]
    cursor: str | None  # opaque; pass back to get the next page; None = last page


def ensure_tables(client: Any, specs: Iterable[TableSpec]) -> list[str]:
    """Create missing tables (PAY_PER_REQUEST) and wait until they exist. Returns the created names."""
    existing: set[str] = set()
    for page in client.get_paginator("list_tables").paginate():
        existing.update(page.get("TableNames", []))
    created = []
    for spec in specs:
        if spec.name in existing:
            continue
        attrs = {spec.partition_key: "S", spec.sort_key: "S"}
        kwargs: dict[str, Any] = {
            "TableName": spec.name,
            "KeySchema": [
                {"AttributeName": spec.partition_key, "KeyType": "HASH"},
                {"AttributeName": spec.sort_key, "KeyType": "RANGE"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
        }
        if spec.indexes:
            gsis = []
            for idx in spec.indexes:
                attrs[idx.partition_key] = "S"
                schema = [{"AttributeName": idx.partition_key, "KeyType": "HASH"}]
                if idx.sort_key:
                    attrs[idx.sort_key] = "S"
                    schema.append({"AttributeName": idx.sort_key, "KeyType": "RANGE"})
                gsis.append(
                    {"IndexName": idx.name, "KeySchema": schema, "Projection": {"ProjectionType": "ALL"}}
                )
            kwargs["GlobalSecondaryIndexes"] = gsis
        if spec.stream:
            kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        kwargs["AttributeDefinitions"] = [{"AttributeName": n, "AttributeType": t} for n, t in attrs.items()]
        try:
            client.create_table(**kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":  # created concurrently
                raise
        client.get_waiter("table_exists").wait(
            TableName=spec.name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
        )
        created.append(spec.name)
    return created


_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_dynamo(value: Any) -> Any:
    """Python → DynamoDB-safe Python (floats become Decimals; DynamoDB has no float type)."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {k: to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    return value


def from_dynamo(value: Any) -> Any:
    """DynamoDB Python → plain JSON-friendly Python (Decimals become int/float, sets lists)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        out = [from_dynamo(v) for v in value]
        return sorted(out) if isinstance(value, set | frozenset) else out
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return value


def serialize_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(to_dynamo(v)) for k, v in item.items() if v is not None}


def deserialize_item(raw: Mapping[str, Any]) -> Item:
    return {k: from_dynamo(_deserializer.deserialize(v)) for k, v in raw.items()}


def encode_cursor(last_evaluated_key: Mapping[str, Any] | None) -> str | None:
    if not last_evaluated_key:
        return None
    plain = {k: _deserializer.deserialize(v) for k, v in last_evaluated_key.items()}
    data = json.dumps(from_dynamo(plain), sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        plain = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(plain, dict) or not plain:
            raise ValueError
        return serialize_item(plain)
    except (ValueError, binascii.Error, TypeError):
        raise InvalidCursorError("offset is not a valid paging cursor") from None


class Repository:
    """get/put/delete/query-by-prefix over one table, partitioned by account."""

    def __init__(
        self,
        client: Any,
        spec: TableSpec,
        *,
        version_attribute: str = "version",
        max_batch_retries: int = 8,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = instrument_client(client)  # DynamoDB spans when tracing is on
        self.spec = spec
        self.table = spec.name
        self.pk = spec.partition_key
        self.sk = spec.sort_key
        self.version_attribute = version_attribute
        self.max_batch_retries = max_batch_retries
        self._sleep = sleep

    def _key(self, account: str, key: str) -> dict[str, Any]:
        return {self.pk: {"S": account}, self.sk: {"S": key}}

    def _check_item(self, item: Mapping[str, Any]) -> None:
        for attr in (self.pk, self.sk):
            if not isinstance(item.get(attr), str) or not item[attr]:
                raise ValueError(f"item needs a non-empty string {attr!r}")

    # ---- single items -------------------------------------------------------------------
    def get(self, account: str, key: str, *, consistent: bool = True) -> Item | None:
        resp = self.client.get_item(
            TableName=self.table, Key=self._key(account, key), ConsistentRead=consistent
        )
        raw = resp.get("Item")
        return deserialize_item(raw) if raw else None

    def put(self, item: Mapping[str, Any], *, expected_version: int | None = None) -> Item:
        """Write ``item``.

        ``expected_version=None``: unconditional overwrite (version kept as given, default 1).
        ``expected_version=0``: create only (ConflictError when the key exists).
        ``expected_version=n``: replace only if the stored version is n; stores version n+1.
        """
        self._check_item(item)
        stored = dict(item)
        kwargs: dict[str, Any] = {}
        va = self.version_attribute
        if expected_version is None:
            stored.setdefault(va, 1)
        elif expected_version == 0:
            stored[va] = 1
            kwargs["ConditionExpression"] = "attribute_not_exists(#pk)"
            kwargs["ExpressionAttributeNames"] = {"#pk": self.pk}
        else:
            stored[va] = expected_version + 1
            kwargs["ConditionExpression"] = "#v = :expected"
            kwargs["ExpressionAttributeNames"] = {"#v": va}
            kwargs["ExpressionAttributeValues"] = {":expected": {"N": str(expected_version)}}
        try:
            self.client.put_item(TableName=self.table, Item=serialize_item(stored), **kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                what = (
                    "already exists"
                    if expected_version == 0
                    else f"is no longer at version {expected_version}"
                )
                raise ConflictError(f"{item[self.sk]} {what}") from None
            raise
        return stored

    def create(self, item: Mapping[str, Any]) -> Item:
        return self.put(item, expected_version=0)

    def update(
        self, account: str, key: str, changes: Mapping[str, Any], *, expected_version: int | None = None
    ) -> Item:
        """Set ``changes`` on an existing item and bump its version atomically; returns the new item."""
        if not changes:
            raise ValueError("update needs at least one attribute to change")
        if self.pk in changes or self.sk in changes or self.version_attribute in changes:
            raise ValueError("update cannot change the key or the version attribute")
        names = {"#pk": self.pk, "#v": self.version_attribute}
        values: dict[str, Any] = {":one": {"N": "1"}}
        sets, removes = [], []
        for i, (attr, value) in enumerate(changes.items()):
            names[f"#a{i}"] = attr
            if value is None:
                removes.append(f"#a{i}")
            else:
                values[f":a{i}"] = _serializer.serialize(to_dynamo(value))
                sets.append(f"#a{i} = :a{i}")
        expr = "ADD #v :one"
        if sets:
            expr = "SET " + ", ".join(sets) + " " + expr
        if removes:
            expr += " REMOVE " + ", ".join(removes)
        condition = "attribute_exists(#pk)"
        if expected_version is not None:
            condition += " AND #v = :expected"
            values[":expected"] = {"N": str(expected_version)}
        try:
            resp = self.client.update_item(
                TableName=self.table,
                Key=self._key(account, key),
                UpdateExpression=expr,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConflictError(f"{key} does not exist or changed since it was read") from None
            raise
        return deserialize_item(resp["Attributes"])

    def delete(self, account: str, key: str, *, expected_version: int | None = None) -> Item | None:
        """Delete and return the old item (None when there was none)."""
        kwargs: dict[str, Any] = {}
        if expected_version is not None:
            kwargs["ConditionExpression"] = "#v = :expected"
            kwargs["ExpressionAttributeNames"] = {"#v": self.version_attribute}
            kwargs["ExpressionAttributeValues"] = {":expected": {"N": str(expected_version)}}
        try:
            resp = self.client.delete_item(
                TableName=self.table, Key=self._key(account, key), ReturnValues="ALL_OLD", **kwargs
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConflictError(f"{key} is no longer at version {expected_version}") from None
            raise
        raw = resp.get("Attributes")
        return deserialize_item(raw) if raw else None

    # ---- queries ------------------------------------------------------------------------
    def query(
        self,
        account: str,
        prefix: str = "",
        *,
        limit: int | None = None,
        cursor: str | None = None,
        ascending: bool = True,
        consistent: bool = False,
    ) -> Page:
        """One page of the account's items whose key starts with ``prefix``."""
        names = {"#pk": self.pk}
        values: dict[str, Any] = {":pk": {"S": account}}
        expr = "#pk = :pk"
        if prefix:
            names["#sk"] = self.sk
            values[":prefix"] = {"S": prefix}
            expr += " AND begins_with(#sk, :prefix)"
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": expr,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": ascending,
            "ConsistentRead": consistent,
        }
        if limit:
            kwargs["Limit"] = limit
        start = decode_cursor(cursor)
        if start:
            if set(start) != {self.pk, self.sk} or start[self.pk] != {"S": account}:
                raise InvalidCursorError("offset does not belong to this query")
            kwargs["ExclusiveStartKey"] = start
        resp = self.client.query(**kwargs)
        items = [deserialize_item(r) for r in resp.get("Items", [])]
        return Page(items, encode_cursor(resp.get("LastEvaluatedKey")))

    def query_index(
        self, index: str, partition_value: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page:
        """One page from a GSI (e.g. Chariot's status/source/dns indexes)."""
        idx = next((i for i in self.spec.indexes if i.name == index), None)
        if idx is None:
            raise ValueError(f"table {self.table} has no index {index!r}")
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": "#p = :p",
            "ExpressionAttributeNames": {"#p": idx.partition_key},
            "ExpressionAttributeValues": {":p": {"S": partition_value}},
        }
        if limit:
            kwargs["Limit"] = limit
        start = decode_cursor(cursor)
        if start:
            kwargs["ExclusiveStartKey"] = start
        resp = self.client.query(**kwargs)
        return Page(
            [deserialize_item(r) for r in resp.get("Items", [])], encode_cursor(resp.get("LastEvaluatedKey"))
        )

    def iter_prefix(self, account: str, prefix: str = "", *, page_size: int = 100) -> Iterator[Item]:
        cursor: str | None = None
        while True:
            page = self.query(account, prefix, limit=page_size, cursor=cursor)
            yield from page.items
            if page.cursor is None:
                return
            cursor = page.cursor

    # ---- batches ------------------------------------------------------------------------
    def batch_put(self, items: Iterable[Mapping[str, Any]]) -> int:
        requests = []
        for item in items:
            self._check_item(item)
            stored = dict(item)
            stored.setdefault(self.version_attribute, 1)
            requests.append({"PutRequest": {"Item": serialize_item(stored)}})
        return self._batch_write(requests)

    def batch_delete(self, keys: Iterable[tuple[str, str]]) -> int:
        return self._batch_write([{"DeleteRequest": {"Key": self._key(a, k)}} for a, k in keys])

    def _batch_write(self, requests: list[dict[str, Any]]) -> int:
        """BatchWriteItem in chunks of 25, retrying UnprocessedItems with backoff + jitter."""
        for start in range(0, len(requests), 25):
            pending = {self.table: requests[start : start + 25]}
            for attempt in range(self.max_batch_retries + 1):
                resp = self.client.batch_write_item(RequestItems=pending)
                pending = resp.get("UnprocessedItems") or {}
                if not pending:
                    break
                if attempt == self.max_batch_retries:
                    left = sum(len(v) for v in pending.values())
                    raise RepositoryError(f"batch write left {left} unprocessed items after retries")
                self._sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))
        return len(requests)


class AsyncRepository:
    """The same API for async routes: each call runs in a worker thread."""

    def __init__(self, repository: Repository) -> None:
        self.sync = repository

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.sync, name)
        if not callable(method) or name == "iter_prefix":
            return method

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await to_thread.run_sync(lambda: method(*args, **kwargs))

        return call
