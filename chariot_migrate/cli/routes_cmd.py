"""routes validate / routes show."""

from __future__ import annotations

import typer
from rich.table import Table

from ..routes.loader import load_table
from ..routes.models import _describe
from .common import console, esc, friendly_errors

routes_app = typer.Typer(help="Inspect and validate routes.yaml.", no_args_is_help=True)


@routes_app.command("validate")
@friendly_errors
def validate(path: str = typer.Argument("routes.yaml")) -> None:
    """Check PATH; exit 1 with a one-line message naming the line if anything is wrong."""
    t = load_table(path)
    console.print(f"{esc(path)}: ok — {len(t.routes)} routes, {len(t.config.services)} services")


@routes_app.command("show")
@friendly_errors
def show(path: str = typer.Argument("routes.yaml"),
         as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Print the route table: which service owns which route, and the legacy function behind it."""
    t = load_table(path)
    if as_json:
        import json

        rows = []
        for r in t.routes:
            m = t.config.routes[r.index].match
            rows.append({"id": r.id, "methods": sorted(r.methods), "path": r.template,
                         "match": None if m.is_empty() else m.model_dump(exclude_defaults=True),
                         "service": r.service, "function": r.function, "public": r.public})
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=esc(path))
    for col in ("methods", "path", "match", "service", "legacy function", "public"):
        table.add_column(col, overflow="fold")  # never cut a predicate: it is what tells the rows apart
    for r in t.routes:
        m = t.config.routes[r.index].match
        table.add_row(*map(esc, (",".join(sorted(r.methods)), r.template, "" if m.is_empty() else _describe(m),
                                 r.service, r.function or "-", "yes" if r.public else "")))
    console.print(table)


def _register_export() -> None:
    from . import export_cmd

    export_cmd.register(routes_app)


_register_export()
