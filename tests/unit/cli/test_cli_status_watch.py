"""`status [SERVICE] --watch`: a live view redrawn every --interval until Ctrl-C (or --count)."""

from __future__ import annotations

import io
import json
import time

import pytest
from cli_env import make_cli
from rich.console import Console

from chariot_migrate.cli import rollout_cmd
from chariot_migrate.rollout.evidence import StaticDataEvidence
from chariot_migrate.rollout.operations import Operations
from chariot_migrate.rollout.windows import SideStats, SQLiteWindowStore, bucket_of
from chariot_migrate.routes.loader import load_table

ROUTES = """\
services:
  account: {phase: 1, url: "http://127.0.0.1:9", dual_write: "on"}
routes:
  - {path: /items, methods: [GET], service: account}
plan:
  steps: [shadow, 1, 50, 100]
  gates: {window_s: 600, min_samples: 20, max_error_rate: 0.05}
"""


@pytest.fixture
def cli(tmp_path, monkeypatch):
    c = make_cli(tmp_path, monkeypatch, ROUTES)
    c.ops = Operations(c.store(), load_table(str(tmp_path / "routes.yaml")).config, data_evidence=StaticDataEvidence())
    c.ops.set_shadow("account", 100, actor="alice", reason="[ops-7] shadow")
    c.ops.shift("account", 1, actor="alice", reason="canary", force=True)
    SQLiteWindowStore(tmp_path / "m.db").add({("account", "new", int(time.time()) + 1): SideStats(40, 2, {bucket_of(9): 40}),
                                              ("account", "legacy", int(time.time()) + 1): SideStats(400, 4, {})})
    return c


def test_status_service_once_shows_gates_errors_and_backlog(cli):
    out = cli("status", "account").stdout
    for part in ("account (phase 1)", "1 → next 50", "errors new", "2 of 40 (5.00%)", "4 of 400 (1.00%)",
                 "backlog 0, dead letters 0", "no shadow comparisons", "gates for 50", "samples", "canary"):
        assert part in out, part
    doc = json.loads(cli("status", "account", "--json").stdout)
    assert doc["sides"]["new"] == {"requests": 40, "errors": 2, "error_rate": 0.05}
    assert {c["name"] for c in doc["gates"]["checks"]} >= {"samples", "new-side error rate"}


def test_watch_redraws_until_count_and_shows_changes(cli, monkeypatch):
    redraws = []

    def between(_s: float) -> None:  # what an operator does while the view is open
        redraws.append(1)
        if len(redraws) == 1:
            cli.ops.shift("account", 50, actor="bob", reason="[ops-8] half", force=True)

    monkeypatch.setattr(rollout_cmd.time, "sleep", between)
    r = cli("status", "account", "--watch", "--interval", "0.01", "--count", "3")
    assert r.exit_code == 0, r.stdout
    blocks = r.stdout.split("--- ")[1:]
    assert len(blocks) == 3 and len(redraws) == 2  # three redraws, a pause between each
    assert "1% new" in blocks[0] and "50% new" in blocks[1] and "[ops-8] half" in blocks[1]


def test_watch_stops_quietly_on_ctrl_c(cli, monkeypatch):
    def interrupt(_s: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(rollout_cmd.time, "sleep", interrupt)
    r = cli("status", "--watch")
    assert r.exit_code == 0 and r.stdout.count("--- ") == 1 and "rollout state" in r.stdout


def test_watch_json_is_one_document_per_redraw(cli, monkeypatch):
    monkeypatch.setattr(rollout_cmd.time, "sleep", lambda _s: None)
    lines = cli("status", "account", "--watch", "--count", "2", "--json").stdout.splitlines()
    assert len(lines) == 2 and all(json.loads(ln)["service"] == "account" for ln in lines)


def test_watch_on_a_terminal_uses_rich_live(cli, monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(rollout_cmd, "console", Console(file=buf, force_terminal=True, width=120))
    monkeypatch.setattr(rollout_cmd.time, "sleep", lambda _s: None)
    assert cli("status", "account", "--watch", "--count", "3").exit_code == 0
    out = buf.getvalue()
    assert "\x1b[2K" in out or "\x1b[1A" in out  # redrawn in place, not appended
    assert "--- " not in out and "Ctrl-C stops" in out and "gates for 50" in out


def test_service_view_refuses_the_admin_api(cli):
    r = cli("status", "account", "--admin-url", "http://127.0.0.1:9")
    assert r.exit_code == 1 and "without --admin-url" in r.stderr
