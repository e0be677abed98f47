"""What every command shares: where routes.yaml and the state store are, and one-line errors."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console

from ..markup import esc
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
        import click

        try:
            return fn(*args, **kwargs)
        except click.exceptions.Exit:
            raise  # a command's own exit code (click's Exit is a RuntimeError: let it through first)
        except (RoutesError, OperationError, StateStoreError) as e:
            err_console.print(f"[red]error:[/red] {esc(e)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except (ControlError, RuntimeError) as e:
            err_console.print(f"[red]error:[/red] {esc(e)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            sys.exit(130)
        except Exception as e:
            message = _aws_error(e)
            if message is None:
                raise
            err_console.print(f"[red]error:[/red] {esc(message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]  # wraps() keeps fn's signature; mypy cannot see that


class ControlError(Exception):
    pass


AWS_HINT = ("run this in the folder of a `chariot-migrate up` stack (or pass its --state, "
            "or set CHARIOT_MIGRATE_STATE_DIR), or pass --endpoint-url and set AWS credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)")


def _aws_error(e: Exception) -> str | None:
    """botocore's failures as one sentence (they are not ours to raise, only to explain)."""
    try:
        from botocore import exceptions as bx
    except ImportError:  # pragma: no cover — boto3 is a dependency
        return None
    if isinstance(e, bx.NoCredentialsError | bx.PartialCredentialsError):
        return f"no AWS credentials: {AWS_HINT}"
    if isinstance(e, bx.EndpointConnectionError):
        return f"the AWS endpoint does not answer ({e}); is the stack running? {AWS_HINT}"
    if isinstance(e, bx.ClientError):
        err = e.response.get("Error", {})
        return f"AWS refused: {err.get('Code', '?')}: {err.get('Message', e)}"
    if isinstance(e, bx.BotoCoreError):
        return f"AWS: {e}"
    return None


def eta_s(completed: int, total: int | None, elapsed_s: float) -> float | None:
    """Seconds left at the rate so far (pure); None without a total or any progress yet. A total
    that is an estimate (DynamoDB's ItemCount) may be passed: then it says 0 rather than less."""
    if not total or completed <= 0 or elapsed_s <= 0:
        return None
    return max(0.0, (total - completed) * elapsed_s / completed)


class ProgressReport:
    """Progress of long work: a rich bar when stdout is a terminal; elsewhere (logs, CI, tests) a
    plain line every ``every_s`` seconds and one when the work ends, so output stays readable.

    ``with ProgressReport("verify account", unit="items read") as p: … p.update(n, total=t)``
    """

    def __init__(self, description: str, *, unit: str = "items", total: int | None = None,
                 every_s: float = 5.0, enabled: bool = True) -> None:
        self.description, self.unit, self.total, self.every_s = description, unit, total, every_s
        self.enabled = enabled
        self.completed = 0
        self._bar: Any = None
        self._task: Any = None
        self._start = self._last = 0.0

    def __enter__(self) -> ProgressReport:
        import time

        self._start = self._last = time.monotonic()
        if self.enabled and console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn(esc(self.unit)), TimeElapsedColumn(), TextColumn("ETA"),
                                 TimeRemainingColumn(), console=console)
            self._bar.start()
            self._task = self._bar.add_task(esc(self.description), total=self.total)
        return self

    def update(self, completed: int, *, total: int | None = None, description: str | None = None) -> None:
        import time

        self.completed = completed
        self.total = total if total is not None else self.total
        self.description = description or self.description
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, total=self.total, description=esc(self.description))
        elif self.enabled and time.monotonic() - self._last >= self.every_s:
            self._line()

    def _line(self, end: str = "") -> None:
        import time

        self._last = time.monotonic()
        of = f"/{self.total}" if self.total is not None else ""
        elapsed = self._last - self._start
        eta = eta_s(self.completed, self.total, elapsed) if not end else None
        console.print(esc(f"{self.description}: {self.completed}{of} {self.unit} "
                          f"({elapsed:.1f}s{f', ETA {eta:.0f}s' if eta is not None else ''}){end}"),
                      highlight=False, soft_wrap=True)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self.enabled:
            self._line(", done" if exc[0] is None else ", interrupted")
