"""Contract suite: every route of routes.yaml, legacy through the proxy vs the new service through the proxy.

One stack (all services started, 0 %). Two fresh accounts: one stays on legacy, the other is pinned to
the new side for all eight services (`pin SERVICE ACCOUNT --to new`), so both modes run side by side
against the same proxy. Each case is a scripted request sequence (setup + the call) sent once per
account; every response's status and normalised JSON (volatile values replaced: timestamps, uuids,
ttl, tokens, secrets, presigned-URL signatures, the account itself) must be identical.

`test_every_route_has_a_contract_case` matches every scripted request against the compiled route
table: a route (and method) no case reaches fails the suite, so new routes cannot slip in untested.
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from guard_harness import ROUTES, Stack, StackMode, parallel, start_stack

from chariot_migrate.routes.loader import load_table
from chariot_migrate.routes.matcher import RequestView

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SERVICES = ("account", "asset-discovery", "risk-assessment", "capabilities", "integration-hub", "notification",
            "reporting", "configuration")
RUN = uuid.uuid4().hex[:8]
LEGACY_USER = f"ct-legacy-{RUN}@example.com"
NEW_USER = f"ct-new-{RUN}@example.com"


@dataclass(frozen=True)
class Step:
    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    auth: bool = True


def S(method: str, path: str, body: Any = None, **query: str) -> Step:  # noqa: N802 — reads like a table
    return Step(method, path, tuple(query.items()), body)


A = "#asset#{dns}#{dns}"
CASES: dict[str, list[Step]] = {
    # account
    "token-bad-key": [Step("GET", "/token", headers=(("X-GUARD-API-KEY-ID", "nope"),
                                                     ("X-GUARD-API-KEY-SECRET", "wrong")), auth=False)],
    "key-add-delete-missing": [S("POST", "/key", {"name": "x", "expires": "not-a-date"}),
                               S("DELETE", "/key", {"key": "#key#missing"})],
    "collaborator-link-list-unlink": [S("POST", "/account/friend-{dns}@example.com", {"role": "analyst"}),
                                      S("GET", "/my", key="#account#"),
                                      S("DELETE", "/account/friend-{dns}@example.com"),
                                      S("GET", "/my", key="#account#")],
    "keys-list": [S("GET", "/my", key="#key#missing")],
    # asset-discovery
    "asset-lifecycle": [S("PUT", "/asset", {"group": "{dns}", "identifier": "{dns}"}),
                        S("PUT", "/asset", {"key": A, "status": "F"}),
                        S("POST", "/my", {"node": {"labels": ["Asset"], "filters": [
                            {"field": "key", "operator": "STARTS WITH", "value": "#asset#{dns}"}]}}),
                        S("DELETE", "/asset", {"key": A})],
    "asset-bad": [S("PUT", "/asset", {"group": "", "identifier": ""}), S("DELETE", "/asset", {})],
    "bulk-asset-bad": [S("POST", "/bulk/asset", {"action": "explode", "items": []})],
    "seed-bad": [S("PUT", "/seed", {"type": "asset", "model": "x"})],
    "preseed-lifecycle": [S("POST", "/preseed", {"type": "whois+company", "title": "T {dns}", "value": "t {dns}"}),
                          S("PUT", "/preseed", {"key": "#preseed#whois+company#T {dns}#t {dns}", "status": "F"}),
                          S("DELETE", "/preseed", {"key": "#preseed#whois+company#T {dns}#t {dns}"})],
    "attribute-lifecycle": [S("PUT", "/asset", {"group": "{dns}", "identifier": "{dns}"}),
                            S("PUT", "/attribute", {"key": A, "name": "port", "value": "443"}),
                            S("DELETE", "/attribute", {"key": "#attribute#port#443" + A})],
    "bulk-attribute-bad": [S("POST", "/bulk/attribute", {"action": "explode", "items": []})],
    # risk-assessment
    "risk-lifecycle": [S("PUT", "/asset", {"group": "{dns}", "identifier": "{dns}"}),
                       S("PUT", "/risk", {"key": A, "name": "CVE-2024-1", "status": "TH"}),
                       S("POST", "/my", {"node": {"labels": ["Risk"], "filters": [
                           {"field": "key", "operator": "STARTS WITH", "value": "#risk#{dns}"}]}}),
                       S("DELETE", "/risk", {"key": "#risk#{dns}#CVE-2024-1", "status": "DHF"})],
    "bulk-risk-bad": [S("POST", "/bulk/risk", {"action": "explode", "items": []})],
    # GET /my for graph keys: asset-discovery and risk-assessment answer it like legacy's search
    "graph-key-search": [S("PUT", "/asset", {"group": "{dns}", "identifier": "{dns}"}),
                         S("PUT", "/asset", {"group": "{dns}", "identifier": "10.4.4.4"}),
                         S("PUT", "/attribute", {"key": A, "name": "port", "value": "22"}),
                         S("POST", "/preseed", {"type": "whois+company", "title": "G {dns}", "value": "g"}),
                         S("PUT", "/risk", {"key": A, "name": "CVE-2024-9", "status": "TM"}),
                         S("GET", "/my", key="#asset#{dns}#"), S("GET", "/my", key=A, exact="true"),
                         S("GET", "/my", key="#asset#{dns}#", desc="true"),
                         S("GET", "/my", key="#asset#{dns}#1", to="#asset#{dns}#2"),
                         S("GET", "/my", key="#seed#{dns}"), S("GET", "/my", key="#attribute#port#22#asset#{dns}"),
                         S("GET", "/my", key="#preseed#whois+company#G {dns}"), S("GET", "/my", key="#risk#{dns}#"),
                         S("GET", "/my", key="#asset#{dns}#", offset="not json")],
    # issue 15 item 17: /my/count sees every write at once, whichever kind (no wait for events)
    "count-after-writes": [S("PUT", "/asset", {"group": "{dns}", "identifier": "10.5.5.5"}),
                           S("PUT", "/asset", {"key": "#asset#{dns}#10.5.5.5", "status": "F"}),
                           S("PUT", "/asset", {"group": "{dns}", "identifier": "{dns}"}),
                           S("PUT", "/seed", {"type": "asset", "model": {"dns": "s.{dns}"}}),
                           S("PUT", "/seed", {"key": "#asset#s.{dns}#s.{dns}", "status": "A"}),
                           S("PUT", "/attribute", {"key": A, "name": "port", "value": "443"}),
                           S("POST", "/preseed", {"type": "whois+company", "title": "C {dns}", "value": "c"}),
                           S("PUT", "/risk", {"key": A, "name": "CVE-2024-8", "status": "TH"}),
                           S("POST", "/bulk/asset", {"action": "upsert", "items": [
                               {"group": "{dns}", "identifier": "b1.{dns}"}, {"group": "{dns}", "identifier": "b2.{dns}"}]}),
                           S("GET", "/my/count", key="#asset#{dns}#"), S("GET", "/my/count", key="#asset#s.{dns}"),
                           S("GET", "/my/count", key="#attribute#port#443#asset#{dns}"),
                           S("GET", "/my/count", key="#preseed#whois+company#C {dns}"),
                           S("GET", "/my/count", key="#risk#{dns}#"), S("GET", "/my/count", key="dns:{dns}"),
                           S("GET", "/my/count", key="dns:{dns}", label="asset")],
    # capabilities
    "job-unknown-capability": [S("PUT", "/asset", {"group": "{dns}", "identifier": "{dns}"}),
                               S("POST", "/job", {"key": A, "capabilities": ["no-such-cap"]})],
    "capabilities-list": [S("GET", "/capabilities", name="nuclei")],
    "schedule-bad": [S("POST", "/capability/schedule", {}),
                     S("PUT", "/capability/schedule/missing-id", {}),
                     S("DELETE", "/capability/schedule/missing-id"),
                     S("PATCH", "/capability/schedule/missing-id/pause")],
    "jobs-list": [S("GET", "/my", key="#job#{dns}"), S("GET", "/my", key="#job#report#missing"),
                  S("GET", "/my", key="#capability_schedule#"), S("GET", "/my", key="{dns}", label="job"),
                  S("GET", "/my", key="status:JR")],  # the dashboard's running jobs
    # integration-hub
    "integration-missing": [S("DELETE", "/account/jira-{dns}"), S("POST", "/account/jira-{dns}", "not an object")],
    "hook-wrong-pin": [Step("PUT", "/hook/{me64}/not-the-pin", body={"dns": "{dns}"}, auth=False)],
    # notification
    "webhook-and-alerts": [S("POST", "/account/hook"), S("DELETE", "/account/hook"),
                           S("GET", "/account/alert"), S("POST", "/account/alert", {"value": "TH"}),
                           S("GET", "/account/alert"), S("DELETE", "/account/alert", {"value": "TH"})],
    # reporting
    "count-and-statistics": [S("GET", "/my/count", key="nokind"), S("GET", "/my/count", key="#asset#{dns}"),
                             S("GET", "/my", key="#statistic#my#status:ZZ"),
                             # `guard list statistics --to D` / `--from D` with no filter, and a filtered range
                             S("GET", "/my", key="#statistic", to="#statistic#2000-01-01"),
                             S("GET", "/my", key="#statistic#2000-01-01", to="#statistic#2000-12-31"),
                             S("GET", "/my", key="#statistic#my#status:ZZ#2000-01-01",
                               to="#statistic#my#status:ZZ#now")],
    "files": [S("GET", "/my", key="#file#{dns}"), S("GET", "/my", key="{dns}", label="file"),
              S("PUT", "/encrypted-file", "secret bytes", name="home/{dns}.txt"),
              S("GET", "/encrypted-file", name="home/{dns}.txt"),
              S("GET", "/file", name="home/{dns}.txt"), S("PUT", "/file", name="home/{dns}-2.txt"),
              S("DELETE", "/file", name="home/{dns}.txt"), S("GET", "/file", name="home/{dns}.txt")],
    "export-bad": [S("POST", "/export/report", {"export_format": "docx"})],
    # configuration
    "settings": [S("PUT", "/setting", {"name": "s-{dns}", "value": "v"}), S("GET", "/my", key="#setting#s-{dns}"),
                 S("DELETE", "/setting", {"name": "s-{dns}"}), S("DELETE", "/setting", {"name": "s-{dns}"})],
    "configurations": [S("PUT", "/configuration", {"name": "nuclei", "value": {"rate": 1}}),
                       S("GET", "/my", key="#configuration#nuclei"),
                       S("DELETE", "/configuration", {"name": "nuclei"})],
    "schema": [S("GET", "/schema")],
}


def expand(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for k, v in names.items():
            value = value.replace("{" + k + "}", v)
        return value
    if isinstance(value, dict):
        return {expand(k, names): expand(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, names) for v in value]
    return value


def b64(email: str) -> str:
    return base64.b64encode(email.encode()).decode().rstrip("=")


# --- coverage: every (route, method) of routes.yaml is reached by a case --------------------------------

def test_every_route_has_a_contract_case():
    table = load_table(ROUTES)
    names = {"dns": "x.example.com", "me": "me@example.com", "me64": b64("me@example.com")}
    covered: set[tuple[int, str]] = set()
    for steps in CASES.values():
        for step in steps:
            body = expand(step.body, names)
            raw = (json.dumps(body) if not isinstance(body, str) else body).encode() if body is not None else b""
            m = table.match(RequestView(step.method, expand(step.path, names),
                                        urlencode(expand(dict(step.query), names)), {}, raw))
            if m is not None:
                covered.add((m.route.index, step.method))
    missing = [f"routes[{r.index}] {method} {r.template} ({r.service})" for r in table.routes
               for method in sorted(r.methods) if (r.index, method) not in covered]
    assert missing == [], "routes without a contract case:\n" + "\n".join(missing)


# --- the stack and the two accounts ----------------------------------------------------------------------

# Forced: NEW_USER is created for this run and has no data on either side yet; the suite checks
# the new side's contract, not the migration of existing data (test_e2e_safe_migration does that).
PINS = tuple(("pin", s, NEW_USER, "--to", "new", "--force", "--reason", "contract: a fresh account")
             for s in SERVICES)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    mode = StackMode("contract", services=True, commands=PINS, env=(("TABLE_PREFIX", f"ct{RUN}-"),))
    s = start_stack(tmp_path_factory.mktemp("stack-contract"), mode)
    try:
        yield s
    finally:
        s.stop()


def _client(stack: Stack, email: str) -> httpx.Client:
    from chariot_migrate.legacy.resources import create_api_key

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    key_id, secret = create_api_key(email, name="contract", endpoint_url=stack.moto, region="us-east-1")
    r = httpx.get(f"{stack.api}/token", headers={"X-GUARD-API-KEY-ID": key_id, "X-GUARD-API-KEY-SECRET": secret})
    assert r.status_code == 200, r.text
    return httpx.Client(base_url=stack.api, timeout=30, headers={"Authorization": f"Bearer {r.json()['token']}"})


@pytest.fixture(scope="module")
def clients(stack) -> Iterator[dict[str, httpx.Client]]:
    both = {"legacy": _client(stack, LEGACY_USER), "new": _client(stack, NEW_USER)}
    yield both
    for c in both.values():
        c.close()


# --- normalisation -----------------------------------------------------------------------------------------

_VOLATILE = [
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?"), "<ts>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}\b"), "<date>"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    # The legacy side signs with the Lambda's session credentials (an extra security-token parameter).
    (re.compile(r"X-Amz-Security-Token=[^&\"]*&?"), ""),
    (re.compile(r"(X-Amz-[A-Za-z-]+|Signature|Expires|AWSAccessKeyId)=[^&\"]*"), r"\1=<sig>"),
    (re.compile(r"http://127\.0\.0\.1:\d+"), "<host>"),
]
_SECRET_FIELDS = {"token", "secret", "_hash", "_salt", "ttl", "pin", "expires_in"}


def normalise(value: Any, me: str) -> Any:
    if isinstance(value, dict):
        return {normalise(k, me): ("<volatile>" if k in _SECRET_FIELDS else normalise(v, me))
                for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v, me) for v in value]
    if isinstance(value, str):
        value = value.replace(me, "<me>").replace(quote(me, safe=""), "<me>").replace(b64(me), "<me64>")
        for pattern, repl in _VOLATILE:
            value = pattern.sub(repl, value)
    return value


def run_case(client: httpx.Client, me: str, case: str, steps: list[Step]) -> list[tuple[str, str, int, Any]]:
    names = {"dns": f"{case}-{RUN}.example.com", "me": me, "me64": b64(me)}
    out = []
    for step in steps:
        body = expand(step.body, names)
        kw: dict[str, Any] = {"params": expand(dict(step.query), names) or None,
                              "headers": dict(step.headers)}
        if isinstance(body, str):
            kw["content"] = body.encode()
        elif body is not None:
            kw["json"] = body
        if not step.auth:
            kw["headers"]["Authorization"] = ""
        r = client.request(step.method, expand(step.path, names), **kw)
        try:
            doc: Any = r.json()
        except ValueError:
            doc = r.text
        side = r.headers.get("x-migrate-side", "?") if step.auth else "public"
        out.append((f"{step.method} {step.path}", side, r.status_code, normalise(doc, me)))
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_legacy_at_0_and_new_at_100_answer_alike(case, clients):
    legacy, new = parallel(lambda: run_case(clients["legacy"], LEGACY_USER, case, CASES[case]),
                           lambda: run_case(clients["new"], NEW_USER, case, CASES[case]))
    assert {side for _, side, _, _ in legacy} <= {"legacy", "public"}
    assert {side for _, side, _, _ in new} <= {"new", "public"}
    strip = lambda rows: [(what, status, doc) for what, _, status, doc in rows]  # noqa: E731
    assert strip(new) == strip(legacy)


def _report_zip(client: httpx.Client, me: str) -> dict[str, Any]:
    """Write an asset and two risks, export a zip report of one, and read the zip's files back."""
    import io
    import zipfile

    dns = f"zip-{RUN}.example.com"
    asset = f"#asset#{dns}#{dns}"
    assert client.put("/asset", json={"group": dns, "identifier": dns}).status_code == 200
    for name, status in (("CVE-2024-5151", "TC"), ("weak-tls", "TL")):
        r = client.put("/risk", json={"key": asset, "name": name, "status": status, "comment": "seen"})
        assert r.status_code == 200, r.text
    r = client.post("/export/report", json={"export_format": "zip", "config": {"title": f"Z {dns}"},
                                            "risk_keys": [f"#risk#{dns}#CVE-2024-5151", f"#risk#{dns}#weak-tls"]})
    assert r.status_code == 200, r.text
    assert r.headers["x-migrate-side"] == ("new" if me == NEW_USER else "legacy")
    url = client.get("/file", params={"name": r.json()["job"]["config"]["output"]}).json()["url"]
    with zipfile.ZipFile(io.BytesIO(httpx.get(url, timeout=30).content)) as z:
        return {name: normalise(json.loads(z.read(name)) if name.endswith(".json") else z.read(name).decode(), me)
                for name in z.namelist()}


def test_report_zips_carry_the_same_risk_rows(clients):
    """issue 20: the new side's zip had read-model risk rows (key, status, source, dns, name, class);
    legacy's carries the whole risk (title, priority, history, target, tags, …)."""
    legacy, new = parallel(lambda: _report_zip(clients["legacy"], LEGACY_USER),
                           lambda: _report_zip(clients["new"], NEW_USER))
    assert {"priority", "history", "target", "title"} <= set(legacy["risks.json"][0])
    assert new == legacy


def test_every_service_exposes_its_metrics_after_the_contract_traffic(stack, clients):
    """After the contract cases ran (this module's earlier tests), each of the eight services'
    /metrics shows its own request histogram and in-flight gauge (issue: observability)."""
    # A few requests through every service, in case this test runs alone.
    for case, steps in CASES.items():
        run_case(clients["new"], NEW_USER, case, steps)
    ports = {name.removeprefix("service-"): port for name, port in stack.info["services"].items()
             if name.startswith("service-")}
    assert len(ports) == 8, ports
    seen: dict[str, float] = {}
    for service, port in ports.items():
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        counts = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith("http_request_duration_seconds_count{") and f'service="{service}"' in line]
        assert "active_connections_total" in text, service
        seen[service] = sum(counts)
    assert all(v > 0 for v in seen.values()), sorted(seen.items())  # routed traffic counts
