"""Backfill, verify and repair a service's data between the legacy table and its own tables.

All three take boto3 ``Table`` resources (``boto3.resource("dynamodb").Table(name)``) and a
:class:`~chariot_migrate.dual_write.migration.ServiceMigration`; they are synchronous (boto3
is) — run them in a thread from async code. Scans go through the tables' (thread-safe) clients.

* **backfill** scans the legacy table for the service's sort-key prefixes as N parallel scan
  segments and writes mapped items to the new tables in batches of conditional puts
  (:mod:`~chariot_migrate.dual_write.absent_writes`): a put never overwrites an item that is
  present, so a newer dual-written item survives an older legacy copy (``overwrite=True`` forces
  it; drift is verify/repair's job). Resumable: after every page the segment's
  ``LastEvaluatedKey`` and counts are checkpointed, so a killed run continues where it stopped;
  the page being written when it was killed is replayed, and its items found equal to what the
  backfill writes count as written (they are its own), not as already present. A run after a
  *finished* pass starts a new pass: a backfill always catches up with what came since.
* **verify** compares both stores key by key after normalisation (ignored fields, numbers,
  sets) as a merge-join: each side is written as sorted runs to files and merged in key order
  (:mod:`~chariot_migrate.dual_write.merge_join`), so memory stays flat whatever the data size.
  With a checkpoint store it is resumable (finished runs and each segment's scan position are
  kept); it reports missing-on-either-side and differing items, with redacted examples.
* **repair** re-reads each reported key from the source of truth *at repair time* and puts
  (or deletes, if the source no longer has it) the mapped item on the other side.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from chariot_migrate.dual_write.absent_writes import WriteMode, put_absent
from chariot_migrate.dual_write.compare import FieldDiff, diff_items, normalise
from chariot_migrate.dual_write.merge_join import RunWriter, dedupe_last, merge_join, merged
from chariot_migrate.dual_write.migration import (
    CheckpointStore,
    Item,
    RateLimiter,
    ServiceMigration,
    TableSpec,
    table_spec,
    to_dynamo,
)
from chariot_migrate.dual_write.segments import prefix_filter, scan_segments
from chariot_migrate.redact import REDACTED, is_sensitive, redact_value

Table = Any  # boto3.resources.factory.dynamodb.Table


# --- shared ---------------------------------------------------------------------------------


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


def _owned_filter(migration: ServiceMigration, legacy: Table) -> dict[str, Any]:
    if not migration.legacy_prefixes:
        raise ValueError(f"{migration.service}: legacy_prefixes is empty; nothing would be selected")
    return prefix_filter(_legacy_sort_key(migration, legacy), list(migration.legacy_prefixes))


def _item_count(*tables: Table) -> int | None:
    try:
        return sum(int(t.item_count) for t in tables)
    except Exception:  # noqa: BLE001 - an estimate only (DescribeTable, refreshed every ~6 h on AWS)
        return None


def _new_client(new: Mapping[str, Table]) -> Any:
    return next(iter(new.values())).meta.client


# --- backfill ---------------------------------------------------------------------------------

_COUNTS = ("scanned", "written", "skipped_existing", "unmapped")


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
    pass_started_at: float | None = None  # when this pass (incl. the runs it resumed) began
    segments: int = 1
    write_mode: str = "threads"


def _start_pass(state: dict[str, Any] | None, segments: int, name: str) -> tuple[dict[str, Any], bool]:
    """(state, resumed) of this run (pure): a finished or absent checkpoint starts a new pass."""
    if state is not None and _pass_complete(state):
        state = None  # the last pass finished: a new run is a new pass, so it catches up on what came since
    if state is None:
        return {"total_segments": segments, "segments": {}, "pass_started_at": time.time()}, False
    if state.get("total_segments") != segments:
        raise ValueError(
            f"checkpoint {name!r} was made with segments={state.get('total_segments')}; "
            f"rerun with that value or clear the checkpoint"
        )
    old = state.pop("counts", None)  # checkpoints before per-segment counts: fold into segment 0
    if old:
        state["segments"].setdefault("0", {"last_key": None, "done": False})["counts"] = old
    return state, True


def _pass_complete(state: dict[str, Any]) -> bool:
    segs = state.get("segments") or {}
    total = int(state.get("total_segments") or 1)
    return len(segs) >= total and all(s.get("done") for s in segs.values())


def _sum_counts(state: dict[str, Any]) -> dict[str, int]:
    return {c: sum(int((s.get("counts") or {}).get(c, 0)) for s in state["segments"].values()) for c in _COUNTS}


def backfill(
    migration: ServiceMigration,
    legacy: Table,
    new: Mapping[str, Table],
    checkpoint_store: CheckpointStore | None = None,
    *,
    rate_limit_per_s: float | None = None,
    progress: Callable[[BackfillProgress], None] | None = None,
    segments: int = 1,
    page_size: int | None = 1000,
    overwrite: bool = False,
    checkpoint_name: str | None = None,
    limiter: RateLimiter | None = None,
    write_mode: WriteMode = "threads",
    write_threads: int = 8,
) -> BackfillResult:
    """Copy the service's legacy items into its new tables (see module docstring)."""
    started = time.monotonic()
    if segments < 1:
        raise ValueError("segments must be at least 1")
    name = checkpoint_name or f"backfill-{migration.service}"
    scan_filter = _owned_filter(migration, legacy)
    limiter = limiter or RateLimiter(rate_limit_per_s)
    _check_tables(migration, new)
    state, resumed = _start_pass(checkpoint_store.load(name) if checkpoint_store else None, segments, name)
    # A resumed segment's first page may have been written in part by the killed run.
    replaying = {k for k, s in state["segments"].items() if not s.get("done")} if resumed else set()
    lock = threading.Lock()
    prog = BackfillProgress(total_segments=segments, resumed=resumed, estimated_total=_item_count(legacy))
    for count, n in _sum_counts(state).items():  # a resumed pass goes on from its counts
        setattr(prog, count, n)
    prog.segments_done = sum(1 for s in state["segments"].values() if s.get("done"))
    client = _new_client(new)
    pool = ThreadPoolExecutor(write_threads, thread_name_prefix="backfill-put") \
        if write_mode == "threads" and write_threads > 1 else None

    def on_page(seg: int, items: list[Item], last_key: Item | None) -> None:
        page = Counter(scanned=len(items))
        puts: list[tuple[str, str, Item]] = []
        for item in items:
            limiter.acquire()
            mapped = migration.to_new(item)
            if mapped is None:
                page["unmapped"] += 1
                continue
            table_name, new_item = mapped
            puts.append((table_name, table_spec(migration, table_name).hash_key, to_dynamo(new_item)))
        named = [(new[t].name, hk, it) for t, hk, it in puts]
        written = put_absent(client, named, mode=write_mode, overwrite=overwrite, pool=pool)
        with lock:
            if str(seg) in replaying:
                replaying.discard(str(seg))
                written = _own_earlier_writes(migration, new, puts, written)
        page["written"] += sum(written)
        page["skipped_existing"] += len(written) - sum(written)
        with lock:
            # Checkpoint only after the whole page is written: a kill mid-page replays the page,
            # which the conditional puts make harmless (and _own_earlier_writes counts right).
            st = state["segments"].setdefault(str(seg), {"last_key": None, "done": False})
            counts = st.setdefault("counts", {})
            for c in _COUNTS:
                counts[c] = int(counts.get(c, 0)) + page[c]
                setattr(prog, c, getattr(prog, c) + page[c])
            st["last_key"], st["done"] = last_key, last_key is None
            prog.segments_done += st["done"]
            if checkpoint_store:
                checkpoint_store.save(name, state)
            if progress:
                progress(prog)

    try:
        scan_segments(legacy.meta.client, legacy.name, state["segments"], segments, on_page,
                      page_size=page_size, extra=scan_filter)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    prog.done = True
    if progress:
        progress(prog)
    return BackfillResult(
        service=migration.service, scanned=prog.scanned, written=prog.written,
        skipped_existing=prog.skipped_existing, unmapped=prog.unmapped, resumed=resumed,
        elapsed_s=time.monotonic() - started, pass_started_at=state.get("pass_started_at"),
        segments=segments, write_mode=write_mode,
    )


def _own_earlier_writes(migration: ServiceMigration, new: Mapping[str, Table],
                        puts: list[tuple[str, str, Item]], written: list[bool]) -> list[bool]:
    """On a replayed page, a refused put whose present item equals what the backfill writes was
    written by the killed run: count it as written (one strongly consistent read per refused put)."""
    out = list(written)
    for i, (table_name, _, item) in enumerate(puts):
        if written[i]:
            continue
        key = to_dynamo(table_spec(migration, table_name).key_of(item))
        present = new[table_name].get_item(Key=key, ConsistentRead=True).get("Item")
        out[i] = present is not None and normalise(present) == normalise(item)
    return out


def _check_tables(migration: ServiceMigration, new: Mapping[str, Table]) -> None:
    missing = [t.name for t in migration.new_tables if t.name not in new]
    if missing:
        raise ValueError(f"{migration.service}: no table handle given for {missing}")


# --- verify -----------------------------------------------------------------------------------

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
    resumed: bool = False

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented form; mypy rejects decorated properties
    @property
    def ok(self) -> bool:
        return not (self.missing_in_new or self.missing_in_legacy or self.differing)


def report(result: VerifyResult) -> dict[str, Any]:
    """The result as stored and shown: keys that carry a credential (``#account#…#hook#<pin>``)
    and secret-named fields redacted by the one policy shadow uses too; repair re-verifies, so it
    never needs the raw keys from a report."""
    return redact_value(json.loads(result.model_dump_json()))


def _key_id(table: str, key: Item) -> str:
    return json.dumps([table, normalise(key)], sort_keys=True)


def _scan_to_runs(table: Table, section: str, state: dict[str, Any], workdir: Path, *, segments: int,
                  page_size: int | None, run_size: int, extra: dict[str, Any] | None,
                  record: Callable[[Item], tuple[str, str | None, Any]], save: Callable[[], None],
                  read: Callable[[int], None], lock: threading.Lock) -> None:
    """Scan ``table`` into sorted runs (one writer per segment). ``record(item)`` → (counter,
    key_id | None, payload). A segment's runs, counts and position are checkpointed together
    when a run is written, so a resumed scan neither loses nor repeats a record."""
    sec = state.setdefault(section, {"segments": {}})
    writers: dict[int, RunWriter] = {}
    pending: dict[int, Counter[str]] = {}

    def on_page(seg: int, items: list[Item], last_key: Item | None) -> None:
        st = sec["segments"].setdefault(str(seg), {"last_key": None, "done": False})
        w = writers.get(seg) or writers.setdefault(
            seg, RunWriter(workdir, f"{section.replace(':', '-')}-s{seg}", run_size, st.get("runs")))
        c = pending.setdefault(seg, Counter())
        for item in items:
            counter, kid, payload = record(item)
            c[counter] += 1
            if kid is not None:
                w.add(kid, payload)
        read(len(items))
        if w.full or last_key is None:
            w.flush()
            with lock:
                counts = st.setdefault("counts", {})
                for k, v in c.items():
                    counts[k] = int(counts.get(k, 0)) + v
                c.clear()
                st["runs"], st["last_key"], st["done"] = list(w.runs), last_key, last_key is None
                save()
        # else: the page's records wait in memory (≤ run_size); a kill rescans from the last run.

    scan_segments(table.meta.client, table.name, sec["segments"], segments, on_page, page_size=page_size,
                  extra=extra)


def _section_counts(state: dict[str, Any], section: str) -> Counter[str]:
    out: Counter[str] = Counter()
    for s in state.get(section, {}).get("segments", {}).values():
        out.update({k: int(v) for k, v in (s.get("counts") or {}).items()})
    return out


def _section_runs(state: dict[str, Any], section: str) -> list[str]:
    return [r for _, s in sorted(state.get(section, {}).get("segments", {}).items()) for r in s.get("runs", [])]


def verify(
    migration: ServiceMigration,
    legacy: Table,
    new: Mapping[str, Table],
    *,
    max_examples: int = 20,
    rate_limit_per_s: float | None = None,
    progress: Callable[..., None] | None = None,
    segments: int = 1,
    page_size: int | None = 1000,
    run_size: int = 5_000,
    workdir: str | os.PathLike[str] | None = None,
    checkpoint_store: CheckpointStore | None = None,
    checkpoint_name: str | None = None,
) -> VerifyResult:
    """Compare the stores key by key; ``progress(items_read, estimated_total)`` after each page.

    Sorted runs go to ``workdir`` (default: a temporary directory); with a ``checkpoint_store``
    (and a ``workdir``) an interrupted verify resumes, and a finished one clears its checkpoint.
    """
    started = time.monotonic()
    _check_tables(migration, new)
    limiter = RateLimiter(rate_limit_per_s)
    ignore = list(getattr(migration, "ignore_fields", []) or [])
    only = getattr(migration, "compare_fields", None)
    owns = getattr(migration, "owns_new_item", None)
    legacy_keys = _legacy_key_names(legacy)
    name = checkpoint_name or f"verify-{migration.service}"
    store = checkpoint_store if workdir is not None else None
    state = (store.load(name) if store else None) or {}
    if state and state.get("total_segments") != segments:
        state = {}  # a different split: start over (runs of the old split are overwritten)
    resumed = bool(state)
    state["total_segments"] = segments
    tmp = tempfile.TemporaryDirectory(prefix="verify-") if workdir is None else None
    root = Path(workdir) if workdir is not None else Path(tmp.name) if tmp is not None else Path()
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)  # runs hold items as stored (unredacted) until the verify finishes
    lock = threading.Lock()
    total = _item_count(legacy, *new.values())
    read = [0]

    def on_read(n: int) -> None:
        with lock:
            read[0] += n
            if progress:
                progress(read[0], total)

    def save() -> None:
        if store:
            store.save(name, state)

    def legacy_record(item: Item) -> tuple[str, str | None, Any]:
        limiter.acquire()
        mapped = migration.to_new(item)
        if mapped is None:
            return "unmapped", None, None
        table_name, new_item = mapped
        key = normalise(table_spec(migration, table_name).key_of(new_item))
        payload = {"t": table_name, "k": key, "lk": normalise({k: item[k] for k in legacy_keys}),
                   "i": normalise(new_item)}
        return "mapped", _key_id(table_name, key), payload

    try:
        _scan_to_runs(legacy, "legacy", state, root, segments=segments, page_size=page_size, run_size=run_size,
                      extra=_owned_filter(migration, legacy), record=legacy_record, save=save, read=on_read,
                      lock=lock)
        for spec in migration.new_tables:
            def new_record(item: Item, spec: TableSpec = spec) -> tuple[str, str | None, Any]:
                limiter.acquire()
                if owns is not None and not owns(spec.name, item):
                    return "bookkeeping", None, None  # saga logs, leases: no legacy counterpart
                key = normalise(spec.key_of(item))
                return "items", _key_id(spec.name, key), {"t": spec.name, "k": key, "i": normalise(item)}

            _scan_to_runs(new[spec.name], f"new:{spec.name}", state, root, segments=segments, page_size=page_size,
                          run_size=run_size, extra=None, record=new_record, save=save, read=on_read, lock=lock)

        result = VerifyResult(service=migration.service, resumed=resumed)
        lc = _section_counts(state, "legacy")
        result.legacy_items, result.unmapped_legacy = lc["mapped"], lc["unmapped"]
        result.new_items = {s.name: _section_counts(state, f"new:{s.name}")["items"] for s in migration.new_tables}
        new_runs = [r for s in migration.new_tables for r in _section_runs(state, f"new:{s.name}")]
        field_counts: Counter[str] = Counter()
        joined = merge_join(dedupe_last(merged(root, _section_runs(state, "legacy"))), merged(root, new_runs))
        for _, want, have in joined:
            if have is None:
                result.missing_in_new.append(KeyRef(table=want["t"], key=want["k"], legacy_key=want["lk"]))
                continue
            if want is None:
                legacy_item = migration.to_legacy(have["t"], have["i"])
                result.missing_in_legacy.append(KeyRef(
                    table=have["t"], key=have["k"], legacy_key=normalise({k: legacy_item[k] for k in legacy_keys})))
                continue
            a, b = want["i"], have["i"]
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
                # The one redaction policy (shadow's): reports never carry a secret.
                examples = [
                    d.model_copy(update={"legacy": REDACTED, "new": REDACTED})
                    if is_sensitive(d.path)
                    else d.model_copy(update={"legacy": redact_value(d.legacy), "new": redact_value(d.new)})
                    for d in diffs
                ]
            ref = KeyRef(table=want["t"], key=want["k"], legacy_key=want["lk"])
            result.differing.append(DifferingItem(ref=ref, fields=[d.path for d in diffs], examples=examples))
        result.field_counts = dict(field_counts.most_common())
    finally:
        if tmp is not None:
            tmp.cleanup()
    if store:
        store.clear(name)  # finished: the next verify is a fresh one
        for run in _section_runs(state, "legacy") + new_runs:
            (root / run).unlink(missing_ok=True)
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

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented form; mypy rejects decorated properties
    @property
    def puts(self) -> int:
        return sum(1 for a in self.actions if a.op == "put")

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented form; mypy rejects decorated properties
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
