"""Read models fed by the other services' events: the entity index behind ``GET /my/count`` and
the status statistics (``#statistic#my#status:<S>#…``) legacy keeps on every status change.

* ``asset.discovered`` / ``risk.assessed`` / ``job.completed`` upsert ``{key, status, source}``;
* a status change moves one count from the old status to the new one, in the same two rows
  legacy writes (a running ``total`` and today's snapshot), so ``GET /my?key=#statistic#`` reads
  alike on both sides;
* events are applied once per id: the row, its counters and the "processed" mark in one DynamoDB
  transaction (the bus delivers at least once; a consumer killed mid-event leaves nothing half done).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from botocore.exceptions import ClientError

from chariot_migrate.model import keys
from chariot_migrate.model.clock import day_of

from ..kit.events import Event
from ..kit.repository import serialize_item
from ..kit.tables import LegacyShapedTable, storable

CONSUMES = ["asset.discovered", "risk.assessed", "job.completed"]
TYPE_OF = {"asset.discovered": "asset", "risk.assessed": "risk", "job.completed": "job"}


def entity_row(event: Event, previous: dict[str, Any] | None) -> dict[str, Any]:
    """The read-model row after ``event`` (pure)."""
    d = event.data
    row = dict(previous or {}) | {"username": event.account, "key": d["key"], "updated": event.occurred_at}
    if d.get("status"):
        row["status"] = d["status"]
    if event.type == "job.completed":
        row["source"] = f"{d['capability']}#{d.get('finished') or event.occurred_at[:19] + 'Z'}"
    elif d.get("source") is not None:
        row["source"] = d["source"]
    for f in ("dns", "name", "class"):
        if d.get(f) is not None:
            row[f] = d[f]
    return row


def stat_changes(type_: str, old: str | None, new: str | None) -> list[tuple[str, str, int]]:
    """(type, status, delta) legacy's ``record_status`` applies for a status change (pure)."""
    if old == new:
        return []
    return [(type_, s, d) for s, d in ((old, -1), (new, 1)) if s]


def field_match(actual: Any, value: str, exact: bool) -> bool:
    if actual is None:
        return False
    return str(actual) == value if exact else str(actual).startswith(value)


def count(items: list[dict[str, Any]]) -> dict[str, Any]:
    """``GET /my/count`` body over items (same rules as legacy/search.count_my)."""
    status = Counter(str(i.get("status", "")).split("#")[0] for i in items)
    source = Counter(str(i.get("source", "")) for i in items if keys.kind_of(i["key"]) != "attribute")
    attributes = Counter(str(i.get("name", "")) for i in items if keys.kind_of(i["key"]) == "attribute")
    return {"count": len(items), "status": dict(status), "source": dict(source), "attributes": dict(attributes)}


class ReadModel:
    """Events folded into the read model and the status statistics, each event exactly once.

    The entity row, the statistic counters and the event's "processed" mark are written in one
    DynamoDB transaction (the mark only if absent): a consumer killed mid-event leaves all or
    nothing, so the event redelivered to another consumer is applied in full or skipped — never
    half (a row without its count, or a count twice).
    """

    def __init__(self, entities: LegacyShapedTable, statistics: LegacyShapedTable, *,
                 processed_partition: str = "#processed#reporting", processed_ttl_s: float = 7 * 86400) -> None:
        self.entities, self.statistics = entities, statistics
        self.processed_partition, self.processed_ttl_s = processed_partition, processed_ttl_s

    def apply(self, event: Event) -> bool:
        """Sync (boto3): run it in a worker thread. False when the event was applied before."""
        previous = self.entities.get(event.account, event.data["key"])
        row = entity_row(event, previous)
        old = (previous or {}).get("status")
        if event.type == "risk.assessed" and previous is None:
            old = event.data.get("previous_status") or None
        # legacy keeps status statistics for assets and risks only
        changes = [] if event.type == "job.completed" else stat_changes(TYPE_OF[event.type], old, row.get("status"))
        now = event.occurred_at[:19] + "Z"
        ent, stats = self.entities.repo, self.statistics.repo
        stored = dict(storable(row, self.entities.gsi_fields))
        stored.setdefault(ent.version_attribute, 1)
        mark = {ent.pk: self.processed_partition, ent.sk: f"#event#{event.id}",
                "ttl": int(time.time() + self.processed_ttl_s)}
        items: list[dict[str, Any]] = [
            {"Put": {"TableName": ent.table, "Item": serialize_item(mark),
                     "ConditionExpression": "attribute_not_exists(#pk)", "ExpressionAttributeNames": {"#pk": ent.pk}}},
            {"Put": {"TableName": ent.table, "Item": serialize_item(stored)}},
        ]
        items += [{"Update": self._counter_update(stats, event.account, type_, status, delta, now)}
                  for type_, status, delta in changes]
        try:
            ent.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if exc.response["Error"]["Code"] == "TransactionCanceledException" and reasons and \
                    reasons[0].get("Code") == "ConditionalCheckFailed":
                return False  # this event is in the read model already
            raise
        for type_, status, _ in changes:  # derived from the counter: repeatable, so outside the transaction
            self._publish_total(event.account, type_, status, now)
        return True

    @staticmethod
    def _counter_update(repo, account: str, type_: str, status: str, delta: int, now: str) -> dict[str, Any]:
        name = f"my#status:{status}"
        attrs = {"type": type_, "name": name, "value": status, "created": now}
        names = {"#n": "_count", **{f"#a{i}": k for i, k in enumerate(attrs)}}
        values = {":d": {"N": str(delta)}, **{f":a{i}": v for i, v in enumerate(serialize_item(attrs).values())}}
        sets = ", ".join(f"#a{i} = :a{i}" for i in range(len(attrs)))
        return {"TableName": repo.table, "Key": {"username": {"S": account}, "key": {"S": keys.statistic_key(name, "total")}},
                "UpdateExpression": f"ADD #n :d SET {sets}", "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values}

    def _publish_total(self, account: str, type_: str, status: str, now: str) -> None:
        """The running total legacy shows (``data.count``) and today's snapshot, from the counter."""
        name = f"my#status:{status}"
        repo = self.statistics.repo
        key = {"username": {"S": account}, "key": {"S": keys.statistic_key(name, "total")}}
        got = repo.client.get_item(TableName=repo.table, Key=key, ConsistentRead=True).get("Item") or {}
        total = int(got.get("_count", {}).get("N", "0"))
        try:  # only if no later event moved the counter meanwhile (that one publishes its own total)
            repo.client.update_item(
                TableName=repo.table, Key=key, UpdateExpression="SET #d = :v", ConditionExpression="#n = :t",
                ExpressionAttributeNames={"#d": "data", "#n": "_count"},
                ExpressionAttributeValues={":v": {"M": {"count": {"N": str(total)}}}, ":t": {"N": str(total)}})
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return
        self.statistics.put(storable({"username": account, "key": keys.statistic_key(name, day_of(now)),
                                      "type": type_, "name": name, "value": status, "created": day_of(now),
                                      "updated": now, "data": {"count": total}}))
