"""`advance`'s exit codes are distinct from click's usage error (2): 0 promoted or nothing to do,
3 hold, 4 rollback advised, 1 refused. And `plan` summarises long lists of blockers."""

from __future__ import annotations

import json
import time

import pytest
from cli_env import make_cli

from chariot_migrate.cli.plan_cmd import EXIT_HOLD, EXIT_OK, EXIT_ROLLBACK, check_line, summarise
from chariot_migrate.rollout.gates import Check
from chariot_migrate.rollout.windows import SideStats, SQLiteWindowStore, bucket_of

ROUTES = """\
services:
  account: {phase: 1, url: "http://127.0.0.1:9", slo: {p95_ms: 1000}}
routes:
  - {path: /items, methods: [GET], service: account}
plan:
  steps: [shadow, 1, 50, 100]
  gates: {window_s: 60, min_samples: 20, max_error_rate: 0.05}
"""


@pytest.fixture
def cli(tmp_path, monkeypatch):
    return make_cli(tmp_path, monkeypatch, ROUTES)


def test_the_codes_are_distinct_and_not_click_usage_error():
    assert len({EXIT_OK, EXIT_HOLD, EXIT_ROLLBACK, 1, 2}) == 5 and (EXIT_OK, EXIT_HOLD, EXIT_ROLLBACK) == (0, 3, 4)


def test_advance_exit_codes(cli):
    r = cli("advance", "account")
    assert r.exit_code == 0 and "promote" in r.stdout, r.stdout  # legacy → shadow needs no evidence
    r = cli("advance", "account")
    assert r.exit_code == 3 and "FAIL samples" in r.stdout, r.stdout  # no traffic: hold
    r = cli("advance", "account", "--json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 3 and doc["decision"] == "hold" and doc["exit_code"] == 3
    assert any(c["name"] == "samples" and not c["ok"] for c in doc["checks"])
    assert cli("shift", "account", "1", "--force", "--reason", "test").exit_code == 0
    # the new side fails half its requests after the shift: rolling back is advised
    SQLiteWindowStore(cli.dir / "m.db").add({("account", "new", int(time.time()) + 1):
                                              SideStats(100, 50, {bucket_of(10): 100})})
    r = cli("advance", "account")
    assert r.exit_code == 4 and "[rollback]" in r.stdout and "FAIL new-side error rate" in r.stdout, r.stdout
    assert json.loads(cli("advance", "account", "--json").stdout)["decision"] == "rollback"
    r = cli("advance", "nope")
    assert r.exit_code == 1 and "unknown service" in r.stderr
    assert cli("advance").exit_code == 2  # a usage error stays click's own code


def test_plan_summarises_long_lists_and_json_keeps_them():
    sigs = ", ".join(f"sig{i:02d}" for i in range(40))
    line = check_line(Check("no new mismatch signature", False, sigs, "none", "hold"))
    assert line == "FAIL no new mismatch signature: 40: sig00, sig01, sig02 (+37 more) (threshold none)"
    assert summarise("a, b, c") == "a, b, c" and summarise("12.5%") == "12.5%"


def test_plan_json(cli):
    doc = json.loads(cli("plan", "--json").stdout)
    (svc,) = doc["services"]
    assert svc["service"] == "account" and svc["phase"] == 1 and svc["next"] == "shadow"
    assert svc["decision"] == "promote"
