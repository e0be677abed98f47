"""plan, advance, rollout, approve, phase-report: the gated, phased migration."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from ..rollout.assembly import tick_doc
from .common import AdminOpt, RoutesOpt, StateOpt, console, esc, friendly_errors, routes_path

MetricsOpt = typer.Option(None, "--metrics-store", help="request windows [routes.yaml plan.metrics_store, "
                                                         "env CHARIOT_MIGRATE_METRICS_STORE]")
OutboxOpt = typer.Option(None, "--outbox", help="dual-write outbox URL [env CHARIOT_MIGRATE_OUTBOX]")
JsonOpt = typer.Option(False, "--json", help="machine-readable output (every check, nothing summarised)")

# `advance` exit codes. Not 2: click uses 2 for a usage error, so a script could not tell a typo
# from a hold.
EXIT_OK = 0  # promoted, or nothing to do (plan complete)
EXIT_HOLD = 3  # a gate holds the step (too few samples, match rate, backlog, approval, …)
EXIT_ROLLBACK = 4  # a gate is breached: rolling back is advised (`rollback`, or let `rollout` do it)
TOP_ITEMS = 3  # a measured list (e.g. new signatures) is shown as its count and the first three


def summarise(measured: str, top: int = TOP_ITEMS) -> str:
    """``a, b, c, d, e`` → ``5: a, b, c (+2 more)``; anything shorter is left as it is."""
    items = measured.split(", ")
    if len(items) <= top:
        return measured
    return f"{len(items)}: {', '.join(items[:top])} (+{len(items) - top} more)"


def check_line(c) -> str:
    """A gate check on one line, long lists summarised (``--json`` keeps them whole)."""
    return f"{'ok ' if c.ok else 'FAIL'} {c.name}: {summarise(c.measured)} (threshold {c.threshold})"


def tick_line(tick) -> str:
    """``Tick.line()`` with the failing checks summarised (the reason lists every one in full)."""
    failing = [check_line(c) for c in tick.result.checks if not c.ok] if tick.result is not None else []
    if not failing or tick.decision == "promote":
        return tick.line()
    moved = f" → {tick.applied}" if tick.applied else ""
    return f"{tick.service}: {tick.step}{moved} [{tick.decision}] " + "; ".join(failing)


def exit_code(decision: str) -> int:
    return {"hold": EXIT_HOLD, "rollback": EXIT_ROLLBACK}.get(decision, EXIT_OK)


def build_controller(routes: str | None, state: str | None, *args, **kw):
    """The controller for a CLI command: routes.yaml found as every command finds it, one-sentence errors."""
    from ..rollout.assembly import build_controller as build
    from .common import ControlError

    try:
        return build(routes_path(routes), state, *args, **kw)
    except ValueError as e:
        raise ControlError(str(e)) from None


def admin_loop(tick: Callable[[], dict[str, Any]], *, interval: float | None, watch: bool,
               max_ticks: int | None, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """``rollout --admin-url``: the controller's loop, each evaluation made by the admin process
    (``tick``); the interval is the plan's unless given. Ends when the plan is complete."""
    n = 0
    while True:
        doc = tick()
        n += 1
        console.print(f"{time.strftime('%H:%M:%S')} {doc['line']}", highlight=False, markup=False)
        if (doc["decision"] == "done" and not watch) or (max_ticks and n >= max_ticks):
            return doc
        sleep(interval or doc["interval_s"])


def register(app: typer.Typer) -> None:
    @app.command("plan")
    @friendly_errors
    def show_plan(routes: str = RoutesOpt, state: str = StateOpt, metrics_store: str = MetricsOpt,
                  outbox: str = OutboxOpt, as_json: bool = JsonOpt) -> None:
        """The phases in order: where each service stands and what blocks its next step (long
        lists, such as new mismatch signatures, as their count and the first three)."""
        ctl, cfg, plan = build_controller(routes, state, metrics_store, outbox=outbox)
        ticks = [(svc.phase, ctl.evaluate(name)) for name, svc in sorted(cfg.services.items(),
                                                                          key=lambda kv: kv[1].phase)]
        if as_json:
            typer.echo(json.dumps({"services": [{"phase": phase, **tick_doc(tick)} for phase, tick in ticks]},
                                  indent=2, default=str))
            return
        t = Table(title="migration plan")
        for col in ("phase", "service", "step", "next", "verdict", "what blocks it (measured vs threshold)"):
            t.add_column(col)
        metric_names = {m.name for m in plan.analysis.metrics}
        for phase, tick in ticks:
            why = tick.reason if tick.decision != "promote" else "-"
            if tick.result is not None:
                # failing checks, and every Prometheus metric's value against its bound (passing too)
                failing = [check_line(c) for c in tick.result.checks if not c.ok]
                passing = [check_line(c) for c in tick.result.checks if c.ok and c.name in metric_names]
                lines = ((failing or [tick.reason]) if tick.decision != "promote" else []) + passing
                why = "\n".join(lines) or why
            t.add_row(*map(esc, (phase, tick.service, tick.step, tick.target or "-", tick.decision)), Text(why))
        console.print(t)

    @app.command()
    @friendly_errors
    def advance(service: str, force: bool = typer.Option(False, "--force", help="ignore the phase order"),
                reason: str = typer.Option("", "--reason", "-m"),
                routes: str = RoutesOpt, state: str = StateOpt, metrics_store: str = MetricsOpt,
                outbox: str = OutboxOpt, as_json: bool = JsonOpt, admin_url: str = AdminOpt) -> None:
        """One step forward if the gates pass now; otherwise say which gate blocks it and why.
        Taken by you (your name in the history); lifts a halt after an automatic rollback.
        Exit 0 promoted (or plan complete), 3 hold, 4 rollback advised, 1 refused (error).
        With --admin-url the proxy's admin process evaluates it on that deployment's stores."""
        from ..rollout.operations import default_actor

        if admin_url or os.environ.get("CHARIOT_MIGRATE_ADMIN_URL"):
            from .control import AdminControl

            doc = AdminControl(admin_url or os.environ["CHARIOT_MIGRATE_ADMIN_URL"]).advance(service, reason, force)
            code = exit_code(doc["decision"])
            if as_json:
                typer.echo(json.dumps({**doc, "exit_code": code}, indent=2, default=str))
            else:
                moved = f" → {doc['applied']}" if doc.get("applied") else ""
                console.print(f"{doc['service']}: {doc['step']}{moved} [{doc['decision']}] {doc['reason']}",
                              highlight=False, markup=False)
                for c in doc["checks"]:
                    console.print("  " + check_line(SimpleNamespace(**c)), highlight=False, markup=False)
            if code != EXIT_OK:
                sys.exit(code)
            return
        ctl, cfg, plan = build_controller(routes, state, metrics_store, outbox=outbox, actor=default_actor())
        if service not in cfg.services:
            from ..rollout.operations import OperationError

            raise OperationError(f"unknown service {service!r}; routes.yaml knows: {', '.join(sorted(cfg.services))}")
        if force and not reason:
            from ..rollout.operations import OperationError

            raise OperationError("--force needs a --reason (it is kept in the audit history)")
        tick = ctl.tick(service, force_phase=force, force_reason=reason, record=False, resume=True,
                        force_safety=force)
        if as_json:
            typer.echo(json.dumps({**tick_doc(tick), "exit_code": exit_code(tick.decision)}, indent=2, default=str))
        else:
            console.print(tick_line(tick), highlight=False, markup=False)
            if tick.result is not None:
                for c in tick.result.checks:
                    console.print("  " + check_line(c), highlight=False, markup=False)
        if exit_code(tick.decision) != EXIT_OK:
            # sys.exit, not typer.Exit: friendly_errors treats click's Exit (a RuntimeError) as an error
            sys.exit(exit_code(tick.decision))

    app.command("promote", help="Alias of `advance` (the name Argo Rollouts uses): one step forward if the gates "
                                "pass now. Exit 0 promoted, 3 hold, 4 rollback advised, 1 refused.")(advance)

    @app.command()
    @friendly_errors
    def rollout(service: str, watch: bool = typer.Option(False, "--watch", help="keep watching after the last step"),
                interval: float = typer.Option(None, "--interval", help="seconds between evaluations [plan.interval_s]"),
                max_ticks: int = typer.Option(None, "--max-ticks", help="stop after this many evaluations"),
                force: bool = typer.Option(False, "--force", help="ignore the phase order (needs --reason)"),
                reason: str = typer.Option("", "--reason", "-m", help="why --force (kept in the history)"),
                routes: str = RoutesOpt, state: str = StateOpt, metrics_store: str = MetricsOpt,
                outbox: str = OutboxOpt, admin_url: str = AdminOpt) -> None:
        """The controller: every interval, promote / hold / roll back on the window's evidence.
        A human's shift or rollback meanwhile wins: the next evaluation starts from it.
        With --admin-url each evaluation is made by the proxy's admin process, on its stores."""
        if force and not reason:
            from ..rollout.operations import OperationError

            raise OperationError("--force needs a --reason (it is kept in the audit history)")
        if admin_url or os.environ.get("CHARIOT_MIGRATE_ADMIN_URL"):
            from .control import AdminControl

            remote = AdminControl(admin_url or os.environ["CHARIOT_MIGRATE_ADMIN_URL"])
            admin_loop(lambda: remote.tick(service, reason, force), interval=interval, watch=watch,
                       max_ticks=max_ticks)
            return
        ctl, cfg, plan = build_controller(routes, state, metrics_store, outbox=outbox)
        if service not in cfg.services:
            from ..rollout.operations import OperationError

            raise OperationError(f"unknown service {service!r}; routes.yaml knows: {', '.join(sorted(cfg.services))}")

        def show(t) -> None:
            console.print(f"{time.strftime('%H:%M:%S')} {t.line()}", highlight=False, markup=False)

        ctl.run(service, interval_s=interval, watch=watch, on_tick=show, max_ticks=max_ticks,
                force_phase=force, force_reason=reason)

    @app.command()
    @friendly_errors
    def approve(service: str, step: str = typer.Option(None, "--step", help="default: the next step"),
                reason: str = typer.Option("", "--reason", "-m"),
                routes: str = RoutesOpt, state: str = StateOpt, admin_url: str = AdminOpt) -> None:
        """Approve SERVICE's next plan step (for steps with `approval: true`)."""
        from .control import control

        res = control(routes, state, admin_url).approve(service, step, reason)
        if res["approved"] is None:
            console.print(f"{esc(service)}: plan complete, nothing to approve")
            return
        console.print(f"{esc(service)}: step {esc(res['approved'])} approved")

    @app.command("phase-report")
    @friendly_errors
    def phase_report(service: str, fmt: str = typer.Option("md", "--format", "-f", help="md | html | json"),
                     output: str = typer.Option(None, "-o", "--output"),
                     since: str = typer.Option("7d", "--since"),
                     routes: str = RoutesOpt, state: str = StateOpt, metrics_store: str = MetricsOpt,
                     outbox: str = OutboxOpt) -> None:
        """The evidence that a phase is done: latency, errors, match rates, dual-write health,
        verification, step history and an estimated monthly cost of both sides."""
        from ..rollout.phase_report import build_phase_report, render_html, render_markdown

        if fmt not in ("md", "html", "json"):
            from ..rollout.operations import OperationError

            raise OperationError(f"--format {fmt!r}: use md, html or json")

        ctl, cfg, plan = build_controller(routes, state, metrics_store, outbox=outbox)
        doc = build_phase_report(ctl, cfg, plan, service, since=since)
        text = {"md": render_markdown, "html": render_html,
                "json": lambda d: json.dumps(d, indent=2, default=str)}[fmt](doc)
        if output:
            Path(output).write_text(text)
            console.print(f"wrote {esc(output)}")
        else:
            typer.echo(text)
