"""--json on the read commands, --version, shell completion."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from cli_env import make_cli

from chariot_migrate.dual_write.outbox import open_outbox
from chariot_migrate.dual_write.records import PrimaryResult, ReplayRecord, ReplayRequest

ROUTES = """\
services:
  account: {phase: 1, url: "http://127.0.0.1:9"}
routes:
  - {path: /items, methods: [GET, POST], service: account}
"""


@pytest.fixture
def run(tmp_path, monkeypatch):
    return make_cli(tmp_path, monkeypatch, ROUTES)


def test_version(run):
    r = run("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"chariot-migrate {version('chariot-migrate')}"


def test_shell_completion_is_on(run, tmp_path):
    assert "--install-completion" in run("--help").stdout
    exe = Path(sys.executable).parent / "chariot-migrate"
    env = {**os.environ, "_CHARIOT_MIGRATE_COMPLETE": "complete_bash", "COMP_WORDS": "chariot-migrate sta",
           "COMP_CWORD": "1"}
    out = subprocess.run([str(exe)], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.split() == ["status"], out.stderr


def test_status_json(run):
    doc = json.loads(run("status", "--json").stdout)
    assert [s["service"] for s in doc["services"]] == ["account"] and doc["services"][0]["percent"] == 0


def test_dual_write_dead_json_shows_what_failed_without_bodies(run, tmp_path):
    outbox_url = f"sqlite:///{tmp_path}/outbox.db"

    async def make_dead() -> str:
        ob = open_outbox(outbox_url)
        try:
            r = await ob.append(ReplayRecord(service="account", account="a@x.com", target="new",
                                             request=ReplayRequest(method="POST", path="/items",
                                                                   body=b'{"secret-ish": "[body]"}'),
                                             primary=PrimaryResult(status=200, body=b"{}")))
            await ob.claim("w", 1, lease_s=30)
            await ob.nack(r.id, "w", error="HTTP 400: [bad]", next_attempt_at=0, dead=True)
            return r.id
        finally:
            await ob.aclose()

    rid = asyncio.run(make_dead())
    r = run("dual-write", "dead", "--outbox", outbox_url, "--json")
    (doc,) = json.loads(r.stdout)
    assert doc["id"] == rid and doc["method"] == "POST" and doc["path"] == "/items"
    assert doc["last_error"] == "HTTP 400: [bad]" and doc["attempts"] == 1 and doc["target"] == "new"
    assert "[body]" not in r.stdout  # bodies stay in the outbox
    text = run("dual-write", "dead", "--outbox", outbox_url).stdout
    assert rid in text and "HTTP 400: [bad]" in text
    assert json.loads(run("dual-write", "dead", "--outbox", f"sqlite:///{tmp_path}/empty.db", "--json").stdout) == []
