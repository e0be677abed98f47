"""dual-write (on/off, status, retry, drain, worker) and data (backfill, verify, repair)."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import time
from typing import Any

import typer
from rich.table import Table

from .common import (
    AdminOpt,
    ControlError,
    ProgressReport,
    RoutesOpt,
    StateOpt,
    console,
    esc,
    friendly_errors,
    routes_path,
)

OutboxOpt = typer.Option(None, "--outbox", help="outbox URL [routes.yaml dual_write.outbox, env CHARIOT_MIGRATE_OUTBOX]")


def _config(routes: str | None):
    from ..routes.loader import load_table

    return load_table(routes_path(routes)).config


def _outbox(routes: str | None, url: str | None, state: str | None = None):
    from ..dual_write.config import outbox_url
    from ..dual_write.outbox import open_outbox
    from ..routes.loader import RoutesError

    try:
        section = _config(routes).dual_write
    except RoutesError:  # no routes file: the default outbox
        section = None
    return open_outbox(outbox_url(section, url, state_url=state))


dual_app = typer.Typer(help="Edge dual writes: every acknowledged write also reaches the other side.",
                       no_args_is_help=True)
data_app = typer.Typer(help="Backfill, verify and repair a service's data between the two stores.",
                       no_args_is_help=True)


@dual_app.command("set")
@friendly_errors
def set_mode(service: str, mode: str = typer.Argument(..., help="on | off"),
             percent: float = typer.Option(100, "--percent", help="share of accounts dual-written (monotonic)"),
             reason: str = typer.Option("", "--reason", "-m"),
             force: bool = typer.Option(False, "--force", help="turn it down although accounts are on new "
                                                              "(needs --reason; recorded as forced)"),
             routes: str = RoutesOpt, state: str = StateOpt, admin_url: str = AdminOpt) -> None:
    """Turn SERVICE's dual write on or off (also: `chariot-migrate dual-write SERVICE on`).
    `on` is refused when no proxy could honour it (its outbox does not open, or the running proxy
    says it does not dual write); `off` while accounts are on the new side is refused."""
    from ..rollout.operations import OperationError
    from .control import control
    from .prepare_cmd import dual_write_honoured

    if mode not in ("on", "off"):
        raise OperationError(f"mode must be 'on' or 'off', got {mode!r}")
    cfg = _config(routes)
    notes: list[str] = []
    if mode == "on":
        problem, notes = dual_write_honoured(cfg, state, admin_url)
        if problem:
            raise OperationError(f"{service}: dual write would not happen: {problem}")
    s = control(routes, state, admin_url).dual_write(service, mode, percent, reason, force)
    console.print(f"{esc(service)}: dual write {s['dual_write']} for {s['dual_write_bp'] / 100:g}% of accounts"
                  + (f" ({esc('; '.join(notes))})" if notes else ""), highlight=False, soft_wrap=True)


@dual_app.command("status")
@friendly_errors
def status(as_json: bool = typer.Option(False, "--json"), routes: str = RoutesOpt, outbox: str = OutboxOpt,
          state: str = StateOpt) -> None:
    """Backlog per service, age of the oldest undelivered write, dead letters."""
    ob = _outbox(routes, outbox, state)
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
        t.add_row(*map(esc, (name, s.backlog, age, s.dead_letters, pt.get("new", "-"), pt.get("legacy", "-"))))
    console.print(t if st else "outbox empty: nothing waiting, no dead letters")


@dual_app.command("dead")
@friendly_errors
def dead(service: str = typer.Option(None, "--service", "-s"), as_json: bool = typer.Option(False, "--json"),
         routes: str = RoutesOpt, outbox: str = OutboxOpt, state: str = StateOpt) -> None:
    """List dead letters (writes that failed every attempt): id, account, route, last error."""
    ob = _outbox(routes, outbox, state)
    letters = asyncio.run(ob.dead_letters(service))
    from ..redact import redact_path, redact_query

    if as_json:
        # What identifies and explains a dead letter; never its headers or bodies (the outbox keeps those).
        typer.echo(json.dumps([{"id": r.id, "service": r.service, "account": r.account, "target": r.target,
                                "seq": r.seq, "route": r.route_id, "method": r.request.method,
                                "path": redact_path(r.request.path, r.request.path_params),
                                "query": redact_query(r.request.query), "created_at": r.created_at,
                                "attempts": r.attempts, "last_error": r.last_error, "state": r.state}
                               for r in letters], indent=2))
        return
    if not letters:
        console.print("no dead letters")
    for r in letters:
        console.print(esc(f"{r.id} {r.service} {r.account} {r.request.method} "
                          f"{redact_path(r.request.path, r.request.path_params)} "
                          f"attempts={r.attempts} error={r.last_error}"), highlight=False)


@dual_app.command("retry")
@friendly_errors
def retry(record_id: str = typer.Option(None, "--id"), all_: bool = typer.Option(False, "--all"),
          service: str = typer.Option(None, "--service", "-s"), routes: str = RoutesOpt,
          outbox: str = OutboxOpt,
          state: str = StateOpt) -> None:
    """Send dead letters back to pending (one by --id, or --all [--service S])."""
    if not record_id and not all_:
        raise ControlError("say which: --id RECORD_ID or --all")
    n = asyncio.run(_outbox(routes, outbox, state).retry(record_id, service))
    console.print(f"{n} dead letter(s) queued for delivery again")


@dual_app.command("drain")
@friendly_errors
def drain(timeout: float = typer.Option(60, "--timeout"), service: str = typer.Option(None, "--service", "-s"),
          routes: str = RoutesOpt, outbox: str = OutboxOpt,
          state: str = StateOpt) -> None:
    """Wait until the outbox is empty (a running worker delivers); exit 1 if it is not by the timeout."""
    left = asyncio.run(_outbox(routes, outbox, state).drain(timeout, service))
    if left:
        console.print(f"[red]{left} write(s) still waiting after {timeout:g}s[/red]")
        raise typer.Exit(1)
    console.print("outbox drained")


@dual_app.command("worker")
@friendly_errors
def worker(routes: str = RoutesOpt, outbox: str = OutboxOpt,
          state: str = StateOpt) -> None:
    """Run a standalone replay worker (when proxies run with `dual_write.worker: false`)."""
    from ..dual_write.config import DualWriteConfig
    from ..dual_write.worker import ReplayWorker
    from ..lifecycle import until_stopped
    from ..proxy.app import Transports

    cfg = _config(routes)
    dw = DualWriteConfig.from_section(cfg.dual_write)
    ob = _outbox(routes, outbox, state)
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
        console.print("replay worker running; Ctrl-C (or SIGTERM) stops it after its in-flight deliveries")
        try:
            await until_stopped(w.stop, w.start())
        finally:
            await ts.aclose()

    asyncio.run(main())


# --- data migration ---------------------------------------------------------------------------

SegmentsOpt = typer.Option(1, "--segments", min=1, max=64, help="parallel scan segments (one thread each)")
PageSizeOpt = typer.Option(1000, "--page-size", min=1, max=10000, help="items per scan page (checkpointed per page)")

EndpointOpt = typer.Option(None, "--endpoint-url", help="AWS endpoint of both stores [env AWS_ENDPOINT_URL; "
                                                         "default: the `up` stack of the state directory]")


def _migration(cfg, service: str, state: str | None = None):
    from ..dual_write.mapping import MappingError, load_mapper
    from ..statedir import adopt_stack_env

    adopt_stack_env(state)  # e.g. the stack's table prefix, which the mapper reads when imported
    try:
        return load_mapper(cfg, service)
    except MappingError as e:
        raise ControlError(str(e)) from None


def aws_target(cfg, state: str | None, endpoint_url: str | None) -> tuple[str | None, dict[str, str]]:
    """(endpoint, boto3 credential kwargs): the flag, the environment, routes.yaml, else the `up`
    stack recorded in the state directory (moto: any credentials do). Real AWS needs credentials."""
    import boto3

    from ..statedir import read_stack, state_dir
    from .common import AWS_HINT

    endpoint = endpoint_url or os.environ.get("CHARIOT_MIGRATE_LEGACY_ENDPOINT_URL") or \
        os.environ.get("AWS_ENDPOINT_URL") or cfg.legacy.endpoint_url
    creds: dict[str, str] = {}
    if not endpoint:
        stack = read_stack(state_dir(state))
        if stack is not None:
            return stack.aws_endpoint_url, {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
    if boto3.Session().get_credentials() is None:
        if endpoint:  # an emulator (moto, localstack) takes any credentials
            creds = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
        else:
            raise ControlError(f"no AWS endpoint and no AWS credentials: {AWS_HINT}")
    return endpoint, creds


def _tables(cfg, migration, state: str | None = None, endpoint_url: str | None = None) -> tuple[Any, dict[str, Any]]:
    import boto3

    from ..aws_resources import dynamodb_endpoint

    endpoint, creds = aws_target(cfg, state, endpoint_url)
    if not endpoint_url:  # --endpoint-url wins; else a DynamoDB-only endpoint (`up --dynamodb dynalite`)
        endpoint = dynamodb_endpoint(endpoint)
    ddb = boto3.resource("dynamodb", region_name=cfg.legacy.region, **creds,
                         **({"endpoint_url": endpoint} if endpoint else {}))
    legacy = ddb.Table(cfg.legacy.table or os.environ.get("CHARIOT_TABLE", "chariot"))
    return legacy, {t.name: ddb.Table(t.name) for t in migration.new_tables}


def _tables_changed(cfg, migration, endpoint: str | None) -> None:
    """The service's tables were written around the service: let it drop what it has cached
    (the mapper's optional ``tables_changed`` hook), and say so."""
    hook = getattr(migration, "tables_changed", None)
    if hook is not None:
        console.print(esc(hook(endpoint)), highlight=False)


def run_backfill(cfg, service: str, *, state: str | None, endpoint_url: str | None, rate: float | None = None,
                 segments: int = 1, checkpoints: str | None = None, page_size: int | None = 1000,
                 write_mode: str = "threads", write_threads: int = 8):
    """Backfill with a progress bar; records its start and end for the safety rule; then rebuilds
    the read models other services keep of this data (their mapper's ``READ_MODELS``, ``fed_by``)."""
    from ..dual_write.mapping import read_models_fed_by
    from ..rollout.evidence import write_record

    mig = _migration(cfg, service, state)
    started = time.time()
    res = _backfill_one(cfg, mig, state=state, endpoint_url=endpoint_url, rate=rate, segments=segments,
                        checkpoints=checkpoints, page_size=page_size, write_mode=write_mode,
                        write_threads=write_threads)
    # A resumed pass began when its first run did: that is what "started after dual write" means.
    write_record("backfill", service, {"started_at": res.pass_started_at or started, "finished_at": time.time(),
                                       **res.model_dump()}, state)
    for view in read_models_fed_by(cfg, service):
        if _tables_exist(cfg, view, state, endpoint_url):
            _backfill_one(cfg, view, state=state, endpoint_url=endpoint_url, rate=rate, segments=segments,
                          checkpoints=checkpoints, page_size=page_size, write_mode=write_mode,
                          write_threads=write_threads)
        else:
            console.print(f"{esc(view.service)}: its tables do not exist (service not deployed); not rebuilt",
                          highlight=False)
    return res


def _tables_exist(cfg, migration, state: str | None, endpoint_url: str | None) -> bool:
    from botocore.exceptions import ClientError

    _, tables = _tables(cfg, migration, state, endpoint_url)
    try:
        for t in tables.values():
            t.load()
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return False
        raise
    return True


def _backfill_one(cfg, mig, *, state: str | None, endpoint_url: str | None, rate: float | None, segments: int,
                  checkpoints: str | None, page_size: int | None, write_mode: str, write_threads: int):
    from ..dual_write.data import backfill as run
    from ..dual_write.migration import FileCheckpointStore
    from ..statedir import under

    name = mig.service
    legacy, new = _tables(cfg, mig, state, endpoint_url)
    with ProgressReport(f"backfill {name}", unit="items scanned") as bar:

        def progress(p) -> None:
            bar.update(p.scanned, total=p.estimated_total,
                       description=f"backfill {name}: {p.written} written, {p.skipped_existing} already there")

        try:
            res = run(mig, legacy, new, FileCheckpointStore(checkpoints or under("checkpoints", state)),
                      rate_limit_per_s=rate, progress=progress, segments=segments, page_size=page_size,
                      write_mode=write_mode, write_threads=write_threads)  # type: ignore[arg-type]  # checked against WRITE_MODES
        finally:  # an interrupted backfill has written too
            _tables_changed(cfg, mig, aws_target(cfg, state, endpoint_url)[0])
    rate_s = res.scanned / res.elapsed_s if res.elapsed_s > 0 else 0.0
    console.print(f"{esc(name)}: scanned {res.scanned}, wrote {res.written}, already present {res.skipped_existing}"
                  f"{' (resumed)' if res.resumed else ''} in {res.elapsed_s:.1f}s ({rate_s:.0f} items/s)",
                  highlight=False)
    return res


def run_verify(cfg, service: str, *, state: str | None, endpoint_url: str | None, rate: float | None = None,
               quiet: bool = False, segments: int = 1, page_size: int | None = 1000):
    """Verify both stores (resumable: checkpoints and sorted runs in the state directory) and keep
    the result (with its time) for the gates and the safety rule."""
    from ..dual_write.data import report
    from ..dual_write.data import verify as run
    from ..dual_write.migration import FileCheckpointStore
    from ..rollout.evidence import write_record
    from ..statedir import under

    mig = _migration(cfg, service, state)
    legacy, new = _tables(cfg, mig, state, endpoint_url)
    cp = FileCheckpointStore(under("checkpoints", state))
    with ProgressReport(f"verify {service}", unit="items read", enabled=not quiet) as bar:
        res = run(mig, legacy, new, rate_limit_per_s=rate, segments=segments, page_size=page_size,
                  checkpoint_store=cp, workdir=cp.directory / f"verify-{service}-runs",
                  progress=lambda n, total=None: bar.update(n, total=total))
    doc = report(res)
    doc["at"] = time.time()
    write_record("verify", service, doc, state)
    if not quiet:
        console.print(f"{esc(service)}: {res.matched} matched, {len(res.missing_in_new)} missing in new, "
                      f"{len(res.missing_in_legacy)} missing in legacy, {len(res.differing)} differing"
                      f"{' (resumed)' if res.resumed else ''} in {res.elapsed_s:.1f}s", highlight=False)
        for d in doc["differing"][:10]:
            console.print(f"  differs: {esc(json.dumps(d)[:300])}", highlight=False)
    return res, doc


@data_app.command("backfill")
@friendly_errors
def backfill(service: str, rate: float = typer.Option(None, "--rate", help="items per second (default: unlimited)"),
             segments: int = SegmentsOpt,
             checkpoints: str = typer.Option(None, "--checkpoints", help="default: checkpoints/ in the state directory"),
             page_size: int = PageSizeOpt,
             write_mode: str = typer.Option("threads", "--write-mode",
                                            help="threads: conditional puts on a thread pool (fastest on moto); "
                                                 "transact: TransactWriteItems of 100 conditional puts"),
             write_threads: int = typer.Option(8, "--write-threads", min=1, max=64),
             routes: str = RoutesOpt, state: str = StateOpt, endpoint_url: str = EndpointOpt) -> None:
    """Copy SERVICE's entities from the legacy table into its own tables (resumable, idempotent;
    a run after a finished one starts a new pass, so it always catches up), then rebuild the read
    models other services keep of them (e.g. reporting's counts)."""
    from ..dual_write.absent_writes import WRITE_MODES

    if write_mode not in WRITE_MODES:
        raise ControlError(f"--write-mode must be one of {', '.join(WRITE_MODES)}")
    run_backfill(_config(routes), service, state=state, endpoint_url=endpoint_url, rate=rate, segments=segments,
                 checkpoints=checkpoints, page_size=page_size, write_mode=write_mode, write_threads=write_threads)


@data_app.command("verify")
@friendly_errors
def verify(service: str, as_json: bool = typer.Option(False, "--json"), rate: float = typer.Option(None, "--rate"),
           segments: int = SegmentsOpt, page_size: int = PageSizeOpt,
           routes: str = RoutesOpt, state: str = StateOpt, endpoint_url: str = EndpointOpt) -> None:
    """Compare both stores key by key as a merge-join in key order (flat memory; an interrupted
    verify resumes); exit 1 on drift. The result is kept for the rollout gates."""
    res, doc = run_verify(_config(routes), service, state=state, endpoint_url=endpoint_url, rate=rate, quiet=as_json,
                          segments=segments, page_size=page_size)
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
    if not res.ok:
        raise typer.Exit(1)


@data_app.command("repair")
@friendly_errors
def repair(service: str, source: str = typer.Option(..., "--source", help="legacy | new: the source of truth"),
           dry_run: bool = typer.Option(False, "--dry-run"), routes: str = RoutesOpt, state: str = StateOpt,
           endpoint_url: str = EndpointOpt) -> None:
    """Fix the drift `data verify` finds, copying from the chosen source of truth."""
    from ..dual_write.data import repair as run_repair
    from ..dual_write.data import verify as run_verify_only
    from ..redact import redact_value

    if source not in ("legacy", "new"):
        raise ControlError("--source must be 'legacy' or 'new'")
    cfg = _config(routes)
    mig = _migration(cfg, service, state)
    legacy, new = _tables(cfg, mig, state, endpoint_url)
    with ProgressReport(f"repair {service}: verify", unit="items read") as bar:
        found = run_verify_only(mig, legacy, new, progress=lambda n, total=None: bar.update(n, total=total))
    with ProgressReport(f"repair {service}: {'plan' if dry_run else 'fix'} from {source}", unit="keys") as bar:
        res = run_repair(mig, found, legacy, new, source=source, dry_run=dry_run,  # type: ignore[arg-type]  # checked above
                         progress=lambda i, n: bar.update(i, total=n))
    if not dry_run and source == "legacy":  # repairs from "new" write the legacy table only
        _tables_changed(cfg, mig, aws_target(cfg, state, endpoint_url)[0])
    verb = "would apply" if dry_run else "applied"
    console.print(f"{esc(service)}: {verb} {len(res.actions)} repair(s) from {source}; {len(res.errors)} error(s)")
    for a in res.actions[:20]:
        console.print(f"  {esc(json.dumps(redact_value(a.model_dump(mode='json')))[:200])}", highlight=False)
    if res.errors:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(dual_app, name="dual-write")
    app.add_typer(data_app, name="data")
