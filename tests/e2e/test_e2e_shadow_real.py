"""Shadow comparison on the real stacks: the legacy Lambda estate on moto vs the real asset-discovery
service, driven by the real `guard` CLI (praetorian-cli) through the proxy.

Issue: "with asset-discovery at 0 % and shadow 100 %, running the real praetorian-cli list/get
commands produces a report with a match rate and no difference flagged on fields that are only
noise." The legacy data that exists before the test (the demo account's) reaches the service by
`data backfill`; writes made during the test reach it by the edge dual write (replays adopt the
primary's generated values: keys, timestamps, history authors), so both sides hold the same data
and every shadowed read should match. Every shadowed read is also sent to the primary twice
(`noise_sample_rate: 1`), so a field that differs between two calls of the same side is measured
as noise, not reported as a difference.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from guard_harness import Guard, Stack, StackMode, start_stack, wait_for
from real_stack_kit import cm, cm_json, routes_copy

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SERVICE = "asset-discovery"


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("shadow-real")
    routes = routes_copy(work / "routes.yaml", {"shadow": {"noise_sample_rate": 1.0, "flush_interval_s": 0.2}})
    s = start_stack(work, StackMode("shadow-real", services=True), routes=routes)
    try:
        # The demo data written at start-up lives only in the legacy table: copy it over first.
        cm(s, "data", "backfill", SERVICE, state=False)
        cm(s, "dual-write", SERVICE, "on", "-m", "e2e: writes reach both stores")
        cm(s, "shadow", SERVICE, "100", "-m", "e2e: compare every read")
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def guard(stack, tmp_path_factory) -> Guard:
    g = Guard(stack, tmp_path_factory.mktemp("home-shadow"))
    g.run("list", "keys")  # one token fetch before concurrent calls share the HOME
    return g


def report(stack: Stack) -> dict:
    return cm_json(stack, "report", "--service", SERVICE, "--format", "json", state=False)


def routes_of(doc: dict) -> dict[str, dict]:
    return {r["route"]: r for s in doc["services"] if s["service"] == SERVICE for r in s["routes"]}


def pairs(doc: dict) -> int:
    return sum(r["pairs"] for r in routes_of(doc).values())


def test_status_shows_shadow_at_zero_percent(stack):
    svc = next(s for s in cm_json(stack, "status", "--json")["services"] if s["service"] == SERVICE)
    assert (svc["stage"], svc["percent"], svc["shadow_percent"], svc["dual_write"]) == ("shadow", 0.0, 100.0, "on")


def test_guard_reads_are_shadowed_and_match(stack, guard, tmp_path):
    uid = uuid.uuid4().hex[:8]
    dns = f"sh-{uid}.example.com"
    asset = f"#asset#{dns}#10.9.8.7"
    seed = f"#asset#seed-{uid}.example.org#seed-{uid}.example.org"
    # Writes through legacy (0 % new); the dual write replays them to the service.
    guard.run("add", "asset", "-g", dns, "-i", "10.9.8.7")
    guard.run("add", "seed", "--field", f"dns:seed-{uid}.example.org")
    guard.run("add", "attribute", "-k", asset, "-n", "port", "-v", "443")
    guard.run("update", "asset", asset, "-s", "F")
    wait_for(lambda: "outbox empty" in cm(stack, "dual-write", "status", state=False).stdout,
             timeout=30, what="dual-write outbox drained")
    before = pairs(report(stack))

    reads = [("list", "assets"), ("list", "assets", "--details"), ("list", "assets", "-f", f"#asset#{dns}"),
             ("get", "asset", asset, "--details"), ("list", "seeds", "--details"), ("get", "seed", seed),
             ("list", "attributes", "-k", asset), ("list", "preseeds")]
    results = guard.many(*reads)
    # The client saw legacy's answers (0 % new): what it just wrote is there.
    assert any(row["key"] == asset and row["status"] == "F" for row in results[1].json["data"])
    assert json.loads(results[3].out)["key"] == asset

    doc = wait_for(lambda: (d := report(stack)) and pairs(d) >= before + 6 and d, timeout=30,
                   what="shadow pairs of the guard reads recorded")
    routes = routes_of(doc)
    reads_route = next(r for name, r in routes.items() if name.startswith("POST /my"))
    assert reads_route["pairs"] >= 6 and reads_route["aa_pairs"] >= 6
    assert reads_route["exact_match_rate"] is not None and reads_route["adjusted_match_rate"] is not None
    assert reads_route["error_rate"]["new"] == 0

    # No difference anywhere, raw or noise-adjusted: the service answers like legacy, including
    # the generated values of writes it received by replay (created/updated/ttl/history.by).
    flagged = {name: [(s["path"], s["kind"], s["classification"], (s.get("example") or {}).get("legacy_value"),
                       (s.get("example") or {}).get("new_value")) for s in r["signatures"]
                      if s["classification"] != "noise" and not s["ignored"]]
               for name, r in routes.items()}
    assert all(not v for v in flagged.values()), json.dumps(flagged, indent=1, default=str)[:6000]
    for name, r in routes.items():
        assert r["real_signatures"] == 0, name
        assert r["adjusted_match_rate"] == 1.0, (name, r["adjusted_match_rate"])

    # The same report renders for people too: terminal table and Markdown with the match rate.
    md = cm(stack, "report", "--service", SERVICE, "--format", "md", state=False).stdout
    assert "POST /my" in md and "100.00%" in md
    html_path = tmp_path / "shadow.html"
    cm(stack, "report", "--service", SERVICE, "--format", "html", "-o", str(html_path), state=False)
    assert "<html" in html_path.read_text().lower()


def test_writes_replayed_to_the_service_match_the_primary(stack, guard):
    """The dual-write replay's answer is compared with legacy's: same item, same generated values."""
    uid = uuid.uuid4().hex[:8]
    dns = f"rp-{uid}.example.com"
    guard.run("add", "asset", "-g", dns, "-i", "10.1.1.1")
    wait_for(lambda: "outbox empty" in cm(stack, "dual-write", "status", state=False).stdout,
             timeout=30, what="dual-write outbox drained")

    def put_asset_route() -> dict | None:
        return next((r for name, r in routes_of(report(stack)).items() if name.startswith("PUT") and "/asset" in name
                     and r["pairs"] >= 1), None)

    r = wait_for(put_asset_route, timeout=20, what="replay compared")
    assert r["exact_match_rate"] == 1.0, r["signatures"]

    # And the stores agree key by key (verify exits 1 on drift).
    out = cm(stack, "data", "verify", SERVICE, "--json", state=False, ok=None)
    doc = json.loads(out.stdout)
    assert doc["ok"] and not doc["differing"] and not doc["missing_in_new"], out.stdout[-2000:]


def test_fields_that_differ_between_two_calls_come_out_as_noise(stack, guard, tmp_path):
    """GET /token answers a JWT whose iat/exp are whole seconds: two calls in different seconds get
    different tokens, from legacy as from the account service. Calls made just before a second
    ticks over make the primary mint in one second and its shadow (and its A/A repeat) in the next:
    those differences, legacy vs new, are measured against legacy vs legacy and come out as noise —
    no ignore rule, no configuration — and the noise-adjusted match rate stays 100 %."""
    import time

    import httpx

    cm(stack, "data", "backfill", "account", state=False)  # the API keys exist for the account service
    cm(stack, "shadow", "account", "100", "-m", "e2e: token noise")
    fresh = Guard(stack, tmp_path / "home-fresh")  # a new HOME: the CLI fetches a token (shadowed)
    assert fresh.run("list", "keys").lines
    headers = {"X-GUARD-API-KEY-ID": stack.env["PRAETORIAN_CLI_API_KEY_ID"],
               "X-GUARD-API-KEY-SECRET": stack.env["PRAETORIAN_CLI_API_KEY_SECRET"]}

    def token_route() -> dict | None:
        doc = cm_json(stack, "report", "--service", "account", "--format", "json", state=False)
        return next((r for s in doc["services"] for r in s["routes"] if r["route"].startswith("GET /token")), None)

    # Calls timed just before a second ticks over (the offsets sweep the primary's latency) until
    # both kinds of differences were seen: legacy vs new (A/B) and legacy vs legacy (A/A).
    r: dict | None = None
    with httpx.Client(base_url=stack.api, timeout=30) as http:
        for _ in range(8):
            for offset in (0.90, 0.93, 0.95, 0.97, 0.985, 0.99):
                time.sleep((offset - time.time() % 1) % 1)
                assert http.get("/token", headers=headers).status_code == 200
            time.sleep(1)  # the copies are compared after the answer; the store flushes every 0.2 s
            r = token_route()
            if r and any("token" in s["path"] and s["classification"] == "noise" for s in r["signatures"]):
                break
    assert r is not None and r["pairs"] >= 6 and r["aa_pairs"] >= 6, r
    token_sigs = [s for s in r["signatures"] if "token" in s["path"]]
    assert token_sigs, r  # the tokens do differ, legacy vs new …
    assert all(s["classification"] == "noise" for s in token_sigs), token_sigs
    assert r["exact_match_rate"] < 1.0 and r["adjusted_match_rate"] == 1.0, r  # … and that is only noise
    assert r["real_signatures"] == 0
