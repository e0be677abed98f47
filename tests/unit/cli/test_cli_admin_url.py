"""Every command that changes live state takes --admin-url and then goes through the proxy's admin
API (the admin process's store, its safety checks), not the local store."""

from __future__ import annotations

import json

import pytest
import typer
from cli_env import make_cli
from fastapi.testclient import TestClient

from chariot_migrate.cli import control as control_mod
from chariot_migrate.cli.main import app
from chariot_migrate.proxy.admin import create_admin_app
from chariot_migrate.rollout.store import open_state_store

ROUTES = """\
services:
  account: {phase: 1, url: "http://127.0.0.1:9"}
routes:
  - {path: /items, methods: [GET], service: account}
plan:
  steps: [shadow, 1, 50, 100]
"""
ADMIN = "http://admin.test"
STATE_CHANGING = ["shift", "shadow", "rollback", "abort", "undo", "pin", "unpin", "approve", "dual-write set", "advance",
                  "promote", "rollout"]


@pytest.fixture
def cli(tmp_path, monkeypatch):
    c = make_cli(tmp_path, monkeypatch, ROUTES)
    admin_store = f"sqlite:///{tmp_path}/admin-state.db"  # not the CLI's own --state
    c.admin_store = lambda: open_state_store(admin_store)
    api = create_admin_app(tmp_path / "routes.yaml", open_state_store(admin_store), token="tok")
    monkeypatch.setenv("CHARIOT_MIGRATE_ADMIN_TOKEN", "tok")
    monkeypatch.setattr(control_mod.httpx, "Client",
                        lambda base_url, headers, **_: TestClient(api, base_url=base_url, headers=headers))
    return c


def _command(path: str):
    group = typer.main.get_command(app)
    for part in path.split():
        group = group.commands[part]
    return group


@pytest.mark.parametrize("name", STATE_CHANGING)
def test_every_state_changing_command_takes_admin_url(name):
    assert "--admin-url" in [opt for p in _command(name).params for opt in p.opts]


def test_changes_go_through_the_admin_api(cli):
    a = ("--admin-url", ADMIN)
    assert cli("shadow", "account", "100", "-m", "[ops-9] look", *a).exit_code == 0
    assert cli.store().get("account") is None  # the local store saw nothing
    s = cli.admin_store().get("account")
    assert s.shadow_percent == 100 and s.reason == "[ops-9] look"
    r = cli("shift", "account", "50", *a)
    assert r.exit_code == 1 and "account is not prepared: dual write is off" in r.stderr  # the admin's safety rule
    assert cli("dual-write", "set", "account", "on", *a).exit_code == 0
    assert cli.admin_store().get("account").dual_write == "on"
    assert cli("shift", "account", "50", "--force", "--reason", "drill", *a).exit_code == 0
    assert cli("undo", "account", *a).exit_code == 0 and cli.admin_store().get("account").percent == 1
    cli("shadow", "account", "0", *a)
    assert cli("undo", "account", *a).exit_code == 0  # 1 % → the shadow step: 0 % new, shadow 100 %
    s = cli.admin_store().get("account")
    assert (s.percent, s.shadow_percent) == (0, 100)
    assert cli("shift", "account", "50", "--force", "--reason", "drill", *a).exit_code == 0
    assert cli("pin", "account", "Bob@x.com", "--to", "new", "--force", "--reason", "vip", *a).exit_code == 0
    assert cli.admin_store().get("account").pins == {"bob@x.com": "new"}
    assert cli("unpin", "account", "bob@x.com", "--force", "--reason", "done", *a).exit_code == 0
    assert cli("abort", "account", *a).exit_code == 0 and cli.admin_store().get("account").percent == 0
    r = cli("approve", "account", *a)
    assert r.exit_code == 0 and "step 1 approved" in r.stdout
    assert cli.admin_store().get("account").approved_step == "1"
    assert cli("approve", "account", "--step", "7", *a).exit_code == 1
    history = cli("history", "account", *a).stdout
    assert "[ops-9] look" in history and "shift (forced)" in history and "drill" in history
    assert cli.store().get("account") is None  # still: everything went to the admin's store


def test_approve_direct_and_plan_complete(cli):
    r = cli("approve", "account")
    assert r.exit_code == 0 and "step shadow approved" in r.stdout
    assert cli.store().get("account").approved_step == "shadow"


def test_advance_is_evaluated_by_the_admin_process_on_its_stores(cli):
    a = ("--admin-url", ADMIN)
    r = cli("advance", "account", "--json", *a)
    assert r.exit_code == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["decision"] == "promote" and doc["applied"] == "shadow" and doc["exit_code"] == 0
    assert cli.admin_store().get("account").shadow_percent == 100
    assert cli.store().get("account") is None  # nothing in the local store
    r = cli("promote", "account", *a)  # shadow → 1 %: no shadow pairs yet, so a gate holds it
    assert r.exit_code == 3, r.stdout + r.stderr
    assert "[hold]" in r.stdout and "FAIL" in r.stdout
    assert cli.admin_store().get("account").percent == 0
    assert cli("advance", "nope", *a).exit_code == 1


def test_rollout_loop_is_evaluated_by_the_admin_process_and_records_its_holds(cli):
    a = ("--admin-url", ADMIN)
    r = cli("rollout", "account", "--max-ticks", "2", "--interval", "0.01", *a)
    assert r.exit_code == 0, r.stdout + r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert len(lines) == 2, r.stdout
    assert "account: legacy → shadow [promote]" in lines[0]  # the first tick promotes to the shadow step
    assert "[hold]" in lines[1]  # no shadow pairs yet: the second holds
    s = cli.admin_store().get("account")
    assert s.shadow_percent == 100 and s.percent == 0
    assert cli.store().get("account") is None  # the local store saw nothing
    # Unlike `advance`, the controller's tick records the hold in the admin's audit history.
    history = cli("history", "account", "--json", *a)
    assert history.exit_code == 0, history.stderr
    actions = [h["action"] for h in json.loads(history.stdout)]
    assert actions == ["promote → shadow", "hold at shadow"], actions
    assert cli("rollout", "nope", "--max-ticks", "1", *a).exit_code == 1
    r = cli("rollout", "account", "--force", "--max-ticks", "1", *a)
    assert r.exit_code == 1 and "--force needs a --reason" in r.stderr
