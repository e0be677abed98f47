"""`shift --dry-run` (nothing recorded, the safety rule and phase order evaluated), `promote` /
`abort` as aliases, and `undo` (back one plan step through the same safety checks)."""

from __future__ import annotations

import json

import pytest
from cli_env import make_cli

ROUTES = """\
services:
  account: {phase: 1, url: "http://127.0.0.1:9"}
  risk: {phase: 2, url: "http://127.0.0.1:9", dual_write: "on"}  # no data mapper: dual write is all it needs
routes:
  - {path: /items, methods: [GET], service: account}
  - {path: /risk, methods: [GET], service: risk}
plan:
  steps: [shadow, 1, 50, 100]
"""


@pytest.fixture
def cli(tmp_path, monkeypatch):
    return make_cli(tmp_path, monkeypatch, ROUTES)


def percent(cli, service: str = "account") -> float:
    s = cli.store().get(service)
    return s.percent if s else 0.0


def test_shift_dry_run_evaluates_the_safety_rule_and_records_nothing(cli):
    r = cli("shift", "account", "25", "--dry-run")
    assert r.exit_code == 1, r.stdout
    assert "dry run, nothing changed" in r.stdout and "0% new" in r.stdout and "25% new" in r.stdout
    assert "account is not prepared: dual write is off" in r.stdout and "would be refused" in r.stdout
    assert "plan gates for the next step (shadow)" in r.stdout
    assert cli.store().get("account") is None and cli.store().history("account", 10) == []  # nothing written
    doc = json.loads(cli("shift", "account", "25", "--dry-run", "--json").stdout)
    assert doc["would_apply"] is False and doc["safety"]["checked"] and not doc["safety"]["ok"]
    assert doc["safety"]["missing"] == ["dual write is off"] and doc["after"]["percent_bp"] == 2500
    forced = cli("shift", "account", "25", "--dry-run", "--force", "--reason", "drill")
    assert forced.exit_code == 0 and "forced past" in forced.stdout and "would apply" in forced.stdout
    assert cli("shift", "account", "25", "--dry-run", "--force").exit_code == 1  # --force needs a reason
    assert cli.store().history("account", 10) == []
    # the real shift agrees with its dry run
    assert cli("shift", "account", "25").exit_code == 1
    r = cli("shift", "account", "25", "--force", "--reason", "drill", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["percent_bp"] == 2500 and percent(cli) == 25


def test_shift_dry_run_shows_the_phase_order(cli):
    r = cli("shift", "risk", "5", "--dry-run", "--json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 1 and doc["phase_blockers"] == ["account (phase 1) is at 0%"]
    assert doc["safety"]["ok"]  # risk itself is prepared: only the phase order refuses it
    assert [p.split(" (")[0] for p in doc["refused_because"]] == ["risk cannot leave shadow while an earlier phase is unfinished"]
    assert cli("shift", "risk", "5", "--dry-run", "--force", "--reason", "vendor").exit_code == 0


def test_dry_run_refuses_the_admin_api(cli):
    r = cli("shift", "account", "5", "--dry-run", "--admin-url", "http://127.0.0.1:9")
    assert r.exit_code == 1 and "--dry-run evaluates against the state store" in r.stderr


def test_promote_and_abort_are_aliases(cli):
    r = cli("promote", "account")
    assert r.exit_code == 0 and "promote" in r.stdout and cli.store().get("account").shadow_percent == 100
    assert cli("promote", "account").exit_code == 3  # hold, exactly like advance
    assert "Alias of `advance`" in cli("promote", "--help").stdout
    cli("shift", "account", "50", "--force", "--reason", "drill")
    r = cli("abort", "account")  # dual write is off: writes made on new could not reach legacy
    assert r.exit_code == 1 and percent(cli) == 50
    assert cli("abort", "account", "--force", "--reason", "drill").exit_code == 0 and percent(cli) == 0


def test_undo_goes_back_one_plan_step(cli):
    cli("shadow", "risk", "100")
    assert cli("shift", "risk", "30", "--force", "--reason", "phase order").exit_code == 0
    seen = []
    for _ in range(4):
        r = cli("undo", "risk")
        assert r.exit_code == 0, r.stdout + r.stderr
        s = cli.store().get("risk")
        seen.append((s.percent, s.shadow_percent))
    assert seen == [(1, 100), (0, 100), (0, 0), (0, 0)]  # 30 % → step 1 → shadow → legacy → nothing to do
    assert "nothing to undo" in cli("undo", "risk").stdout
    actions = [h.action for h in cli.store().history("risk", 10)]
    assert actions[-3:] == ["undo → 1", "undo → shadow", "undo → legacy"]


def test_undo_goes_through_the_safety_rule(cli):
    cli("shift", "account", "50", "--force", "--reason", "drill")
    assert json.loads(cli("undo", "account", "--dry-run", "--json").stdout)["after"]["percent_bp"] == 100
    r = cli("undo", "account")
    assert r.exit_code == 1 and "dual write is off" in r.stderr and percent(cli) == 50
    assert cli("undo", "account", "--force").exit_code == 1  # --force needs a reason
    r = cli("undo", "account", "--force", "--reason", "drill", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["undone_to"] == "1" and percent(cli) == 1
    assert cli.store().history("account", 1)[-1].action == "undo → 1 (forced)"
