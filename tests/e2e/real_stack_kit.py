"""What the "real stack" e2e modules share: a test-local routes.yaml, the chariot-migrate CLI run
against one stack (its routes copy, state store and relative stores), the legacy table and the
services' tables on the stack's moto, and identities made with legacy's provisioning helper.

`up` and every process it starts run in the stack's workdir, so the relative stores of routes.yaml
(`.chariot-migrate/shadow.db`, `outbox.db`, `metrics.db`) live there: CLI commands run with that cwd.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml
from conftest import deep_merge
from guard_harness import CHARIOT_MIGRATE, ROUTES, Guard, Stack

REGION = "us-east-1"


def routes_copy(dest: Path, overrides: dict[str, Any]) -> Path:
    """The repo's routes.yaml with `overrides` deep-merged in, written to `dest`."""
    doc = deep_merge(yaml.safe_load(ROUTES.read_text()), overrides)
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def cli_env(stack: Stack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRAETORIAN_CLI_", "AWS_", "CHARIOT_"))}
    env.update({"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": REGION,
                "CHARIOT_MIGRATE_LEGACY_ENDPOINT_URL": stack.moto, "COLUMNS": "200",
                # what a user in the stack's folder gets from its stack.json: its outbox, records, token
                "CHARIOT_MIGRATE_STATE_DIR": str(stack.state_dir)})
    return env


def cm(stack: Stack, *args: str, ok: bool | None = True, timeout: float = 120,
       state: bool = True) -> subprocess.CompletedProcess:
    """`chariot-migrate ARGS --routes <effective> [--state <stack store>]` in the stack's workdir."""
    extra = ["--routes", str(stack.routes)] + (["--state", stack.state_url] if state else [])
    p = subprocess.run([str(CHARIOT_MIGRATE), *args, *extra], cwd=stack.workdir, env=cli_env(stack),
                       capture_output=True, text=True, timeout=timeout)
    if ok is True:
        assert p.returncode == 0, f"chariot-migrate {' '.join(args)} → {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    elif ok is False:
        assert p.returncode != 0, f"chariot-migrate {' '.join(args)} unexpectedly succeeded\n{p.stdout[-2000:]}"
    return p


def cm_json(stack: Stack, *args: str, state: bool = True) -> Any:
    return json.loads(cm(stack, *args, state=state).stdout)


def dynamodb(stack: Stack):
    import boto3

    return boto3.resource("dynamodb", region_name=REGION, endpoint_url=stack.moto,
                          aws_access_key_id="local", aws_secret_access_key="local")


def legacy_table(stack: Stack):
    return dynamodb(stack).Table(os.environ.get("CHARIOT_TABLE", "chariot"))


def identity(stack: Stack, home: Path, email: str, name: str = "e2e") -> Guard:
    """A user with its own API key, written by legacy's provisioning helper into the legacy table."""
    key_id, secret = api_key(stack, email, name)
    return Guard(stack, home, {"PRAETORIAN_CLI_API_KEY_ID": key_id, "PRAETORIAN_CLI_API_KEY_SECRET": secret,
                               "PRAETORIAN_CLI_USERNAME": email})


def api_key(stack: Stack, email: str, name: str = "e2e") -> tuple[str, str]:
    from chariot_migrate.legacy.resources import create_api_key

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    return create_api_key(email, name=name, endpoint_url=stack.moto, region=REGION)


def status_of(stack: Stack, service: str) -> dict[str, Any]:
    doc = cm_json(stack, "status", "--json")
    return next(s for s in doc["services"] if s["service"] == service)
