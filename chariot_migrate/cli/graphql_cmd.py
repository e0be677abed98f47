"""`graphql schema`: the /graphql schema the proxy serves, as SDL."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import RoutesOpt, console, esc, friendly_errors, routes_path

graphql_app = typer.Typer(help="The GraphQL layer served at /graphql.", no_args_is_help=True)


@graphql_app.command("schema")
@friendly_errors
def schema(routes: str = RoutesOpt,
           output: str = typer.Option(None, "-o", "--output", help="write to this file instead of stdout")) -> None:
    """Print the schema (SDL) of the endpoint routes.yaml names in bff.graphql.endpoint."""
    from ..proxy.bff import load_endpoint
    from ..rollout.operations import OperationError
    from ..routes.loader import load_table

    gql = load_table(routes_path(routes)).config.bff.graphql
    if gql is None:
        raise OperationError("routes.yaml serves no GraphQL: add bff.graphql.endpoint "
                             "(e.g. chariot_migrate.gateway.schema:endpoint)")
    text = load_endpoint(gql.endpoint).sdl()
    if output:
        Path(output).write_text(text + "\n")
        console.print(f"wrote {esc(output)}")
    else:
        typer.echo(text)
