"""dual-write (on/off, status, retry, drain, worker) and data (backfill, verify, repair)."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .common import AdminOpt, ControlError, RoutesOpt, StateOpt, console, friendly_errors, routes_path

OutboxOpt = typer.Option(None, "--outbox", help="outbox URL [routes.yaml dual_write.outbox, env CHARIOT_MIGRATE_OUTBOX]")


def _config(routes: str | None):
    from ..routes.loader import load_table

    return load_table(routes_path(routes)).config


def _outbox(routes: str | None, url: str | None):
    from ..dual_write.config import DualWriteConfig
    from ..dual_write.outbox import open_outbox

    url = url or os.environ.get("CHARIOT_MIGRATE_OUTBOX")
    if not url:
        try:
            url = DualWriteConfig.from_section(_config(routes).dual_write).outbox
        except Exception:  # noqa: BLE001 — no routes file: the default outbox
            url = None
    return open_outbox(url)


dual_app = typer.Typer(help="Edge dual writes: every acknowledged write also reaches the other side.",
                       no_args_is_help=True)
data_app = typer.Typer(help="Backfill, verify and repair a service's data between the two stores.",
                       no_args_is_help=True)


@dual_app.command("set")
@friendly_errors
def set_mode(service: str, mode: str = typer.Argument(..., help="on | off"),
             percent: float = typer.Option(100, "--percent", help="share of accounts dual-written (monotonic)"),
             reason: str = typer.Option("", "--reason", "-m"),
             routes: str = RoutesOpt, state: str = StateOpt, admin_url: str = AdminOpt) -> None:
    """Turn SERVICE's dual write on or off (also: `chariot-migrate dual-write SERVICE on`)."""
    from ..rollout.operations import OperationError, Operations
    from ..rollout.store import open_state_store

    if mode not in ("on", "off"):
        raise OperationError(f"mode must be 'on' or 'off', got {mode!r}")
    ops = Operations(open_state_store(state), _config(routes))
    s = ops.set_dual_write(service, mode, percent, reason=reason)  # type: ignore[arg-type]
    console.print(f"{service}: dual write {s.dual_write} for {s.dual_write_bp / 100:g}% of accounts")


@dual_app.command("status")
@friendly_errors
def status(as_json: bool = typer.Option(False, "--json"), routes: str = RoutesOpt, outbox: str = OutboxOpt) -> None:
    """Backlog per service, age of the oldest undelivered write, dead letters."""
    ob = _outbox(routes, outbox)
    st = asyncio.run(ob.status())
    if as_json:
        typer.echo(json.dumps({k: v.model_dump() for k, v in st.items()}, indent=2))
        return
    t = Table(title="dual-write outbox")
    for col in ("service", "backlog", "oldest", "dead letters", "toward new", "toward legacy"):
        t.add_column(col)
    for name, s in sorted(st.items()):
        age = f"{s.oldest_age_s:.1f}s" if s.oldest_age_s is not None else "-"
        pt = {k: f"{v.pending} pending, {v.dead} dead" for k, v in s.per_target.items()}
        t.add_row(name, str(s.backlog), age, str(s.dead_letters), pt.get("new", "-"), pt.get("legacy", "-"))
    console.print(t if st else "outbox empty: nothing waiting, no dead letters")


@dual_app.command("dead")
@friendly_errors
def dead(service: str = typer.Option(None, "--service", "-s"), routes: str = RoutesOpt, outbox: str = OutboxOpt) -> None:
    """List dead letters (writes that failed every attempt): id, account, route, last error."""
    ob = _outbox(routes, outbox)
    for r in asyncio.run(ob.dead_letters(service)):
        console.print(f"{r.id} {r.service} {r.account} {r.request.method} {r.request.path} "
                      f"attempts={r.attempts} error={r.last_error}", highlight=False)


@dual_app.command("retry")
@friendly_errors
def retry(record_id: str = typer.Option(None, "--id"), all_: bool = typer.Option(False, "--all"),
          service: str = typer.Option(None, "--service", "-s"), routes: str = RoutesOpt,
          outbox: str = OutboxOpt) -> None:
    """Send dead letters back to pending (one by --id, or --all [--service S])."""
    if not record_id and not all_:
        raise ControlError("say which: --id RECORD_ID or --all")
    n = asyncio.run(_outbox(routes, outbox).retry(record_id, service))
    console.print(f"{n} dead letter(s) queued for delivery again")


@dual_app.command("drain")
@friendly_errors
def drain(timeout: float = typer.Option(60, "--timeout"), service: str = typer.Option(None, "--service", "-s"),
          routes: str = RoutesOpt, outbox: str = OutboxOpt) -> None:
    """Wait until the outbox is empty (a running worker delivers); exit 1 if it is not by the timeout."""
    left = asyncio.run(_outbox(routes, outbox).drain(timeout, service))
    if left:
        console.print(f"[red]{left} write(s) still waiting after {timeout:g}s[/red]")
        raise typer.Exit(1)
    console.print("outbox drained")


@dual_app.command("worker")
@friendly_errors
def worker(routes: str = RoutesOpt, outbox: str = OutboxOpt) -> None:
    """Run a standalone replay worker (when proxies run with `dual_write.worker: false`)."""
    from ..dual_write.config import DualWriteConfig
    from ..dual_write.worker import ReplayWorker
    from ..proxy.app import Transports

    cfg = _config(routes)
    dw = DualWriteConfig.from_section(cfg.dual_write)
    ob = _outbox(routes, outbox)
    token = None
    if dw.replay_token:
        mod, _, attr = dw.replay_token.partition(":")
        token = getattr(importlib.import_module(mod), attr)

    async def main() -> None:
        ts = Transports()
        ts.sync(cfg)

        def pick(service: str, side: str):
            return ts.legacy if side == "legacy" else ts.services[service]

        w = ReplayWorker(ob, pick, max_attempts=dw.max_attempts, base_delay_s=dw.base_delay_s,
                         max_delay_s=dw.max_delay_s, concurrency=dw.concurrency, timeout_s=dw.timeout_s,
                         lease_s=max(dw.lease_s, dw.timeout_s + 1),
                         replay_token_provider=token)
        console.print("replay worker running; Ctrl-C stops it")
        try:
            await w.run_forever()
        finally:
            await ts.aclose()

    asyncio.run(main())


# --- data migration ---------------------------------------------------------------------------


def _migration(cfg, service: str):
    svc = cfg.services.get(service)
    if svc is None:
        raise ControlError(f"unknown service {service!r}; routes.yaml knows: {', '.join(sorted(cfg.services))}")
    ref = svc.migration or (svc.app.rsplit(".", 1)[0].partition(":")[0] + ".migration" if svc.app else None)
    if ref is None:
        raise ControlError(f"service {service!r} declares no migration mapper (services.{service}.migration)")
    module, _, attr = ref.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError:
        raise ControlError(f"service {service!r}: no migration module {module!r} yet") from None
    if attr:
        return getattr(mod, attr)
    for name in ("MIGRATION", "migration"):
        if hasattr(mod, name):
            obj = getattr(mod, name)
            return obj() if callable(obj) and not hasattr(obj, "legacy_prefixes") else obj
    raise ControlError(f"{module} has no MIGRATION object")


def _endpoint(cfg) -> str | None:
    return cfg.legacy.endpoint_url or os.environ.get("CHARIOT_MIGRATE_LEGACY_ENDPOINT_URL") or \
        os.environ.get("AWS_ENDPOINT_URL")


def _tables(cfg, migration) -> tuple[Any, dict[str, Any]]:
    import boto3

    endpoint = _endpoint(cfg)
    ddb = boto3.resource("dynamodb", region_name=cfg.legacy.region, **({"endpoint_url": endpoint} if endpoint else {}))
    legacy = ddb.Table(cfg.legacy.table or os.environ.get("CHARIOT_TABLE", "chariot"))
    return legacy, {t.name: ddb.Table(t.name) for t in migration.new_tables}


def _tables_changed(cfg, migration) -> None:
    """The service's tables were written around the service: let it drop what it has cached
    (the mapper's optional ``tables_changed`` hook), and say so."""
    hook = getattr(migration, "tables_changed", None)
    if hook is not None:
        console.print(hook(_endpoint(cfg)), highlight=False)


@data_app.command("backfill")
@friendly_errors
def backfill(service: str, rate: float = typer.Option(None, "--rate", help="items per second (default: unlimited)"),
             segments: int = typer.Option(1, "--segments"), checkpoints: str = typer.Option(".chariot-migrate/checkpoints"),
             routes: str = RoutesOpt) -> None:
    """Copy SERVICE's entities from the legacy table into its own tables (resumable, idempotent)."""
    from ..dual_write.data import backfill as run
    from ..dual_write.migration import FileCheckpointStore

    cfg = _config(routes)
    mig = _migration(cfg, service)
    legacy, new = _tables(cfg, mig)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed} items"),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(f"backfill {service}", total=None)

        def progress(p) -> None:
            bar.update(task, completed=p.scanned, total=p.estimated_total,
                       description=f"backfill {service}: {p.written} written, {p.skipped_existing} already there")

        try:
            res = run(mig, legacy, new, FileCheckpointStore(checkpoints), rate_limit_per_s=rate,
                      progress=progress, segments=segments)
        finally:  # an interrupted backfill has written too
            _tables_changed(cfg, mig)
    console.print(f"{service}: scanned {res.scanned}, wrote {res.written}, already present {res.skipped_existing}"
                  f"{' (resumed)' if res.resumed else ''} in {res.elapsed_s:.1f}s")


@data_app.command("verify")
@friendly_errors
def verify(service: str, as_json: bool = typer.Option(False, "--json"), rate: float = typer.Option(None, "--rate"),
           routes: str = RoutesOpt) -> None:
    """Compare both stores key by key; exit 1 on drift. The result is kept for the rollout gates."""
    from ..dual_write.data import verify as run
    from ..rollout.evidence import DEFAULT_VERIFY_DIR

    cfg = _config(routes)
    mig = _migration(cfg, service)
    legacy, new = _tables(cfg, mig)
    res = run(mig, legacy, new, rate_limit_per_s=rate)
    Path(DEFAULT_VERIFY_DIR).mkdir(parents=True, exist_ok=True)
    doc = json.loads(res.model_dump_json())
    doc["at"] = time.time()
    (Path(DEFAULT_VERIFY_DIR) / f"{service}.json").write_text(json.dumps(doc, indent=2))
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
    else:
        console.print(f"{service}: {res.matched} matched, {len(res.missing_in_new)} missing in new, "
                      f"{len(res.missing_in_legacy)} missing in legacy, {len(res.differing)} differing",
                      highlight=False)
        for d in res.differing[:10]:
            console.print(f"  differs: {d.model_dump_json()[:300]}", highlight=False)
    if not res.ok:
        raise typer.Exit(1)


@data_app.command("repair")
@friendly_errors
def repair(service: str, source: str = typer.Option(..., "--source", help="legacy | new: the source of truth"),
           dry_run: bool = typer.Option(False, "--dry-run"), routes: str = RoutesOpt) -> None:
    """Fix the drift `data verify` finds, copying from the chosen source of truth."""
    from ..dual_write.data import repair as run_repair
    from ..dual_write.data import verify as run_verify

    if source not in ("legacy", "new"):
        raise ControlError("--source must be 'legacy' or 'new'")
    cfg = _config(routes)
    mig = _migration(cfg, service)
    legacy, new = _tables(cfg, mig)
    found = run_verify(mig, legacy, new)
    res = run_repair(mig, found, legacy, new, source=source, dry_run=dry_run)  # type: ignore[arg-type]
    if not dry_run and source == "legacy":  # repairs from "new" write the legacy table only
        _tables_changed(cfg, mig)
    verb = "would apply" if dry_run else "applied"
    console.print(f"{service}: {verb} {len(res.actions)} repair(s) from {source}; {len(res.errors)} error(s)")
    for a in res.actions[:20]:
        console.print(f"  {a.model_dump_json()[:200]}", highlight=False)
    if res.errors:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(dual_app, name="dual-write")
    app.add_typer(data_app, name="data")
