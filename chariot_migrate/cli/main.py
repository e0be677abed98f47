"""The ``chariot-migrate`` command: one Typer app, one module per command group."""

from __future__ import annotations

import typer

from . import dual_write_cmd, plan_cmd, proxy_cmd, rollout_cmd, shadow_cmd, up_cmd
from .routes_cmd import routes_app
from .service_cmd import service_app

app = typer.Typer(
    name="chariot-migrate",
    help="Move a Lambda API onto containers, one service at a time, without customers noticing.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(routes_app, name="routes")
app.add_typer(service_app, name="service")
proxy_cmd.register(app)
rollout_cmd.register(app)
up_cmd.register(app)
shadow_cmd.register(app)
plan_cmd.register(app)
dual_write_cmd.register(app)

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
