"""report, diffs (+ diffs ignore), replay: what shadow comparison found."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import typer

from .common import (
    ControlError,
    ProgressReport,
    StateOpt,
    console,
    err_console,
    esc,
    friendly_errors,
    routes_path,
)

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
        err_console.print(f"wrote {esc(output)}")
    else:
        typer.echo(text)


CONTEXT_CHARS = 160  # of each side's body in the default `diffs` view


def _short(value: object, limit: int = CONTEXT_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def example_summary(ex: dict) -> list[str]:
    """An example in three lines: the request line, the differing values, a short context."""
    query = ex.get("query") or ""
    lines = [f"{ex.get('method', '?')} {ex.get('request_path', '?')}{'?' + query if query else ''}"
             f"  (primary {ex.get('primary_side', '?')})",
             f"{ex.get('path', '?')}: legacy {_short(ex.get('legacy_value'))}  →  new {_short(ex.get('new_value'))}"]
    for side in ("legacy", "new"):
        lat = ex.get(f"{side}_latency_ms")
        lines.append(f"{side:<6} {ex.get(f'{side}_status', '?')}"
                     + (f" in {lat:g} ms" if isinstance(lat, int | float) else "")
                     + f": {_short(ex.get(f'{side}_body', ''))}")
    return lines


def _with_store(state: str | None, fn):
    from ..rollout.store import open_state_store

    st = open_state_store(state)
    try:
        return fn(st)
    finally:
        st.close()


def _ignores(path: str, state: str | None) -> list:
    """Reviewed ignore rules: the state store's and the file's. A SQLite store that does not
    exist yet is not created by a read-only report (it has no rules)."""
    from ..rollout.store import state_url_from_env
    from ..shadow.ignores import load_ignores

    url = state_url_from_env(state)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return load_ignores(path)
    return _with_store(url, lambda st: load_ignores(path, store=st))


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly_errors
    def report(service: str = typer.Option(None, "--service", "-s"), route: str = typer.Option(None, "--route"),
               since: str = typer.Option(None, "--since", help="e.g. 15m, 1h, 7d"),
               fmt: str = typer.Option("table", "--format", "-f", help="table | json | md | html"),
               output: str = typer.Option(None, "-o", "--output", help="write to this file"),
               store: str = StoreOpt, ignores: str = IgnoresOpt, state: str = StateOpt,
               routes: str = typer.Option(None, "--routes", "-r")) -> None:
        """Per service and route: pairs compared, match rates (raw and noise-adjusted), top
        mismatch signatures with examples, latency p50/p95/p99 legacy vs new, error rates."""
        from ..shadow.report import build_report, parse_since

        rep = build_report(_store(store, routes), service=service, route=route,
                           since_s=parse_since(since) if since else None, ignores=_ignores(ignores, state))
        _emit(_render(rep, fmt), output)

    diffs_app = typer.Typer(help="Recent mismatch examples, and reviewed ignore rules.", invoke_without_command=True)
    app.add_typer(diffs_app, name="diffs")

    @diffs_app.callback()
    @friendly_errors
    def diffs(ctx: typer.Context, service: str = typer.Option(None, "--service", "-s"),
              route: str = typer.Option(None, "--route"), since: str = typer.Option(None, "--since"),
              limit: int = typer.Option(20, "-n", "--limit"),
              verbose: bool = typer.Option(False, "--verbose", "-v",
                                           help="the whole example: every request header, both bodies"),
              as_json: bool = typer.Option(False, "--json", help="machine-readable: signatures with full examples"),
              store: str = StoreOpt, ignores: str = IgnoresOpt, state: str = StateOpt,
              routes: str = typer.Option(None, "--routes", "-r")) -> None:
        """List mismatch signatures (most frequent first), each with its example: the request line,
        the differing values and a short context of both answers (`-v`: every header and the bodies)."""
        if ctx.invoked_subcommand:
            return
        from ..shadow.report import build_report, parse_since

        rep = build_report(_store(store, routes), service=service, route=route,
                           since_s=parse_since(since) if since else None, ignores=_ignores(ignores, state), top=limit)
        found = [(svc.service, r.route, sig) for svc in rep.services for r in svc.routes for sig in r.signatures]
        if as_json:
            typer.echo(json.dumps([{"service": s, "route": r, **sig.model_dump()} for s, r, sig in found],
                                  indent=2, default=str))
            return
        for svc_name, route_name, sig in found:
            verdict = "ignored" if sig.ignored else sig.classification
            console.print(f"[bold]{esc(sig.signature)}[/bold] {esc(svc_name)} {esc(route_name)}  {esc(sig.kind)} at "
                          f"{esc(sig.path)} ({sig.count}× = {sig.share:.1%}, {verdict})", highlight=False, soft_wrap=True)
            if sig.example:
                if verbose:
                    console.print(esc(json.dumps(sig.example, indent=2, default=str, ensure_ascii=False)),
                                  highlight=False)
                else:
                    for line in example_summary(sig.example):
                        console.print("  " + esc(line), highlight=False, soft_wrap=True)
        if not found:
            console.print("no differences recorded")

    @diffs_app.command("ignore")
    @friendly_errors
    def ignore(signature: str, reason: str = typer.Option(..., "--reason", "-m", help="why this is acceptable"),
               expires: str = typer.Option(None, "--expires", help="YYYY-MM-DD; the rule stops applying after it"),
               ignores: str = IgnoresOpt, state: str = StateOpt) -> None:
        """Record a reviewed decision that SIGNATURE is not a real difference: in the state store
        (what the gates and the controller read) and in the reviewed export file (commit it)."""
        from pydantic import ValidationError

        from ..shadow.ignores import IgnoreRule, add_ignore

        try:
            rule = IgnoreRule(signature=signature, reason=reason,
                              expires=date.fromisoformat(expires) if expires else None)
        except (ValidationError, ValueError) as e:
            msg = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
            raise typer.BadParameter(msg.removeprefix("Value error, ")) from None
        rules = _with_store(state, lambda st: add_ignore(rule, ignores, store=st))
        console.print(f"{rule.signature} ignored in the state store ({len(rules)} rule(s), exported to {ignores}); "
                      "commit the file", highlight=False, markup=False)

    @diffs_app.command("import-ignores")
    @friendly_errors
    def import_cmd(file: str = typer.Argument("shadow-ignores.yaml", help="the reviewed rules file"),
                   state: str = StateOpt) -> None:
        """Load a reviewed shadow-ignores.yaml into the state store (e.g. after a merge in git)."""
        from ..shadow.ignores import import_ignores

        rules = _with_store(state, lambda st: import_ignores(st, file))
        console.print(f"imported {len(rules)} rule(s) from {file} into the state store", highlight=False, markup=False)

    @diffs_app.command("export-ignores")
    @friendly_errors
    def export_cmd(file: str = typer.Argument("shadow-ignores.yaml", help="where to write the rules"),
                   state: str = StateOpt) -> None:
        """Write the state store's ignore rules to a file for review (commit it)."""
        from ..shadow.ignores import save_ignores, store_ignores

        rules = sorted(_with_store(state, store_ignores), key=lambda r: r.signature)
        save_ignores(rules, file)
        console.print(f"exported {len(rules)} rule(s) to {file}", highlight=False, markup=False)

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
        try:
            with open(file, encoding="utf-8") as f:
                total = sum(1 for line in f if line.strip())
        except OSError as e:
            raise ControlError(f"cannot read the capture {file}: {e.strerror}") from None
        with ProgressReport(f"replay {file} against {against}", unit="requests", total=total,
                            enabled=output is not None or fmt == "table") as bar:
            rep = run_replay(file, against, headers=headers, progress=bar.update)
        _emit(_render(rep, fmt), output)
        if fail_under is not None:
            rates = [r.adjusted_match_rate for s in rep.services for r in s.routes if r.adjusted_match_rate is not None]
            worst = min(rates) if rates else 1.0
            if worst < fail_under:
                err_console.print(f"[red]noise-adjusted match rate {worst:.2%} is below {fail_under:.2%}[/red]")
                raise typer.Exit(1)
