import json
import random
import re
import time
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from chariot_migrate.shadow.ignores import IgnoreRule, add_ignore, load_ignores
from chariot_migrate.shadow.records import HitRecord, PairRecord
from chariot_migrate.shadow.report import (
    build_report,
    render_html,
    render_json,
    render_markdown,
    render_table,
)
from chariot_migrate.shadow.store import SQLiteDiffStore

NOW = (time.time() // 60) * 60 + 5
TS = HitRecord("111111111111", "$.updated", "value", "str-timestamp")
PRICE = HitRecord("222222222222", "$.price", "value", "float")


def populate(store, n=1000, real_rate=0.05, aa_every=5, seed=1):
    rng = random.Random(seed)
    batch, seen = [], set()
    for i in range(n):
        hits = [TS]
        if rng.random() < real_rate:
            hits.append(PRICE)
        aa = frozenset({"$.updated"}) if i % aa_every == 0 else None
        ex = [(h.signature, {"path": h.path, "legacy_value": 1, "new_value": 2}) for h in hits if h.signature not in seen]
        seen.update(h.signature for h in hits)
        batch.append(PairRecord("asset", "GET /asset", NOW - (i % 3) * 60, hits, aa,
                                {"legacy": 0.02 + rng.random() * 0.01, "new": 0.005}, {"legacy": False, "new": i % 100 == 0}, ex))
    store.record(batch)


@pytest.fixture
def store(tmp_path):
    s = SQLiteDiffStore(tmp_path / "r.db")
    populate(s)
    yield s
    s.close()


def test_report_rates_classes_latency_errors(store):
    rep = build_report(store, now=NOW + 30)
    r = rep.route("asset", "GET /asset")
    assert r.pairs == 1000 and r.exact_matches == 0 and r.exact_match_rate == 0
    # The timestamp differs in A/A too → noise → forgiven; only price remains.
    by_sig = {s.signature: s for s in r.signatures}
    assert by_sig[TS.signature].classification == "noise"
    assert by_sig[PRICE.signature].classification == "difference"
    assert r.adjusted_match_rate == pytest.approx(1 - by_sig[PRICE.signature].share)
    assert 0.93 < r.adjusted_match_rate < 0.97
    assert r.real_signatures == 1 and r.signatures[0].signature == PRICE.signature
    assert by_sig[TS.signature].noise_rate == 1.0 and by_sig[PRICE.signature].noise_rate == 0.0
    assert r.latency["legacy"].p50_ms > r.latency["new"].p99_ms
    assert r.error_rate == {"legacy": 0.0, "new": 0.01}
    assert by_sig[PRICE.signature].example is not None
    assert len(r.timeline) == 3 and sum(p.pairs for p in r.timeline) == 1000
    svc = rep.services[0]
    assert svc.service == "asset" and svc.pairs == 1000 and svc.adjusted_match_rate == pytest.approx(r.adjusted_match_rate)


def test_window_and_filters(store):
    assert build_report(store, since_s=30, now=NOW + 30).services[0].pairs == 334
    assert build_report(store, service="nope").services == []
    assert build_report(store, route="GET /asset").services[0].routes[0].route == "GET /asset"


def test_ignored_signature_is_shown_and_excluded_from_the_adjusted_rate(store, tmp_path):
    path = tmp_path / "shadow-ignores.yaml"
    assert load_ignores(path) == []
    add_ignore(IgnoreRule(signature=PRICE.signature, reason="float formatting, accepted", expires=date.today() + timedelta(days=7)), path)
    add_ignore(IgnoreRule(signature="3" * 12, reason="old", expires=date.today() - timedelta(days=1)), path)
    rules = load_ignores(path)
    assert [r.signature for r in rules] == [PRICE.signature, "3" * 12]
    r = build_report(store, ignores=rules).services[0].routes[0]
    price = next(s for s in r.signatures if s.signature == PRICE.signature)
    assert price.ignored and price.ignore_reason == "float formatting, accepted"
    assert r.adjusted_match_rate == 1.0 and r.real_signatures == 0
    # Replacing by signature keeps one rule per signature.
    add_ignore(IgnoreRule(signature=PRICE.signature, reason="new reason"), path)
    assert [r.reason for r in load_ignores(path) if r.signature == PRICE.signature] == ["new reason"]


def test_bad_ignore_files_fail_with_a_clear_reason(tmp_path):
    p = tmp_path / "i.yaml"
    p.write_text("ignores:\n  - signature: xyz\n    reason: r\n")
    with pytest.raises(ValueError, match=r"ignores\[0\]\.signature"):
        load_ignores(p)
    p.write_text("ignores:\n  - signature: aaaaaaaaaaaa\n")
    with pytest.raises(ValueError, match="reason"):
        load_ignores(p)


def test_renderers(store):
    rep = build_report(store, now=NOW + 30)
    data = json.loads(render_json(rep))
    assert data["services"][0]["routes"][0]["pairs"] == 1000
    table = render_table(rep)
    assert "GET /asset" in table and PRICE.signature in table and "noise" in table
    md = render_markdown(rep)
    assert "## asset" in md and f"`{PRICE.signature}`" in md and "| difference |" in md
    html = render_html(rep)
    assert html.startswith("<!doctype html>") and html.count("<svg") == 2 and "<polyline" in html
    # Self-contained: no scripts, no external stylesheets/images/fonts.
    assert "<script" not in html and "<link" not in html and not re.search(r"""(src|href)=["']?https?:""", html)
    assert "url(" not in html
    for svg in re.findall(r"<svg.*?</svg>", html, re.S):
        ET.fromstring(svg)  # well-formed inline SVG


def test_parse_since():
    from chariot_migrate.shadow.report import parse_since

    assert [parse_since(x) for x in ("90s", "15m", "1h", "7d", "1w", "30")] == [90, 900, 3600, 604800, 604800, 30]
    for bad in ("", "h", "-1h", "soon", "0"):
        with pytest.raises(ValueError, match="positive duration"):
            parse_since(bad)


def test_empty_report_renders():
    class Empty:
        max_examples = 5

        def load(self, **kw):
            return []

    rep = build_report(Empty())
    assert "No shadow comparisons" in render_table(rep)
    assert "No shadow comparisons" in render_markdown(rep)
    assert "No shadow comparisons" in render_html(rep)


def test_html_escapes_route_names(tmp_path):
    s = SQLiteDiffStore(tmp_path / "x.db")
    s.record([PairRecord("svc", "GET /<script>alert(1)</script>", NOW, [], None, {"legacy": 0.01, "new": 0.01}, {})])
    html = render_html(build_report(s))
    assert "<script>" not in html and "&lt;script&gt;" in html
    s.close()
