"""shift, shadow, status, pin, unpin, rollback, history."""

from __future__ import annotations

import json
import time

import typer
from rich.table import Table

from ..rollout.state import HistoryEntry
from .common import AdminOpt, RoutesOpt, StateOpt, console, friendly_errors
from .control import control


def _ago(ts: float) -> str:
    if not ts:
        return "never"
    d = max(0, time.time() - ts)
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if d >= n:
            return f"{int(d // n)}{unit} ago"
    return f"{int(d)}s ago"


def _pct(v: float) -> str:
    return f"{v:g}%"


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly_errors
    def shift(service: str, percent: float = typer.Argument(..., help="share of accounts on the new side, 0–100, 0.01 steps"),
              reason: str = typer.Option("", "--reason", "-m", help="why (kept in the audit history)"),
              force: bool = typer.Option(False, "--force", help="override guards (recorded in history)"),
              routes: str = RoutesOpt, state: str = StateOpt, admin_url: str = AdminOpt) -> None:
        """Send PERCENT % of SERVICE's accounts to the new side (sticky, monotonic)."""
        s = control(routes, state, admin_url).shift(service, percent, reason, force)
        console.print(f"{service}: {_pct(s['percent_bp'] / 100)} new (stage {s['stage']}, version {s['version']})")

    @app.command()
    @friendly_errors
    def shadow(service: str, percent: float = typer.Argument(..., help="share of accounts whose safe requests are shadowed"),
               reason: str = typer.Option("", "--reason", "-m"),
               routes: str = RoutesOpt, state: str = StateOpt, admin_url: str = AdminOpt) -> None:
        """Copy PERCENT % of SERVICE's accounts' safe requests to the other side and compare."""
        s = control(routes, state, admin_url).shadow(service, percent, reason)
        console.print(f"{service}: shadow {_pct(s['shadow_bp'] / 100)} (stage {s['stage']})")

    @app.command()
    @friendly_errors
    def rollback(service: str, reason: str = typer.Option("", "--reason", "-m"),
                 routes: str = RoutesOpt, state: str = StateOpt, admin_url: str = AdminOpt) -> None:
        """Send all of SERVICE's accounts back to legacy at once (pins stay)."""
        s = control(routes, state, admin_url, need_routes=False).rollback(service, reason)
        console.print(f"{service}: rolled back to 0% new (stage {s['stage']})")

    @app.command()
    @friendly_errors
    def pin(service: str, account: str, to: str = typer.Option(..., "--to", help="legacy or new"),
            reason: str = typer.Option("", "--reason", "-m"),
            routes: str = RoutesOpt, state: str = StateOpt, admin_url: str = AdminOpt) -> None:
        """Always serve ACCOUNT from one side, whatever the percentage."""
        control(routes, state, admin_url).pin(service, account, to, reason)
        console.print(f"{service}: {account.lower()} pinned to {to}")

    @app.command()
    @friendly_errors
    def unpin(service: str, account: str, routes: str = RoutesOpt, state: str = StateOpt,
              admin_url: str = AdminOpt) -> None:
        """Remove ACCOUNT's pin; it follows the percentage again."""
        control(routes, state, admin_url).unpin(service, account)
        console.print(f"{service}: {account.lower()} unpinned")

    @app.command()
    @friendly_errors
    def status(as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
               routes: str = RoutesOpt, state: str = StateOpt, admin_url: str = AdminOpt) -> None:
        """Where every service stands: phase, stage, % new, shadow %, pins, last change."""
        doc = control(routes, state, admin_url).status()
        if as_json:
            typer.echo(json.dumps(doc, indent=2))
            return
        t = Table(title=f"rollout state (version {doc['version']})")
        for col in ("phase", "service", "stage", "% new", "shadow %", "dual write", "pins", "last change"):
            t.add_column(col)
        for s in doc["services"]:
            pins = ", ".join(f"{a}→{v}" for a, v in s["pins"].items()) or "-"
            last = f"{_ago(s['updated_at'])} by {s['updated_by']}" if s["updated_at"] else "never"
            if s.get("reason"):
                last += f": {s['reason']}"
            t.add_row(str(s["phase"] or "-"), s["service"], s["stage"], _pct(s["percent"]), _pct(s["shadow_percent"]),
                      s["dual_write"], pins, last)
        console.print(t)

    @app.command()
    @friendly_errors
    def history(service: str = typer.Argument(None, help="one service, or all"),
                limit: int = typer.Option(50, "--limit", "-n"),
                as_json: bool = typer.Option(False, "--json"),
                routes: str = RoutesOpt, state: str = StateOpt, admin_url: str = AdminOpt) -> None:
        """The audit trail: who changed what, when, from → to, and why."""
        entries = control(routes, state, admin_url, need_routes=False).history(service, limit)
        if as_json:
            typer.echo(json.dumps(entries, indent=2))
            return
        t = Table(title=f"history{' of ' + service if service else ''}")
        for col in ("#", "when (UTC)", "service", "who", "action", "change", "why"):
            t.add_column(col)
        for e in entries:
            h = HistoryEntry.model_validate(e)
            t.add_row(str(h.id), time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(h.at)), h.service, h.actor,
                      h.action, h.summary(), h.reason or "-")
        console.print(t)
