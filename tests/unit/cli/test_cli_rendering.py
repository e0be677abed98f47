"""CLI snapshots with `[`, `]` and `|` in the data: rich must print them, the phase report's HTML and
Markdown must keep their table shape, and `diffs` shows a short example by default."""

from __future__ import annotations

import json
import re
import time
from html.parser import HTMLParser

import pytest
from cli_env import make_cli
from typer.testing import CliRunner

from chariot_migrate.cli.main import app
from chariot_migrate.rollout.controller import RolloutController
from chariot_migrate.rollout.evidence import EvidenceSource, StaticDataEvidence
from chariot_migrate.rollout.operations import Operations
from chariot_migrate.rollout.phase_report import build_phase_report, render_html, render_markdown
from chariot_migrate.rollout.plan import Plan
from chariot_migrate.rollout.store import open_state_store
from chariot_migrate.rollout.windows import SideStats, SQLiteWindowStore, bucket_of
from chariot_migrate.routes.loader import load_table
from chariot_migrate.shadow.records import HitRecord, PairRecord
from chariot_migrate.shadow.report import build_report, render_table
from chariot_migrate.shadow.store import open_diff_store

ROUTES = """\
services:
  account: {phase: 1, url: "http://127.0.0.1:9", slo: {p95_ms: 100}}
  hub: {phase: 2, url: "http://127.0.0.1:9"}
routes:
  - {path: /my, methods: [GET], service: account, match: {query: {key: "^#account#"}}}
  - {path: /my, methods: [GET], service: account, match: {query: {key: "^\\\\[ops\\\\]"}}}
  - {path: /my, methods: [POST], service: account, match: {body: {"node.labels[0]": "^(Risk|Asset)$"}}}
  - {path: /my, methods: [GET], service: hub}
  - {path: "/account/{member}", methods: [POST, DELETE], service: account, match: {path: {member: "@"}}}
plan:
  steps: [shadow, 1, 50, 100]
"""
RULE_ROUTE = "POST|DELETE /account/{member} [path.member~@]"
OTHER_ROUTE = "GET /my [query.key~^\\[ops\\]]"
REASON = "[ops-123] canary | [b]not bold[/b]"


def invoke(*args: str):
    res = CliRunner().invoke(app, list(args))
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res


@pytest.fixture
def env(tmp_path, monkeypatch):
    cli = make_cli(tmp_path, monkeypatch, ROUTES)
    return cli.dir, cli.state_url


def test_routes_show_prints_every_predicate(env):
    tmp_path, _ = env
    out = invoke("routes", "show", str(tmp_path / "routes.yaml")).stdout
    rows = [ln for ln in out.splitlines() if "│ /my" in ln or "│ /account" in ln]
    assert len(rows) == 5, out
    flat = "".join(out.split())  # cells may fold: compare without the table's layout
    for predicate in ("[query.key~^#account#]", "[query.key~^\\[ops\\]]", "[body.node.labels[0]~^(Risk|Asset)$]",
                      "[path.member~@]"):
        assert predicate in flat, predicate
    # the four GET/POST /my rows differ by their predicate cell (the one without has none)
    cells = [ln.split("│")[3].strip() for ln in rows[:4]]
    assert len(set(cells)) == 4, cells
    doc = json.loads(invoke("routes", "show", str(tmp_path / "routes.yaml"), "--json").stdout)
    assert {"query": {"key": "^\\[ops\\]"}} in [r["match"] for r in doc if r["path"] == "/my"]


def test_history_and_status_keep_bracketed_reasons(env):
    tmp_path, state = env
    ops = Operations(open_state_store(state), load_table(str(tmp_path / "routes.yaml")).config,
                     data_evidence=StaticDataEvidence())
    ops.set_shadow("account", 100, actor="[ci] bot", reason=REASON)
    out = invoke("history").stdout
    assert REASON in out and "[ci] bot" in out, out
    assert json.loads(invoke("history", "account", "--json").stdout)[0]["reason"] == REASON
    assert "[ops-123]" in invoke("status").stdout  # the last change's reason


def _pairs(now: float) -> list[PairRecord]:
    out = []
    for i in range(200):
        ms = 5 + (i // 2)  # 5 … 104 ms on new, the same on both routes; legacy 2× that
        route = RULE_ROUTE if i % 2 else OTHER_ROUTE
        hits = [HitRecord("sig[1]|x", "$.items[*].name", "value", "str")] if i % 10 == 0 else []
        ex = [("sig[1]|x", {"method": "GET", "request_path": "/my", "query": "key=%5Bops%5D", "path": "$.items[*].name",
                            "kind": "value", "legacy_value": "[a]", "new_value": "[b]", "primary_side": "legacy",
                            "request_headers": {"x-custom-header": "zzz-long-header"}, "legacy_status": 200,
                            "new_status": 200, "legacy_body": '{"items": [{"name": "[a]"}]}',
                            "new_body": '{"items": [{"name": "[b]"}]}', "legacy_latency_ms": 2 * ms,
                            "new_latency_ms": ms})] if i == 0 else []
        out.append(PairRecord("account", route, now - 30, hits, None, {"legacy": 2 * ms / 1000, "new": ms / 1000},
                              {"legacy": False, "new": False}, ex))
    return out


@pytest.fixture
def report_ctl(env):
    tmp_path, state = env
    cfg = load_table(str(tmp_path / "routes.yaml")).config
    ops = Operations(open_state_store(state), cfg, data_evidence=StaticDataEvidence())
    now = time.time()
    diff = open_diff_store(f"sqlite:///{tmp_path}/shadow.db")
    diff.record(_pairs(now))
    win = SQLiteWindowStore(tmp_path / "m.db")
    win.add({("account", "legacy", int(now) - 40): SideStats(300, 3, {bucket_of(900): 300}),
             ("account", "new", int(now) - 40): SideStats(150, 0, {bucket_of(900): 150})})
    ops.set_shadow("account", 100, actor="alice", reason=REASON)
    ops.shift("account", 100, actor="alice", reason="**100** `now`", force=True)
    return RolloutController(ops, Plan.from_routes(cfg), EvidenceSource(win, diff, verify_dir=tmp_path / "v")), cfg, diff


class Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.strong: list[str] = []
        self._cell: list[str] | None = None
        self._in_strong = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "strong":
            self._in_strong = True

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell or []))
            self._cell = None
        elif tag == "strong":
            self._in_strong = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_strong:
            self.strong.append(data)


def test_phase_report_html_keeps_table_shape_and_markup(report_ctl):
    ctl, cfg, diff = report_ctl
    d = build_phase_report(ctl, cfg, ctl.plan, "account", since="1h")
    page = render_html(d)
    p = Tables()
    p.feed(page)
    assert len(p.tables) == 3  # latency, shadow routes, history
    for table in p.tables:
        widths = {len(row) for row in table}
        assert len(widths) == 1, table  # every row as wide as the header: no `|` split a cell
    routes = {row[0] for row in p.tables[1][1:]}
    assert routes == {RULE_ROUTE, OTHER_ROUTE}
    reasons = [row[4] for row in p.tables[2][1:]]
    assert REASON in reasons and "**100** `now`" in reasons  # user text shown as written, never as markup
    assert "100" in p.strong and "**" not in page.replace("**100** `now`", "")  # the step is bold, not `**100**`
    assert "<b>not bold</b>" not in page


def test_phase_report_latency_agrees_with_report(report_ctl):
    ctl, cfg, diff = report_ctl
    d = build_phase_report(ctl, cfg, ctl.plan, "account", since="1h")
    rep = build_report(diff, service="account", since_s=3600)
    per_route = {r.route: r.latency for r in rep.services[0].routes}
    for side in ("legacy", "new"):
        # both routes carry the same distribution, so the service's percentiles equal each route's
        for q in ("p50_ms", "p95_ms", "p99_ms"):
            assert d["sides"][side][q] == getattr(per_route[RULE_ROUTE][side], q) == \
                getattr(per_route[OTHER_ROUTE][side], q)
    assert 95 < d["sides"]["new"]["p95_ms"] < 115  # ~100 ms, not the window's 1000 ms bucket edge
    assert d["sides"]["new"]["requests"] == 150  # counts still come from the request windows


def test_phase_report_markdown_escapes_pipes(report_ctl):
    ctl, cfg, _ = report_ctl
    md = render_markdown(build_phase_report(ctl, cfg, ctl.plan, "account", since="1h"))
    rows = [ln for ln in md.splitlines() if ln.startswith("| ")]
    for ln in rows:  # unescaped pipes delimit cells: header and rows of a table agree
        assert len(re.findall(r"(?<!\\)\|", ln)) in (9, 5, 6), ln
    assert "`POST\\|DELETE /account/{member} [path.member~@]`" in md
    assert "\\*\\*100\\*\\* \\`now\\`" in md and "\\[ops-123\\] canary \\| \\[b\\]" in md  # user text, not Markdown
    assert "Observed: 450 requests over 40 s" in md or "Observed: 450 requests over 41 s" in md


def test_report_table_keeps_route_names(report_ctl):
    _, _, diff = report_ctl
    text = "".join(render_table(build_report(diff), width=400).split())
    assert "".join(RULE_ROUTE.split()) in text and "".join(OTHER_ROUTE.split()) in text
    assert "sig[1]|x" in text


def test_diffs_shows_a_short_example_and_v_shows_all(report_ctl, env):
    tmp_path, _ = env
    short = invoke("diffs", "--store", f"sqlite:///{tmp_path}/shadow.db").stdout
    assert "sig[1]|x" in short and "$.items[*].name" in short
    assert "GET /my?key=%5Bops%5D" in short  # the request line
    assert 'legacy "[a]"' in short and 'new "[b]"' in short or "legacy [a]" in short and "new [b]" in short
    assert "zzz-long-header" not in short  # headers only with -v
    full = invoke("diffs", "--store", f"sqlite:///{tmp_path}/shadow.db", "-v").stdout
    assert "zzz-long-header" in full and '"legacy_value": "[a]"' in full
    doc = json.loads(invoke("diffs", "--store", f"sqlite:///{tmp_path}/shadow.db", "--json").stdout)
    assert doc[0]["signature"] == "sig[1]|x" and doc[0]["example"]["request_headers"]


def test_phase_report_command_formats(report_ctl, env, monkeypatch):
    tmp_path, _ = env
    monkeypatch.setenv("CHARIOT_MIGRATE_SHADOW_STORE", f"sqlite:///{tmp_path}/shadow.db")
    doc = json.loads(invoke("phase-report", "account", "-f", "json", "--since", "1h").stdout)
    assert doc["sides"]["new"]["requests"] == 150 and 95 < doc["sides"]["new"]["p95_ms"] < 115
    assert invoke("phase-report", "account", "-f", "html", "-o", str(tmp_path / "r.html")).exit_code == 0
    p = Tables()
    p.feed((tmp_path / "r.html").read_text())
    assert {row[0] for row in p.tables[1][1:]} == {RULE_ROUTE, OTHER_ROUTE}
    assert invoke("phase-report", "account", "-f", "pdf").exit_code == 1
