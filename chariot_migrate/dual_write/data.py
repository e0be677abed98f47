"""Backfill, verify and repair a service's data between the legacy table and its own tables.

All three take boto3 ``Table`` resources (``boto3.resource("dynamodb").Table(name)``) and a
:class:`~chariot_migrate.dual_write.migration.ServiceMigration`; they are synchronous (boto3
is) — run them in a thread from async code.

* **backfill** scans the legacy table for the service's sort-key prefixes (optionally as a
  parallel scan of N segments) and writes mapped items to the new tables. Resumable: after
  every page the segment's ``LastEvaluatedKey`` is checkpointed, so a run that was killed
  continues where it stopped. Idempotent and safe while dual writes run: by default a put is
  conditional on the item being absent, so a newer dual-written item is never overwritten
  by an older legacy copy (``overwrite=True`` forces it; drift is verify/repair's job).
* **verify** compares both stores key by key after normalisation (ignored fields, numbers,
  sets) and reports missing-on-either-side and differing items, with redacted examples.
  It holds one side's mapped items in memory: fine up to a few million items per service.
* **repair** re-reads each reported key from the source of truth *at repair time* and puts
  (or deletes, if the source no longer has it) the mapped item on the other side.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError
from pydantic import BaseModel, Field, computed_field

from chariot_migrate.dual_write.compare import FieldDiff, diff_items, normalise
from chariot_migrate.dual_write.migration import (
    CheckpointStore,
    Item,
    RateLimiter,
    ServiceMigration,
    table_spec,
    to_dynamo,
)

Table = Any  # boto3.resources.factory.dynamodb.Table


# --- shared scanning ---------------------------------------------------------------------------


def _legacy_key_names(legacy: Table) -> list[str]:
    schema = sorted(legacy.key_schema, key=lambda k: 0 if k["KeyType"] == "HASH" else 1)
    return [k["AttributeName"] for k in schema]


def _legacy_sort_key(migration: ServiceMigration, legacy: Table) -> str:
    explicit = getattr(migration, "legacy_sort_key", None)
    if explicit:
        return explicit
    names = _legacy_key_names(legacy)
    if len(names) < 2:
        raise ValueError("the legacy table has no sort key; set legacy_sort_key on the migration")
    return names[1]


def _prefix_filter(migration: ServiceMigration, sort_key: str) -> Any:
    if not migration.legacy_prefixes:
        raise ValueError(f"{migration.service}: legacy_prefixes is empty; nothing would be selected")
    cond = None
    for p in migration.legacy_prefixes:
        c = Attr(sort_key).begins_with(p)
        cond = c if cond is None else cond | c
    return cond


def _scan_pages(table: Table, start_key: Item | None = None, **kwargs: Any) -> Iterator[tuple[list[Item], Item | None]]:
    """Yield (items, last_evaluated_key) per page; the last page has key None."""
    key = start_key
    while True:
        args = dict(kwargs)
        if key is not None:
            args["ExclusiveStartKey"] = key
        page = table.scan(**args)
        key = page.get("LastEvaluatedKey")
        yield page.get("Items", []), key
        if key is None:
            return


# --- backfill ---------------------------------------------------------------------------------


@dataclass(slots=True)
class BackfillProgress:
    scanned: int = 0
    written: int = 0
    skipped_existing: int = 0  # already present on the new side (conditional put refused)
    unmapped: int = 0  # matched a prefix but to_new returned None
    segments_done: int = 0
    total_segments: int = 1
    estimated_total: int | None = None  # the legacy table's ItemCount (all services, approximate)
    resumed: bool = False
    done: bool = False


class BackfillResult(BaseModel):
    service: str
    scanned: int
    written: int
    skipped_existing: int
    unmapped: int
    resumed: bool
    elapsed_s: float


def backfill(
    migration: ServiceMigration,
    legacy: Table,
    new: Mapping[str, Table],
    checkpoint_store: CheckpointStore | None = None,
    *,
    rate_limit_per_s: float | None = None,
    progress: Callable[[BackfillProgress], None] | None = None,
    segments: int = 1,
    page_size: int = 100,
    overwrite: bool = False,
    checkpoint_name: str | None = None,
    limiter: RateLimiter | None = None,
) -> BackfillResult:
    """Copy the service's legacy items into its new tables (see module docstring)."""
    started = time.monotonic()
    name = checkpoint_name or f"backfill-{migration.service}"
    sort_key = _legacy_sort_key(migration, legacy)
    flt = _prefix_filter(migration, sort_key)
    limiter = limiter or RateLimiter(rate_limit_per_s)
    _check_tables(migration, new)

    state = checkpoint_store.load(name) if checkpoint_store else None
    resumed = state is not None
    if state is None:
        state = {"total_segments": segments, "segments": {}, "counts": {}}
    elif state.get("total_segments") != segments:
        raise ValueError(
            f"checkpoint {name!r} was made with segments={state.get('total_segments')}; "
            f"rerun with that value or clear the checkpoint"
        )
    counts = state.setdefault("counts", {})
    prog = BackfillProgress(
        scanned=int(counts.get("scanned", 0)),
        written=int(counts.get("written", 0)),
        skipped_existing=int(counts.get("skipped_existing", 0)),
        unmapped=int(counts.get("unmapped", 0)),
        total_segments=segments,
        resumed=resumed,
    )
    try:
        prog.estimated_total = int(legacy.item_count)
    except Exception:  # noqa: BLE001 - an estimate only
        prog.estimated_total = None
    prog.segments_done = sum(1 for s in state["segments"].values() if s.get("done"))

    for seg in range(segments):
        seg_state = state["segments"].setdefault(str(seg), {"last_key": None, "done": False})
        if seg_state["done"]:
            continue
        scan_args: dict[str, Any] = {"FilterExpression": flt, "Limit": page_size}
        if segments > 1:
            scan_args |= {"Segment": seg, "TotalSegments": segments}
        for items, last_key in _scan_pages(legacy, seg_state["last_key"], **scan_args):
            for item in items:
                limiter.acquire()
                prog.scanned += 1
                mapped = migration.to_new(item)
                if mapped is None:
                    prog.unmapped += 1
                    continue
                table_name, new_item = mapped
                spec = table_spec(migration, table_name)
                if _put(new[table_name], spec.hash_key, to_dynamo(new_item), overwrite):
                    prog.written += 1
                else:
                    prog.skipped_existing += 1
            # Checkpoint only after the whole page is written: a kill mid-page replays the
            # page, which the conditional put makes harmless.
            seg_state["last_key"] = last_key
            seg_state["done"] = last_key is None
            if seg_state["done"]:
                prog.segments_done += 1
            counts.update(
                scanned=prog.scanned, written=prog.written,
                skipped_existing=prog.skipped_existing, unmapped=prog.unmapped,
            )
            if checkpoint_store:
                checkpoint_store.save(name, state)
            if progress:
                progress(prog)
    prog.done = True
    if progress:
        progress(prog)
    return BackfillResult(
        service=migration.service,
        scanned=prog.scanned,
        written=prog.written,
        skipped_existing=prog.skipped_existing,
        unmapped=prog.unmapped,
        resumed=resumed,
        elapsed_s=time.monotonic() - started,
    )


def _check_tables(migration: ServiceMigration, new: Mapping[str, Table]) -> None:
    missing = [t.name for t in migration.new_tables if t.name not in new]
    if missing:
        raise ValueError(f"{migration.service}: no table handle given for {missing}")


def _put(table: Table, hash_key: str, item: Item, overwrite: bool) -> bool:
    if overwrite:
        table.put_item(Item=item)
        return True
    try:
        table.put_item(
            Item=item,
            ConditionExpression="attribute_not_exists(#pk)",
            ExpressionAttributeNames={"#pk": hash_key},
        )
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise


# --- verify -----------------------------------------------------------------------------------

_SECRET_FIELD = re.compile(r"secret|password|passwd|token|authorization|api_?key|private", re.I)


def redact(value: Any) -> Any:
    """Mask values under secret-looking field names (reports must never carry secrets)."""
    if isinstance(value, dict):
        return {k: "***" if _SECRET_FIELD.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


class KeyRef(BaseModel):
    table: str  # the new-side table
    key: dict[str, Any]  # key on the new side
    legacy_key: dict[str, Any]  # key in the legacy table


class DifferingItem(BaseModel):
    ref: KeyRef
    fields: list[str]  # differing field paths
    examples: list[FieldDiff] = Field(default_factory=list)  # values, for the first few items only


class VerifyResult(BaseModel):
    service: str
    legacy_items: int = 0  # legacy items owned by the service that map to a new table
    unmapped_legacy: int = 0
    new_items: dict[str, int] = Field(default_factory=dict)
    matched: int = 0
    missing_in_new: list[KeyRef] = Field(default_factory=list)
    missing_in_legacy: list[KeyRef] = Field(default_factory=list)
    differing: list[DifferingItem] = Field(default_factory=list)
    field_counts: dict[str, int] = Field(default_factory=dict)  # differing path → items
    elapsed_s: float = 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not (self.missing_in_new or self.missing_in_legacy or self.differing)


def _key_id(table: str, key: Item) -> str:
    return json.dumps([table, normalise(key)], sort_keys=True)


def verify(
    migration: ServiceMigration,
    legacy: Table,
    new: Mapping[str, Table],
    *,
    max_examples: int = 20,
    rate_limit_per_s: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyResult:
    """Compare the stores key by key; ``progress(items_read)`` after each page."""
    started = time.monotonic()
    _check_tables(migration, new)
    limiter = RateLimiter(rate_limit_per_s)
    ignore = list(getattr(migration, "ignore_fields", []) or [])
    only = getattr(migration, "compare_fields", None)
    legacy_keys = _legacy_key_names(legacy)
    sort_key = _legacy_sort_key(migration, legacy)
    result = VerifyResult(service=migration.service)
    read = 0

    expected: dict[str, tuple[KeyRef, Item]] = {}
    for items, _ in _scan_pages(legacy, FilterExpression=_prefix_filter(migration, sort_key)):
        for item in items:
            limiter.acquire()
            mapped = migration.to_new(item)
            if mapped is None:
                result.unmapped_legacy += 1
                continue
            table_name, new_item = mapped
            spec = table_spec(migration, table_name)
            ref = KeyRef(
                table=table_name,
                key=normalise(spec.key_of(new_item)),
                legacy_key=normalise({k: item[k] for k in legacy_keys}),
            )
            expected[_key_id(table_name, ref.key)] = (ref, new_item)
            result.legacy_items += 1
        read += len(items)
        if progress:
            progress(read)

    field_counts: Counter[str] = Counter()
    for spec in migration.new_tables:
        count = 0
        for items, _ in _scan_pages(new[spec.name]):
            for item in items:
                limiter.acquire()
                count += 1
                kid = _key_id(spec.name, normalise(spec.key_of(item)))
                entry = expected.pop(kid, None)
                if entry is None:
                    legacy_item = migration.to_legacy(spec.name, item)
                    result.missing_in_legacy.append(
                        KeyRef(
                            table=spec.name,
                            key=normalise(spec.key_of(item)),
                            legacy_key=normalise({k: legacy_item[k] for k in legacy_keys}),
                        )
                    )
                    continue
                ref, want = entry
                a, b = want, item
                if only is not None:
                    a = {k: v for k, v in a.items() if k in only}
                    b = {k: v for k, v in b.items() if k in only}
                diffs = diff_items(a, b, ignore)
                if not diffs:
                    result.matched += 1
                    continue
                field_counts.update({d.path for d in diffs})
                examples = []
                if len(result.differing) < max_examples:
                    examples = [
                        d.model_copy(update={"legacy": redact(d.legacy), "new": redact(d.new)})
                        if not _SECRET_FIELD.search(d.path)
                        else d.model_copy(update={"legacy": "***", "new": "***"})
                        for d in diffs
                    ]
                result.differing.append(DifferingItem(ref=ref, fields=[d.path for d in diffs], examples=examples))
            read += len(items)
            if progress:
                progress(read)
        result.new_items[spec.name] = count
    result.missing_in_new = [ref for ref, _ in expected.values()]
    result.field_counts = dict(field_counts.most_common())
    result.elapsed_s = time.monotonic() - started
    return result


# --- repair -----------------------------------------------------------------------------------


class RepairAction(BaseModel):
    op: Literal["put", "delete"]
    side: Literal["new", "legacy"]
    table: str
    key: dict[str, Any]


class RepairResult(BaseModel):
    service: str
    source: Literal["legacy", "new"]
    dry_run: bool
    actions: list[RepairAction] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def puts(self) -> int:
        return sum(1 for a in self.actions if a.op == "put")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def deletes(self) -> int:
        return sum(1 for a in self.actions if a.op == "delete")


def repair(
    migration: ServiceMigration,
    verify_result: VerifyResult,
    legacy: Table,
    new: Mapping[str, Table],
    *,
    source: Literal["legacy", "new"] = "legacy",
    dry_run: bool = False,
    rate_limit_per_s: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RepairResult:
    """Make the other side match ``source`` for every key ``verify_result`` reported.

    Each key is re-read from the source now (it may have changed since verify): present →
    mapped and put on the other side; absent → deleted on the other side.
    """
    if source not in ("legacy", "new"):
        raise ValueError("source must be 'legacy' or 'new'")
    if verify_result.service != migration.service:
        raise ValueError(f"verify result is for {verify_result.service!r}, not {migration.service!r}")
    _check_tables(migration, new)
    limiter = RateLimiter(rate_limit_per_s)
    result = RepairResult(service=migration.service, source=source, dry_run=dry_run)
    refs = (
        verify_result.missing_in_new
        + verify_result.missing_in_legacy
        + [d.ref for d in verify_result.differing]
    )
    for i, ref in enumerate(refs, 1):
        limiter.acquire()
        try:
            action, apply = _plan_repair(migration, ref, legacy, new, source)
            result.actions.append(action)
            if not dry_run:
                apply()
        except Exception as exc:  # noqa: BLE001 - one bad key must not stop the repair
            result.errors.append(f"{ref.table} {ref.key}: {type(exc).__name__}: {exc}")
        if progress:
            progress(i, len(refs))
    return result


def _plan_repair(
    migration: ServiceMigration, ref: KeyRef, legacy: Table, new: Mapping[str, Table], source: str
) -> tuple[RepairAction, Callable[[], Any]]:
    new_table = new[ref.table]
    if source == "legacy":
        item = legacy.get_item(Key=to_dynamo(ref.legacy_key), ConsistentRead=True).get("Item")
        mapped = migration.to_new(item) if item is not None else None
        if mapped is not None:
            table_name, new_item = mapped
            spec = table_spec(migration, table_name)
            target = new[table_name]
            return (
                RepairAction(op="put", side="new", table=table_name, key=normalise(spec.key_of(new_item))),
                lambda: target.put_item(Item=to_dynamo(new_item)),
            )
        return (
            RepairAction(op="delete", side="new", table=ref.table, key=ref.key),
            lambda: new_table.delete_item(Key=to_dynamo(ref.key)),
        )
    item = new_table.get_item(Key=to_dynamo(ref.key), ConsistentRead=True).get("Item")
    if item is not None:
        legacy_item = migration.to_legacy(ref.table, item)
        return (
            RepairAction(op="put", side="legacy", table=legacy.name, key=ref.legacy_key),
            lambda: legacy.put_item(Item=to_dynamo(legacy_item)),
        )
    return (
        RepairAction(op="delete", side="legacy", table=legacy.name, key=ref.legacy_key),
        lambda: legacy.delete_item(Key=to_dynamo(ref.legacy_key)),
    )
