"""What every command shares: where routes.yaml and the state store are, and one-line errors."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console

from ..rollout.operations import OperationError
from ..rollout.store import StateStoreError
from ..routes.loader import RoutesError

# Wide tables when piped (CI logs, files); the real width on a terminal.
console = Console(width=None if sys.stdout.isatty() else 160, emoji=False)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160, emoji=False)

RoutesOpt = typer.Option(None, "--routes", "-r", help="routes.yaml [env CHARIOT_MIGRATE_ROUTES, default ./routes.yaml]")
StateOpt = typer.Option(None, "--state", help="state store URL: sqlite:///path.db or redis://host:6379/0 "
                                              "[env CHARIOT_MIGRATE_STATE, default sqlite:///.chariot-migrate/state.db]")
AdminOpt = typer.Option(None, "--admin-url", help="go through a running proxy's admin API instead of the store "
                                                  "[env CHARIOT_MIGRATE_ADMIN_URL; token from CHARIOT_MIGRATE_ADMIN_TOKEN]")


def routes_path(value: str | None) -> str:
    return value or os.environ.get("CHARIOT_MIGRATE_ROUTES") or "routes.yaml"


F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """Turn expected failures into one red sentence and exit code 1 — never a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (RoutesError, OperationError, StateStoreError) as e:
            err_console.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except (ControlError, RuntimeError) as e:
            err_console.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


class ControlError(Exception):
    pass
