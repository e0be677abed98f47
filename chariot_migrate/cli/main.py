"""The ``chariot-migrate`` command: one Typer app, one module per command group."""

from __future__ import annotations

import typer

from . import (
    controller_cmd,
    dual_write_cmd,
    plan_cmd,
    prepare_cmd,
    proxy_cmd,
    rollout_cmd,
    shadow_cmd,
    up_cmd,
)
from .graphql_cmd import graphql_app
from .routes_cmd import routes_app
from .service_cmd import service_app

app = typer.Typer(
    name="chariot-migrate",
    help="Move a Lambda API onto containers, one service at a time, without customers noticing.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("chariot-migrate")
        except PackageNotFoundError:  # pragma: no cover — run from a checkout without installing
            v = "unknown"
        typer.echo(f"chariot-migrate {v}")
        raise typer.Exit()


@app.callback()
def _root(_: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="print the version and exit")) -> None:
    """Move a Lambda API onto containers, one service at a time, without customers noticing."""
app.add_typer(routes_app, name="routes")
app.add_typer(service_app, name="service")
app.add_typer(graphql_app, name="graphql")
proxy_cmd.register(app)
rollout_cmd.register(app)
up_cmd.register(app)
shadow_cmd.register(app)
plan_cmd.register(app)
dual_write_cmd.register(app)
prepare_cmd.register(app)
controller_cmd.register(app)

DUAL_WRITE_SUBCOMMANDS = {"set", "status", "dead", "retry", "drain", "worker", "--help"}


def main() -> None:
    """Console entry point. Allows the natural `dual-write SERVICE on|off` spelling."""
    import sys

    argv = sys.argv
    if len(argv) > 2 and argv[1] == "dual-write" and argv[2] not in DUAL_WRITE_SUBCOMMANDS:
        argv.insert(2, "set")
    app()


if __name__ == "__main__":
    main()
