"""Where one deployment keeps its local files, and how commands find a running `up` stack.

Every embedded default (state store — with the backfill and verify records —, dual-write outbox, checkpoints,
admin token) lives under one *state directory*, so a stack and the commands that drive it agree
on them without configuration. The directory is, first match wins:

1. ``CHARIOT_MIGRATE_STATE_DIR`` (``up --state-dir`` exports it to everything it starts);
2. the folder of a SQLite state store given as ``--state sqlite:///DIR/state.db``;
3. ``./.chariot-migrate``.

``chariot-migrate up`` writes ``<state dir>/stack.json`` (its AWS endpoint, region, proxy and
admin URLs) once the stack answers, and removes it when it stops; commands run in the stack's
folder (or with ``--state``/``--state-dir``) read it instead of asking for environment variables.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel

DEFAULT_STATE_DIR = ".chariot-migrate"
STACK_FILE = "stack.json"


def state_dir(state_url: str | None = None, explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("CHARIOT_MIGRATE_STATE_DIR")
    if env:
        return Path(env)
    url = state_url or os.environ.get("CHARIOT_MIGRATE_STATE")
    if url and url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return Path(url[len("sqlite:///"):]).parent
    return Path(DEFAULT_STATE_DIR)


def under(name: str, state_url: str | None = None) -> Path:
    """A file or folder of the state directory (e.g. ``under("outbox.db")``)."""
    return state_dir(state_url) / name


class StackInfo(BaseModel):
    """What a running `chariot-migrate up` tells the commands run next to it."""

    aws_endpoint_url: str
    region: str = "us-east-1"
    proxy_url: str = ""
    admin_url: str = ""
    state_url: str = ""
    pid: int = 0
    env: dict[str, str] = {}  # routes.yaml legacy.stack_env, as `up` had them


def write_stack(directory: Path, info: StackInfo) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / STACK_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(info.model_dump_json(indent=2))
    tmp.replace(path)
    return path


def read_stack(directory: Path) -> StackInfo | None:
    """The stack recorded in ``directory``, or None when there is none (or it has stopped)."""
    path = directory / STACK_FILE
    try:
        info = StackInfo.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None
    if info.pid and not _alive(info.pid):
        return None  # a stack killed without cleaning up
    return info


def adopt_stack_env(state_url: str | None = None) -> StackInfo | None:
    """Take the running stack's recorded environment (what its services were started with)
    unless this process sets the same variables itself. Call before importing data mappers."""
    stack = read_stack(state_dir(state_url))
    if stack is not None:
        for k, v in stack.env.items():
            os.environ.setdefault(k, v)
    return stack


def remove_stack(directory: Path) -> None:
    (directory / STACK_FILE).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
