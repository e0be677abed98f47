"""Batched "put if absent" writes for backfill: many items per request, and still never over a newer one.

A backfill must not overwrite an item a dual write already put on the new side, so every put is
conditional on the key being absent. Two ways to batch that (``data bench`` measures both):

* ``transact``: ``TransactWriteItems`` of up to 100 conditional puts. A transaction is cancelled
  as a whole when one condition fails; the cancellation reasons say which items were present, so
  the rest is sent again without them (rarely more than one retry: only items dual-written since
  the scan can be present).
* ``threads``: one conditional ``PutItem`` per item on a small thread pool.

Both return, per put, whether it was written (True) or already present (False). A put is
``(table, hash_key, item)``, sent through a boto3 resource's client (``table.meta.client``:
plain Python values in and out); one transaction may span tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from botocore.exceptions import ClientError

WriteMode = Literal["transact", "threads"]
WRITE_MODES: tuple[WriteMode, ...] = ("transact", "threads")
TRANSACT_MAX = 100  # DynamoDB's limit of actions per transaction

Client = Any  # a boto3 resource's DynamoDB client (thread-safe, unlike the resource)
Put = tuple[str, str, dict[str, Any]]  # (table, hash key attribute, item)


def _put_args(table: str, hash_key: str, item: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    args: dict[str, Any] = {"TableName": table, "Item": item}
    if not overwrite:
        args |= {"ConditionExpression": "attribute_not_exists(#pk)", "ExpressionAttributeNames": {"#pk": hash_key}}
    return args


def put_one_absent(client: Client, table: str, hash_key: str, item: dict[str, Any], overwrite: bool = False) -> bool:
    try:
        client.put_item(**_put_args(table, hash_key, item, overwrite))
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise


def refused_positions(reasons: Sequence[dict[str, Any]]) -> list[int] | None:
    """Positions whose condition failed, from a cancelled transaction's reasons (pure). None when
    the cancellation had another cause (throttling, conflict with a concurrent transaction): the
    caller then writes that chunk item by item."""
    if not reasons:
        return None
    codes = [r.get("Code") or "None" for r in reasons]
    if any(c not in ("None", "ConditionalCheckFailed") for c in codes):
        return None
    return [i for i, c in enumerate(codes) if c == "ConditionalCheckFailed"]


def _transact_chunk(client: Client, puts: list[Put], overwrite: bool) -> list[bool]:
    written = [False] * len(puts)
    todo = list(range(len(puts)))
    while todo:
        actions = [{"Put": _put_args(*puts[i], overwrite)} for i in todo]
        try:
            client.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            refused = refused_positions(exc.response.get("CancellationReasons") or []) \
                if code == "TransactionCanceledException" else None
            if not refused:  # another cause (or duplicate keys: ValidationException): one by one
                for i in todo:
                    written[i] = put_one_absent(client, *puts[i], overwrite)
                return written
            gone = {todo[p] for p in refused}
            todo = [i for i in todo if i not in gone]
            continue
        for i in todo:
            written[i] = True
        return written
    return written


def put_absent(client: Client, puts: list[Put], *, mode: WriteMode = "transact", overwrite: bool = False,
               pool: ThreadPoolExecutor | None = None) -> list[bool]:
    """Write each put unless its key is present (or regardless, with ``overwrite``); per put: written?"""
    if mode not in WRITE_MODES:
        raise ValueError(f"write mode must be one of {', '.join(WRITE_MODES)}, not {mode!r}")
    if mode == "threads":
        if pool is None:
            return [put_one_absent(client, t, k, item, overwrite) for t, k, item in puts]
        return list(pool.map(lambda p: put_one_absent(client, p[0], p[1], p[2], overwrite), puts))
    out: list[bool] = []
    for start in range(0, len(puts), TRANSACT_MAX):
        out += _transact_chunk(client, puts[start:start + TRANSACT_MAX], overwrite)
    return out
