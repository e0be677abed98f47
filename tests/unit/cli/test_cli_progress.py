"""Progress of long work: a rich bar on a terminal, plain lines elsewhere; wired into data verify,
data repair and replay (prepare shows backfill's and verify's)."""

from __future__ import annotations

import io
import json

import pytest
from cli_env import make_cli
from rich.console import Console

from chariot_migrate.cli import common
from chariot_migrate.cli import dual_write_cmd as dw
from chariot_migrate.dual_write import data
from chariot_migrate.dual_write.data import RepairResult, VerifyResult
from chariot_migrate.shadow import capture
from chariot_migrate.shadow.report import Report

ROUTES = """\
services:
  account: {phase: 1, url: "http://127.0.0.1:9"}
routes:
  - {path: /items, methods: [GET], service: account}
"""


def test_plain_lines_when_not_a_terminal(capsys):
    with common.ProgressReport("verify [x]", unit="items read") as p:
        for i in range(1, 4):
            p.update(i, total=3)
    assert capsys.readouterr().out.splitlines() == ["verify [x]: 3/3 items read (0.0s), done"]
    with common.ProgressReport("copy", every_s=0) as p:
        p.update(1)
        p.update(2)
    assert [ln.split(" (")[0] for ln in capsys.readouterr().out.splitlines()] == ["copy: 1 items", "copy: 2 items",
                                                                                   "copy: 2 items"]
    with common.ProgressReport("quiet", enabled=False) as p:
        p.update(5)
    assert capsys.readouterr().out == ""


def test_an_eta_from_the_rate_so_far(capsys):
    assert common.eta_s(25, 100, 5.0) == 15.0
    assert common.eta_s(0, 100, 5.0) is None and common.eta_s(10, None, 5.0) is None
    assert common.eta_s(120, 100, 5.0) == 0.0  # the total was an estimate
    with common.ProgressReport("backfill x", unit="items scanned", total=1000, every_s=0) as p:
        p.update(10)
    first, last = capsys.readouterr().out.splitlines()
    assert first.startswith("backfill x: 10/1000 items scanned (") and ", ETA " in first
    assert "ETA" not in last and last.endswith(", done")


def test_a_bar_on_a_terminal(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(common, "console", Console(file=buf, force_terminal=True, width=100))
    with common.ProgressReport("verify account", unit="items read", total=10) as p:
        p.update(10)
    out = buf.getvalue()
    assert "━" in out and "10/10" in out and "\x1b[" in out and ", done" not in out and "ETA" in out


@pytest.fixture
def cli(tmp_path, monkeypatch):
    c = make_cli(tmp_path, monkeypatch, ROUTES)
    monkeypatch.setattr(dw, "_migration", lambda cfg, service, state=None: object())
    monkeypatch.setattr(dw, "_tables", lambda cfg, mig, state=None, endpoint_url=None: (None, {}))
    monkeypatch.setattr(dw, "_tables_changed", lambda *a: None)

    def fake_verify(mig, legacy, new, rate_limit_per_s=None, progress=None, **_):
        for n in (100, 200, 250):
            progress(n)
        return VerifyResult(service="account", legacy_items=250, matched=250)

    monkeypatch.setattr(data, "verify", fake_verify)
    return c


def test_data_verify_reports_progress_but_not_in_json(cli):
    r = cli("data", "verify", "account")
    assert r.exit_code == 0, r.stdout
    assert "verify account: 250 items read" in r.stdout and ", done" in r.stdout and "250 matched" in r.stdout
    r = cli("data", "verify", "account", "--json")
    assert json.loads(r.stdout)["matched"] == 250  # stdout is the document alone


def test_data_repair_reports_both_passes(cli, monkeypatch):
    def fake_repair(mig, found, legacy, new, source="legacy", dry_run=False, progress=None, **_):
        for i in range(1, 3):
            progress(i, 2)
        return RepairResult(service="account", source=source, dry_run=dry_run)

    monkeypatch.setattr(data, "repair", fake_repair)
    r = cli("data", "repair", "account", "--source", "legacy", "--dry-run")
    assert r.exit_code == 0, r.stdout
    assert "repair account: verify: 250 items read" in r.stdout
    assert "repair account: plan from legacy: 2/2 keys" in r.stdout


def test_replay_reports_progress(cli, monkeypatch):
    cap = cli.dir / "cap.jsonl"
    cap.write_text("{}\n{}\n{}\n")

    def fake_replay(file, against, headers=None, progress=None):
        for i in range(1, 4):
            progress(i)
        return Report(generated_at="now", since_s=None, confidence=0.95, min_samples=10, services=[])

    monkeypatch.setattr(capture, "replay", fake_replay)
    r = cli("replay", str(cap), "--against", "http://127.0.0.1:9")
    assert r.exit_code == 0, r.stdout
    assert f"replay {cap} against http://127.0.0.1:9: 3/3 requests" in r.stdout
    r = cli("replay", str(cap), "--against", "http://127.0.0.1:9", "-f", "json")
    assert json.loads(r.stdout)["services"] == []
    assert cli("replay", str(cli.dir / "missing.jsonl"), "--against", "http://x").exit_code == 1
