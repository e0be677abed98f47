"""report, diffs (+ diffs ignore), replay: what shadow comparison found."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import typer

from .common import console, err_console, friendly_errors, routes_path

StoreOpt = typer.Option(None, "--store", help="diff store URL [routes.yaml shadow.store, env CHARIOT_MIGRATE_SHADOW_STORE, "
                                              "default sqlite:///.chariot-migrate/shadow.db]")
IgnoresOpt = typer.Option("shadow-ignores.yaml", "--ignores", help="reviewed ignore rules (keep the file in git)")


def _store(url: str | None, routes: str | None):
    import os

    from ..routes.loader import RoutesError, load_table
    from ..shadow.config import ShadowConfig
    from ..shadow.store import open_diff_store

    url = url or os.environ.get("CHARIOT_MIGRATE_SHADOW_STORE")
    if not url:
        try:
            url = ShadowConfig.from_section(load_table(routes_path(routes)).config.shadow).store
        except RoutesError:
            url = None
    return open_diff_store(url)


def _render(report, fmt: str) -> str:
    from ..shadow import report as rp

    renderers = {"table": rp.render_table, "json": rp.render_json, "md": rp.render_markdown, "html": rp.render_html}
    if fmt not in renderers:
        raise typer.BadParameter(f"--format must be one of {', '.join(renderers)}")
    return renderers[fmt](report)


def _emit(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text)
        err_console.print(f"wrote {output}")
    else:
        typer.echo(text)


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly_errors
    def report(service: str = typer.Option(None, "--service", "-s"), route: str = typer.Option(None, "--route"),
               since: str = typer.Option(None, "--since", help="e.g. 15m, 1h, 7d"),
               fmt: str = typer.Option("table", "--format", "-f", help="table | json | md | html"),
               output: str = typer.Option(None, "-o", "--output", help="write to this file"),
               store: str = StoreOpt, ignores: str = IgnoresOpt,
               routes: str = typer.Option(None, "--routes", "-r")) -> None:
        """Per service and route: pairs compared, match rates (raw and noise-adjusted), top
        mismatch signatures with examples, latency p50/p95/p99 legacy vs new, error rates."""
        from ..shadow.ignores import load_ignores
        from ..shadow.report import build_report, parse_since

        rep = build_report(_store(store, routes), service=service, route=route,
                           since_s=parse_since(since) if since else None, ignores=load_ignores(ignores))
        _emit(_render(rep, fmt), output)

    diffs_app = typer.Typer(help="Recent mismatch examples, and reviewed ignore rules.", invoke_without_command=True)
    app.add_typer(diffs_app, name="diffs")

    @diffs_app.callback()
    @friendly_errors
    def diffs(ctx: typer.Context, service: str = typer.Option(None, "--service", "-s"),
              route: str = typer.Option(None, "--route"), since: str = typer.Option(None, "--since"),
              limit: int = typer.Option(20, "-n", "--limit"), store: str = StoreOpt, ignores: str = IgnoresOpt,
              routes: str = typer.Option(None, "--routes", "-r")) -> None:
        """List mismatch signatures with a redacted example each (most frequent first)."""
        if ctx.invoked_subcommand:
            return
        from ..shadow.ignores import load_ignores
        from ..shadow.report import build_report, parse_since

        rep = build_report(_store(store, routes), service=service, route=route,
                           since_s=parse_since(since) if since else None, ignores=load_ignores(ignores), top=limit)
        shown = 0
        for svc in rep.services:
            for r in svc.routes:
                for sig in r.signatures:
                    shown += 1
                    state = "ignored" if sig.ignored else sig.classification
                    console.print(f"[bold]{sig.signature}[/bold] {svc.service} {r.route}  {sig.kind} at {sig.path} "
                                  f"({sig.count}× = {sig.share:.1%}, {state})", highlight=False)
                    if sig.example:
                        console.print(json.dumps(sig.example, indent=2, default=str)[:2000], highlight=False)
        if not shown:
            console.print("no differences recorded")

    @diffs_app.command("ignore")
    @friendly_errors
    def ignore(signature: str, reason: str = typer.Option(..., "--reason", "-m", help="why this is acceptable"),
               expires: str = typer.Option(None, "--expires", help="YYYY-MM-DD; the rule stops applying after it"),
               ignores: str = IgnoresOpt) -> None:
        """Record a reviewed decision that SIGNATURE is not a real difference."""
        from pydantic import ValidationError

        from ..shadow.ignores import IgnoreRule, add_ignore

        try:
            rule = IgnoreRule(signature=signature, reason=reason,
                              expires=date.fromisoformat(expires) if expires else None)
        except (ValidationError, ValueError) as e:
            msg = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
            raise typer.BadParameter(msg.removeprefix("Value error, ")) from None
        rules = add_ignore(rule, ignores)
        console.print(f"{rule.signature} ignored ({len(rules)} rule(s) in {ignores}); commit the file")

    @app.command()
    @friendly_errors
    def replay(file: str = typer.Argument(..., help="JSONL written by `proxy --capture`"),
               against: str = typer.Option(..., "--against", help="base URL of the build to test"),
               header: list[str] = typer.Option([], "--header", "-H", help="'Name: value' added to every request"),
               fmt: str = typer.Option("table", "--format", "-f"), output: str = typer.Option(None, "-o"),
               fail_under: float = typer.Option(None, "--fail-under",
                                                help="exit 1 if the noise-adjusted match rate is below this (0–1)")) -> None:
        """Re-send captured requests to a new build and report differences (shadow testing in CI)."""
        from ..shadow.capture import replay as run_replay

        headers = {}
        for h in header:
            k, _, v = h.partition(":")
            headers[k.strip()] = v.strip()
        rep = run_replay(file, against, headers=headers)
        _emit(_render(rep, fmt), output)
        if fail_under is not None:
            rates = [r.adjusted_match_rate for s in rep.services for r in s.routes if r.adjusted_match_rate is not None]
            worst = min(rates) if rates else 1.0
            if worst < fail_under:
                err_console.print(f"[red]noise-adjusted match rate {worst:.2%} is below {fail_under:.2%}[/red]")
                raise typer.Exit(1)
