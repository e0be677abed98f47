"""Read models fed by the other services' events: the entity index behind ``GET /my/count`` and
the status statistics (``#statistic#my#status:<S>#…``) legacy keeps on every status change.

* ``asset.discovered`` / ``risk.assessed`` / ``job.completed`` upsert ``{key, status, source}``;
* a status change moves one count from the old status to the new one, in the same two rows
  legacy writes (a running ``total`` and today's snapshot), so ``GET /my?key=#statistic#`` reads
  alike on both sides;
* events are applied once per id (``kit.TableProcessedStore``; the bus delivers at least once).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from chariot_migrate.model import keys
from chariot_migrate.model.clock import day_of

from ..capabilities.tables import LegacyShapedTable, storable
from ..kit.events import Event
from ..kit.repository import serialize_item

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
    def __init__(self, entities: LegacyShapedTable, statistics: LegacyShapedTable) -> None:
        self.entities, self.statistics = entities, statistics

    def apply(self, event: Event) -> None:
        """Sync (boto3): run it in a worker thread."""
        previous = self.entities.get(event.account, event.data["key"])
        row = entity_row(event, previous)
        self.entities.put(row)
        old = (previous or {}).get("status")
        if event.type == "risk.assessed" and previous is None:
            old = event.data.get("previous_status") or None
        if event.type == "job.completed":
            return  # legacy keeps status statistics for assets and risks only
        now = event.occurred_at[:19] + "Z"
        for type_, status, delta in stat_changes(TYPE_OF[event.type], old, row.get("status")):
            self._bump(event.account, type_, status, delta, now)

    def _bump(self, account: str, type_: str, status: str, delta: int, now: str) -> None:
        name = f"my#status:{status}"
        attrs = {"type": type_, "name": name, "value": status, "created": now}
        repo = self.statistics.repo
        names = {"#n": "_count", **{f"#a{i}": k for i, k in enumerate(attrs)}}
        values = {":d": {"N": str(delta)}, **{f":a{i}": v for i, v in enumerate(serialize_item(attrs).values())}}
        sets = ", ".join(f"#a{i} = :a{i}" for i in range(len(attrs)))
        resp = repo.client.update_item(
            TableName=repo.table, Key={"username": {"S": account}, "key": {"S": keys.statistic_key(name, "total")}},
            UpdateExpression=f"ADD #n :d SET {sets}", ExpressionAttributeNames=names,
            ExpressionAttributeValues=values, ReturnValues="ALL_NEW")
        total = int(resp["Attributes"]["_count"]["N"])
        repo.client.update_item(
            TableName=repo.table, Key={"username": {"S": account}, "key": {"S": keys.statistic_key(name, "total")}},
            UpdateExpression="SET #d = :v", ExpressionAttributeNames={"#d": "data"},
            ExpressionAttributeValues={":v": {"M": {"count": {"N": str(total)}}}})
        self.statistics.put(storable({"username": account, "key": keys.statistic_key(name, day_of(now)),
                                      "type": type_, "name": name, "value": status, "created": day_of(now),
                                      "updated": now, "data": {"count": total}}))
