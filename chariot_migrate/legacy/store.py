"""The single legacy table: ``username`` partition key, ``key`` sort key, GSIs on status,
source and dns (each partitioned by ``username``)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Attr, Key

from chariot_migrate.model.keys import check_item_keys
from chariot_migrate.model.table import gsi_name, storable

from . import aws


def _dynamo(obj: Any) -> Any:
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int, Decimal)):
        return obj
    if isinstance(obj, float):
        return Decimal(repr(obj))
    if isinstance(obj, dict):
        return {str(k): _dynamo(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_dynamo(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return [_dynamo(v) for v in sorted(obj, key=str)]
    return json.loads(json.dumps(obj, default=str))


def to_item(obj: Any) -> Any:
    """JSON-ish data → DynamoDB item (floats become Decimal, empty GSI keys dropped)."""
    item = _dynamo(obj)
    return storable(item) if isinstance(item, dict) else item


def get(username: str, key: str) -> dict[str, Any] | None:
    check_item_keys(username, key)
    return aws.table().get_item(Key={"username": username, "key": key}).get("Item")


def put(item: dict[str, Any]) -> dict[str, Any]:
    check_item_keys(str(item.get("username", "")), str(item.get("key", "")))
    aws.table().put_item(Item=to_item(item))
    return item


def delete(username: str, key: str) -> None:
    check_item_keys(username, key)
    aws.table().delete_item(Key={"username": username, "key": key})


def put_many(items: list[dict[str, Any]]) -> None:
    for it in items:
        check_item_keys(str(it.get("username", "")), str(it.get("key", "")))
    with aws.table().batch_writer(overwrite_by_pkeys=["username", "key"]) as batch:
        for it in items:
            batch.put_item(Item=to_item(it))


def query_page(username: str, *, prefix: str | None = None, exact: str | None = None,
               between: tuple[str, str] | None = None, index_field: str | None = None,
               index_value: str | None = None, index_exact: bool = False, start: dict | None = None,
               limit: int | None = None, descending: bool = False,
               key_prefix_filter: str | None = None) -> tuple[list[dict[str, Any]], dict | None]:
    """One DynamoDB query page; returns (items, LastEvaluatedKey)."""
    kwargs: dict[str, Any] = {"ScanIndexForward": not descending}
    cond = Key("username").eq(username)
    if index_field:
        kwargs["IndexName"] = gsi_name(index_field)
        if index_value:
            cond = cond & (Key(index_field).eq(index_value) if index_exact
                           else Key(index_field).begins_with(index_value))
        if key_prefix_filter:
            kwargs["FilterExpression"] = Attr("key").begins_with(key_prefix_filter)
    elif exact is not None:
        cond = cond & Key("key").eq(exact)
    elif between is not None:
        cond = cond & Key("key").between(*between)
    elif prefix:
        cond = cond & Key("key").begins_with(prefix)
    kwargs["KeyConditionExpression"] = cond
    if start:
        kwargs["ExclusiveStartKey"] = start
    if limit:
        kwargs["Limit"] = limit
    resp = aws.table().query(**kwargs)
    return resp.get("Items", []), resp.get("LastEvaluatedKey")


def query_all(username: str, prefix: str, *, filter_field: str | None = None,
              filter_value: str | None = None) -> list[dict[str, Any]]:
    """Every item of a partition under a key prefix (follows pagination)."""
    out: list[dict[str, Any]] = []
    start = None
    while True:
        kwargs: dict[str, Any] = {"KeyConditionExpression": Key("username").eq(username) & Key("key").begins_with(prefix)}
        if filter_field:
            kwargs["FilterExpression"] = Attr(filter_field).eq(filter_value)
        if start:
            kwargs["ExclusiveStartKey"] = start
        resp = aws.table().query(**kwargs)
        out.extend(resp.get("Items", []))
        start = resp.get("LastEvaluatedKey")
        if not start:
            return out


def add_counter(username: str, key: str, delta: int, attrs: dict[str, Any]) -> int:
    """Atomically add ``delta`` to a row's hidden ``_count`` (created on first use) and mirror
    the total into ``data.count``; returns the new total."""
    check_item_keys(username, key)
    names = {"#n": "_count"}
    values: dict[str, Any] = {":d": delta}
    sets = []
    for i, (k, v) in enumerate(attrs.items()):
        names[f"#a{i}"] = k
        values[f":a{i}"] = to_item(v)
        sets.append(f"#a{i} = :a{i}")
    expr = "ADD #n :d" + (" SET " + ", ".join(sets) if sets else "")
    resp = aws.table().update_item(Key={"username": username, "key": key}, UpdateExpression=expr,
                                   ExpressionAttributeNames=names, ExpressionAttributeValues=values,
                                   ReturnValues="ALL_NEW")
    total = int(resp["Attributes"]["_count"])
    aws.table().update_item(Key={"username": username, "key": key}, UpdateExpression="SET #d = :v",
                            ExpressionAttributeNames={"#d": "data"}, ExpressionAttributeValues={":v": {"count": total}})
    return total
