"""plan, advance, rollout, approve, phase-report: the gated, phased migration."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from .common import AdminOpt, RoutesOpt, StateOpt, console, friendly_errors, routes_path

MetricsOpt = typer.Option(None, "--metrics-store", help="request windows [routes.yaml plan.metrics_store, "
                                                         "env CHARIOT_MIGRATE_METRICS_STORE]")
OutboxOpt = typer.Option(None, "--outbox", help="dual-write outbox URL [env CHARIOT_MIGRATE_OUTBOX]")


def build_controller(routes: str | None, state: str | None, metrics_store: str | None = None,
                     shadow_store: str | None = None, outbox: str | None = None, ignores: str = "shadow-ignores.yaml",
                     actor: str | None = None):
    from ..rollout.controller import RolloutController
    from ..rollout.evidence import EvidenceSource, outbox_backlog
    from ..rollout.operations import Operations
    from ..rollout.plan import Plan
    from ..rollout.store import open_state_store
    from ..rollout.windows import open_window_store
    from ..routes.loader import load_table
    from ..shadow.config import ShadowConfig
    from ..shadow.ignores import load_ignores
    from ..shadow.store import open_diff_store

    cfg = load_table(routes_path(routes)).config
    try:
        plan = Plan.from_routes(cfg)
    except ValueError as e:
        from .common import ControlError

        raise ControlError(f"routes.yaml plan: {e}") from None
    try:
        windows = open_window_store(metrics_store or os.environ.get("CHARIOT_MIGRATE_METRICS_STORE")
                                    or plan.metrics_store)
    except ValueError as e:
        from .common import ControlError

        raise ControlError(str(e)) from None
    shadow_cfg = ShadowConfig.from_section(cfg.shadow)
    diff = open_diff_store(shadow_store or os.environ.get("CHARIOT_MIGRATE_SHADOW_STORE") or shadow_cfg.store)
    backlog = None
    outbox_url = outbox or os.environ.get("CHARIOT_MIGRATE_OUTBOX")
    if outbox_url or Path(".chariot-migrate/outbox.db").exists():
        from ..dual_write.outbox import open_outbox

        backlog = outbox_backlog(open_outbox(outbox_url))
    evidence = EvidenceSource(windows, diff, backlog=backlog, ignores=load_ignores(ignores),
                              shadow_min_samples=shadow_cfg.min_samples, shadow_confidence=shadow_cfg.confidence)
    ctl = RolloutController(Operations(open_state_store(state), cfg), plan, evidence,
                            **({"actor": actor} if actor else {}))
    return ctl, cfg, plan


def register(app: typer.Typer) -> None:
    @app.command("plan")
    @friendly_errors
    def show_plan(routes: str = RoutesOpt, state: str = StateOpt, metrics_store: str = MetricsOpt,
                  outbox: str = OutboxOpt) -> None:
        """The phases in order: where each service stands and what blocks its next step."""
        ctl, cfg, plan = build_controller(routes, state, metrics_store, outbox=outbox)
        t = Table(title="migration plan")
        for col in ("phase", "service", "step", "next", "verdict", "what blocks it (measured vs threshold)"):
            t.add_column(col)
        for name, svc in sorted(cfg.services.items(), key=lambda kv: kv[1].phase):
            tick = ctl.evaluate(name)
            why = tick.reason if tick.decision != "promote" else "-"
            if tick.result is not None and tick.decision != "promote":
                why = "\n".join(c.line() for c in tick.result.checks if not c.ok) or tick.reason
            t.add_row(str(svc.phase), name, tick.step, tick.target or "-", tick.decision, Text(why))
        console.print(t)

    @app.command()
    @friendly_errors
    def advance(service: str, force: bool = typer.Option(False, "--force", help="ignore the phase order"),
                reason: str = typer.Option("", "--reason", "-m"),
                routes: str = RoutesOpt, state: str = StateOpt, metrics_store: str = MetricsOpt,
                outbox: str = OutboxOpt) -> None:
        """One step forward if the gates pass now; otherwise say which gate blocks it and why.
        Taken by you (your name in the history); lifts a halt after an automatic rollback."""
        from ..rollout.operations import default_actor

        ctl, cfg, plan = build_controller(routes, state, metrics_store, outbox=outbox, actor=default_actor())
        if service not in cfg.services:
            from ..rollout.operations import OperationError

            raise OperationError(f"unknown service {service!r}; routes.yaml knows: {', '.join(sorted(cfg.services))}")
        if force and not reason:
            from ..rollout.operations import OperationError

            raise OperationError("--force needs a --reason (it is kept in the audit history)")
        tick = ctl.tick(service, force_phase=force, force_reason=reason, record=False, resume=True)
        console.print(tick.line(), highlight=False, markup=False)
        if tick.result is not None:
            for c in tick.result.checks:
                console.print("  " + c.line(), highlight=False, markup=False)
        if tick.decision not in ("promote", "done"):
            # sys.exit, not typer.Exit: friendly_errors treats click's Exit (a RuntimeError) as an error
            sys.exit(2 if tick.decision == "hold" else 3)

    @app.command()
    @friendly_errors
    def rollout(service: str, watch: bool = typer.Option(False, "--watch", help="keep watching after the last step"),
                interval: float = typer.Option(None, "--interval", help="seconds between evaluations [plan.interval_s]"),
                max_ticks: int = typer.Option(None, "--max-ticks", help="stop after this many evaluations"),
                force: bool = typer.Option(False, "--force", help="ignore the phase order (needs --reason)"),
                reason: str = typer.Option("", "--reason", "-m", help="why --force (kept in the history)"),
                routes: str = RoutesOpt, state: str = StateOpt, metrics_store: str = MetricsOpt,
                outbox: str = OutboxOpt) -> None:
        """The controller: every interval, promote / hold / roll back on the window's evidence.
        A human's shift or rollback meanwhile wins: the next evaluation starts from it."""
        ctl, cfg, plan = build_controller(routes, state, metrics_store, outbox=outbox)
        if service not in cfg.services:
            from ..rollout.operations import OperationError

            raise OperationError(f"unknown service {service!r}; routes.yaml knows: {', '.join(sorted(cfg.services))}")

        def show(t) -> None:
            console.print(f"{time.strftime('%H:%M:%S')} {t.line()}", highlight=False, markup=False)

        if force and not reason:
            from ..rollout.operations import OperationError

            raise OperationError("--force needs a --reason (it is kept in the audit history)")
        ctl.run(service, interval_s=interval, watch=watch, on_tick=show, max_ticks=max_ticks,
                force_phase=force, force_reason=reason)

    @app.command()
    @friendly_errors
    def approve(service: str, step: str = typer.Option(None, "--step", help="default: the next step"),
                reason: str = typer.Option("", "--reason", "-m"),
                routes: str = RoutesOpt, state: str = StateOpt, admin_url: str = AdminOpt) -> None:
        """Approve SERVICE's next plan step (for steps with `approval: true`)."""
        from ..rollout.plan import next_step

        ctl, cfg, plan = build_controller(routes, state)
        st = ctl._state(service) if service in cfg.services else None
        if st is None:
            from ..rollout.operations import OperationError

            raise OperationError(f"unknown service {service!r}; routes.yaml knows: {', '.join(sorted(cfg.services))}")
        steps = plan.steps_for(service)
        if step is not None and step not in steps:
            from ..rollout.operations import OperationError

            raise OperationError(f"--step {step!r} is not a step of {service}'s plan ({', '.join(steps)})")
        target = step or next_step(st, steps)
        if target is None:
            console.print(f"{service}: plan complete, nothing to approve")
            return
        ctl.ops.approve(service, target, reason=reason)
        console.print(f"{service}: step {target} approved")

    @app.command("phase-report")
    @friendly_errors
    def phase_report(service: str, fmt: str = typer.Option("md", "--format", "-f", help="md | html"),
                     output: str = typer.Option(None, "-o", "--output"),
                     since: str = typer.Option("7d", "--since"),
                     routes: str = RoutesOpt, state: str = StateOpt, metrics_store: str = MetricsOpt,
                     outbox: str = OutboxOpt) -> None:
        """The evidence that a phase is done: latency, errors, match rates, dual-write health,
        verification, step history and an estimated monthly cost of both sides."""
        from ..rollout.phase_report import build_phase_report, render_html, render_markdown

        if fmt not in ("md", "html"):
            from ..rollout.operations import OperationError

            raise OperationError(f"--format {fmt!r}: use md or html")

        ctl, cfg, plan = build_controller(routes, state, metrics_store, outbox=outbox)
        doc = build_phase_report(ctl, cfg, plan, service, since=since)
        text = render_markdown(doc) if fmt == "md" else render_html(doc)
        if output:
            Path(output).write_text(text)
            console.print(f"wrote {output}")
        else:
            typer.echo(text)
