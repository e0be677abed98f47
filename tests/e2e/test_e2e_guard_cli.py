"""The real `guard` CLI (praetorian-cli 2.6.2) → the strangler proxy → the legacy Lambda stack on moto.

One `chariot-migrate up` per stack mode (module scope); every test uses its own uuid-based names so
tests never depend on each other's data. Independent CLI calls run concurrently: each `guard`
start spends ~1.5 s importing the client.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from guard_harness import Guard, Stack, StackMode, keys_of, parallel, start_stack, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

DEMO = "demo@example.com"

SERVICES = ("account", "asset-discovery", "risk-assessment", "capabilities", "integration-hub", "notification",
            "reporting", "configuration")
# The same suite, unchanged, with all eight new services at 100 % (the client must not notice).
# A run-unique TABLE_PREFIX keeps this stack's event streams apart from other stacks on this Redis.
SERVICES_100 = StackMode("services-100", services=True,
                         commands=tuple(("shift", s, "100", "--force", "--reason", "e2e") for s in SERVICES),
                         env=(("TABLE_PREFIX", f"e2e{uuid.uuid4().hex[:8]}-"),))
# A mixed split reached the safe way: every service prepared (dual write both ways, backfill,
# verify: services share entities, so each one's writes must reach the other side), account and
# asset-discovery at 100 %, everything else on legacy. The suite must pass unchanged.
MIXED_PREPARED = StackMode("mixed-prepared", services=True,
                           commands=(*(("prepare", s) for s in SERVICES),
                                     ("shift", "account", "100"), ("shift", "asset-discovery", "100")),
                           env=(("TABLE_PREFIX", f"e2emix{uuid.uuid4().hex[:8]}-"),))
MODES = [StackMode("legacy"), SERVICES_100, MIXED_PREPARED]


def uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="module", params=MODES, ids=lambda m: m.name)
def stack(request, tmp_path_factory) -> Iterator[Stack]:
    s = start_stack(tmp_path_factory.mktemp(f"stack-{request.param.name}"), request.param)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def guard(stack, tmp_path_factory) -> Guard:
    g = Guard(stack, tmp_path_factory.mktemp("home-demo"))
    g.run("list", "keys")  # fetch and cache the token once, before concurrent calls share the HOME
    return g


@pytest.fixture(scope="module")
def sdk(guard):
    """The demo identity through the client's SDK, in-process: checks what the CLI did, cheaply."""
    return guard.sdk()


@pytest.fixture(scope="module")
def token(stack) -> str:
    r = httpx.get(f"{stack.api}/token", headers={"X-GUARD-API-KEY-ID": stack.env["PRAETORIAN_CLI_API_KEY_ID"],
                                                 "X-GUARD-API-KEY-SECRET": stack.env["PRAETORIAN_CLI_API_KEY_SECRET"]})
    assert r.status_code == 200, r.text
    return r.json()["token"]


def other_identity(stack: Stack, home: Path, email: str) -> Guard:
    """A second user with its own API key, written by legacy's provisioning helper straight into the table."""
    from chariot_migrate.legacy.resources import create_api_key

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    key_id, secret = create_api_key(email, name="e2e", endpoint_url=stack.moto, region="us-east-1")
    return Guard(stack, home, {"PRAETORIAN_CLI_API_KEY_ID": key_id, "PRAETORIAN_CLI_API_KEY_SECRET": secret,
                               "PRAETORIAN_CLI_USERNAME": email})


def transitions(entity: dict) -> list[tuple[str, str]]:
    return [(h.get("from", ""), h.get("to", "")) for h in entity["history"] if "to" in h]


# --- assets, risks, attributes ---------------------------------------------------------------------------

def test_asset_add_list_get_update_delete(guard, sdk):
    dns = f"a-{uid()}.example.com"
    key = f"#asset#{dns}#10.1.2.3"
    guard.run("add", "asset", "-g", dns, "-i", "10.1.2.3", "-f", "external")
    listed, got = guard.many(("list", "assets", "-f", f"#asset#{dns}", "--details"),
                             ("get", "asset", key, "--details"))
    assert [a["key"] for a in listed.json["data"]] == [key]
    asset = got.json
    assert (asset["class"], asset["status"], asset["attackSurface"]) == ("ipv4", "A", ["external"])
    assert asset["attributes"] == [] and asset["associated_risks"] == []

    guard.run("update", "asset", key, "-s", "F")
    assert sdk.assets.get(key)["status"] == "F"
    guard.run("delete", "asset", key)
    deleted = sdk.assets.get(key)
    assert deleted["status"] == "D" and transitions(deleted) == [("", "A"), ("A", "F"), ("F", "D")]


def test_risk_status_changes_and_history(guard, sdk):
    dns = f"r-{uid()}.example.com"
    asset, key = f"#asset#{dns}#{dns}", f"#risk#{dns}#CVE-2024-0001"
    sdk.assets.add(dns, dns)
    guard.run("add", "risk", "CVE-2024-0001", "-a", asset, "-s", "TH", "-c", "found it", "-g", "web")
    assert guard.run("list", "risks", "-f", dns).lines == [key]

    guard.run("update", "risk", key, "-s", "OH", "-c", "confirmed")
    risk = guard.json("get", "risk", key, "--details")
    assert (risk["status"], risk["priority"], risk["tags"]) == ("OH", 10, ["web"])
    assert [(h["from"], h["to"], h.get("comment")) for h in risk["history"]] == [
        ("", "TH", "found it"), ("TH", "OH", "confirmed")]
    assert [a["key"] for a in risk["affected_assets"]] == [asset]

    guard.run("delete", "risk", key, "-s", "DHF", "-c", "false positive")
    deleted = sdk.risks.get(key)
    assert deleted["status"] == "DHF" and transitions(deleted)[-1] == ("OH", "DHF")
    assert deleted["history"][-1]["comment"] == "false positive"


def test_attribute_add_list_get_delete(guard, sdk):
    dns = f"t-{uid()}.example.com"
    asset = f"#asset#{dns}#{dns}"
    key = f"#attribute#port#443{asset}"
    sdk.assets.add(dns, dns)
    guard.run("add", "attribute", "-k", asset, "-n", "port", "-v", "443")
    by_source, by_name, got = guard.many(("list", "attributes", "-k", asset),
                                         ("list", "attributes", "-f", "port#443"), ("get", "attribute", key))
    assert by_source.lines == [key]
    assert key in by_name.lines
    assert (got.json["name"], got.json["value"], got.json["source"]) == ("port", "443", asset)
    assert [a["key"] for a in sdk.assets.get(asset, details=True)["attributes"]] == [key]

    guard.run("delete", "attribute", key)
    assert sdk.assets.attributes(asset) == []


# --- seeds and preseeds ----------------------------------------------------------------------------------

def test_seed_add_list_get_update_delete(guard, sdk):
    dns = f"s-{uid()}.example.org"
    key = f"#asset#{dns}#{dns}"
    guard.run("add", "seed", "--field", f"dns:{dns}")
    listed, got = guard.many(("list", "seeds", "--details"), ("get", "seed", key))
    assert key in keys_of(listed.json["data"])
    assert (got.json["status"], got.json["source"]) == ("P", "seed")

    guard.run("update", "seed", key, "-s", "A")
    assert sdk.seeds.get(key)["status"] == "A"
    guard.run("delete", "seed", key)
    assert sdk.seeds.get(key)["status"] == "D"


def test_preseed_add_list_get_update(guard, sdk):
    title = f"Example {uid()}"
    key = f"#preseed#whois+company#{title}#{title.lower()}"
    guard.run("add", "preseed", "-t", "whois+company", "-l", title, "-v", title.lower())
    listed, got = guard.many(("list", "preseeds", "-f", f"whois+company#{title}"),
                             ("get", "preseed", key, "--details"))
    assert listed.lines == [key]
    assert (got.json["type"], got.json["status"], got.json["attributes"]) == ("whois+company", "A", [])

    guard.run("update", "preseed", key, "-s", "F")
    assert sdk.preseeds.get(key)["status"] == "F"


# --- jobs and capabilities -------------------------------------------------------------------------------

def test_job_add_list_get_and_completion(guard, sdk):
    dns = f"j-{uid()}.example.net"
    asset = f"#asset#{dns}#{dns}"
    key = f"#job#{dns}#{dns}#subdomain"
    sdk.assets.add(dns, dns)
    guard.run("add", "job", "-k", asset, "-c", "subdomain")

    def finished():
        status = (sdk.jobs.get(key) or {}).get("status", "")
        return status if status.split("#")[0] in ("JP", "JF") else None

    # The job function starts the worker through moto's Lambda Invoke (async); wait for it.
    assert wait_for(finished, timeout=60, what=f"job {key} JP/JF").startswith("JP#")
    got, listed, by_status, by_cap = guard.many(("get", "job", key), ("list", "jobs", "-f", dns),
                                                ("list", "jobs", "-s", "JP"), ("list", "jobs", "-c", "subdomain"))
    assert got.json["status"].startswith("JP#") and got.json["target"]["model"]["key"] == asset
    assert listed.lines == [key] and key in by_status.lines and key in by_cap.lines
    found, _ = sdk.assets.list(f"#asset#{dns}#")
    assert f"#asset#{dns}#www.{dns}" in keys_of(found)  # what the subdomain capability discovered


def test_unknown_capability_is_a_clear_400(guard, sdk):
    dns = f"u-{uid()}.example.net"
    sdk.assets.add(dns, dns)
    res = guard.run("add", "job", "-k", f"#asset#{dns}#{dns}", "-c", "no-such-cap", ok=False)
    assert "[400]" in res.err and "unknown capability: no-such-cap" in res.err


def test_list_capabilities(guard):
    all_caps, nuclei = guard.many(("list", "capabilities"),
                                  ("list", "capabilities", "--name", "nuclei", "--target", "attribute"))
    assert {c["name"] for c in all_caps.json} >= {"subdomain", "portscan", "nuclei", "whois"}
    assert [(c["name"], c["target"], c["executor"]) for c in nuclei.json] == [("nuclei", "attribute", "chariot")]


# --- settings and keys -----------------------------------------------------------------------------------

def test_settings_add_list_get_delete(guard, sdk):
    name = f"e2e-{uid()}"
    guard.run("add", "setting", "-n", name, "-v", '{"rate": 5}')
    listed, got = guard.many(("list", "settings", "-f", name), ("get", "setting", f"#setting#{name}"))
    assert listed.lines == [f"#setting#{name}"]
    assert (got.json["name"], got.json["value"]) == (name, '{"rate": 5}')
    guard.run("delete", "setting", name)
    assert sdk.settings.get(f"#setting#{name}") is None
    missing = guard.run("delete", "setting", name, ok=False)
    assert "[404]" in missing.err and "not found" in missing.err


def test_api_keys_add_list_use_delete(guard, sdk, stack, tmp_path):
    name = f"ci-{uid()}"
    created = guard.run("add", "key", "-n", name, "-e", "30")
    key = next(line.split(": ", 1)[1] for line in created.lines if line.startswith("API key created"))
    secret = next(line.split(": ", 1)[1] for line in created.lines if line.startswith("Secret"))
    new_key = Guard(stack, tmp_path / "new-key", {"PRAETORIAN_CLI_API_KEY_ID": key.removeprefix("#key#"),
                                                  "PRAETORIAN_CLI_API_KEY_SECRET": secret})
    listed, _ = parallel(lambda: guard.json("list", "keys", "--details"),
                         lambda: new_key.run("list", "settings"))  # the new key authenticates via /token
    row = next(k for k in listed["data"] if k["key"] == key)
    assert row["name"] == name and row["status"] == "A" and "secret" not in row

    guard.run("delete", "key", key)
    assert sdk.keys.get(key)["status"] == "D"
    refused = Guard(stack, tmp_path / "deleted-key", new_key.overrides).run("list", "settings", ok=False)
    assert "API key authentication failed" in refused.err


# --- accounts, integrations, webhook ---------------------------------------------------------------------

def test_link_unlink_collaborator_and_list_accounts_integrations(guard, sdk):
    email = f"collab-{uid()}@example.com"
    key = f"#account#{DEMO}#{email}#"
    guard.run("link", "account", email, "-r", "analyst")
    accounts, integrations, got = guard.many(("list", "accounts", "--details"),
                                             ("list", "integrations"), ("get", "account", key))
    row = next(a for a in accounts.json["data"] if a["member"] == email)
    assert (row["key"], row["role"]) == (key, "analyst")
    assert key not in integrations.lines  # people are not integrations
    assert got.json["member"] == email

    guard.run("unlink", "account", email)
    assert email not in {a["member"] for a in sdk.accounts.list()[0]}


def test_webhook_add_get_delete_and_inbound_hook(guard, sdk, stack):
    assert guard.run("get", "webhook").out.strip() == "No existing webhook."
    url = guard.run("add", "webhook").out.strip()
    principal = base64.b64encode(DEMO.encode()).decode().rstrip("=")
    assert url.startswith(f"{stack.api}/hook/{principal}/")
    got, again = guard.many(("get", "webhook"), ("add", "webhook"))
    assert got.out.strip() == url
    assert "Delete it first" in again.out
    assert "hook" in {i["member"] for i in sdk.integrations.list()[0]}

    dns = f"h-{uid()}.example.com"
    r = httpx.put(url, json={"dns": dns, "name": dns, "finding": "CVE-2024-4242"})
    assert r.status_code == 200, r.text
    bad = httpx.put(url, json={"dns": ""})
    assert bad.status_code == 400 and "dns" in bad.json()["message"]
    wrong_pin = httpx.put(url.rsplit("/", 1)[0] + "/not-the-pin", json={"dns": dns, "name": dns})
    assert wrong_pin.status_code == 401
    assert sdk.assets.get(f"#asset#{dns}#{dns}")["origin"] == "webhook"
    assert {(a["name"], a["value"]) for a in sdk.assets.attributes(f"#asset#{dns}#{dns}")} == {("source", "webhook")}
    risk = sdk.risks.get(f"#risk#{dns}#CVE-2024-4242")
    assert (risk["status"], risk["source"]) == ("TI", "webhook")

    assert guard.run("delete", "webhook").out.strip() == "Webhook successfully deleted."
    assert sdk.webhook.get_record() is None
    assert httpx.put(url, json={"dns": dns, "name": dns}).status_code == 401


# --- files -----------------------------------------------------------------------------------------------

def test_files_add_list_get_delete(guard, sdk, tmp_path):
    folder = f"home/e2e-{uid()}"
    src = tmp_path / "report.txt"
    src.write_bytes(b"proof of the e2e run\n")
    out = guard.run("add", "file", str(src), "-n", f"{folder}/report.txt").out
    assert f"-> {folder}/report.txt (21 bytes)" in out
    dest = tmp_path / "download"
    dest.mkdir()
    listed, _ = guard.many(("list", "files", "-f", folder, "--details"),
                           ("get", "file", f"{folder}/report.txt", "-p", str(dest)))
    assert [f["name"] for f in listed.json["data"]] == [f"{folder}/report.txt"]
    (saved,) = dest.iterdir()
    assert saved.read_bytes() == b"proof of the e2e run\n"

    guard.run("delete", "file", f"{folder}/report.txt")
    assert sdk.files.list(folder)[0] == []
    gone = guard.run("get", "file", f"{folder}/report.txt", "-p", str(dest), ok=False)
    assert "not found" in gone.err


# --- search, statistics, schema --------------------------------------------------------------------------

def test_search_by_prefix_field_and_counts(guard, sdk):
    dns = f"q-{uid()}.example.com"
    keys = {f"#asset#{dns}#{dns}", f"#asset#{dns}#10.9.8.7"}
    sdk.assets.add(dns, dns)
    sdk.assets.add(dns, "10.9.8.7", status="F")
    sdk.risks.add(f"#asset#{dns}#{dns}", "CVE-2024-7777", "TM")
    prefix, by_dns, by_name, count, count_field, no_kind = guard.many(
        ("search", "-t", f"#asset#{dns}#"),
        ("search", "-t", f"dns:{dns}", "-k", "asset", "--details"),
        ("search", "-t", "name:CVE-2024-7777", "-k", "risk"),
        ("search", "-t", f"#asset#{dns}#", "-c"),
        ("search", "-t", f"dns:{dns}", "-c"),
        ("search", "-t", f"dns:{dns}"), ok=None)
    for res in (prefix, by_dns, by_name, count, count_field):
        assert res.rc == 0, str(res)
    assert set(prefix.lines) == keys
    assert keys_of(by_dns.json["data"]) == keys
    assert f"#risk#{dns}#CVE-2024-7777" in by_name.lines
    assert count.json["count"] == 2 and count.json["status"] == {"A": 1, "F": 1}
    assert count_field.json["count"] == 3 and count_field.json["status"] == {"A": 1, "F": 1, "TM": 1}
    assert no_kind.rc != 0 and "requires the entity kind" in no_kind.err


def test_counts_see_every_kind_of_write_at_once(guard, sdk):
    """issue 15 item 17: at 100 % new, `search -c` answered from an event-fed read model that lagged
    or lost events and never saw attributes or preseeds (legacy 6 / F 1 / A 5, new 3 / A 3)."""
    dns = f"c-{uid()}.example.com"
    asset = f"#asset#{dns}#{dns}"
    guard.run("add", "asset", "-g", dns, "-i", "10.7.7.7")
    guard.run("update", "asset", f"#asset#{dns}#10.7.7.7", "-s", "F")
    sdk.assets.add(dns, dns)
    guard.run("add", "seed", "--field", f"dns:{dns}.seed")  # #asset#<dns>.seed#…: under the same prefix
    sdk.attributes.add(asset, "port", "8443")
    sdk.preseeds.add("whois+company", f"C {dns}", dns, "A")
    assets, attributes, preseeds = guard.many(("search", "-t", f"#asset#{dns}", "-c"),
                                              ("search", "-t", f"#attribute#port#8443{asset}", "-c"),
                                              ("search", "-t", f"#preseed#whois+company#C {dns}", "-c"))
    assert (assets.json["count"], assets.json["status"]) == (3, {"A": 1, "F": 1, "P": 1})
    assert assets.json["source"] == {"self": 2, "seed": 1}
    assert (attributes.json["count"], attributes.json["attributes"]) == (1, {"port": 1})
    assert preseeds.json["count"] == 1


def test_statistics_follow_risk_status(guard, sdk):
    def total(rows: list[dict], status: str) -> int:
        return sum(r["data"]["count"] for r in rows if r["key"].endswith("#total") and r["value"] == status)

    before = total(sdk.statistics.list("my#status:TL")[0], "TL")
    dns = f"st-{uid()}.example.com"
    sdk.assets.add(dns, dns)
    sdk.risks.add(f"#asset#{dns}#{dns}", "weak-cipher", "TL")
    one, risks = guard.many(("list", "statistics", "-f", "my#status:TL", "--details"),
                            ("list", "statistics", "-f", "risks", "--details"))
    assert total(one.json["data"], "TL") == before + 1
    assert total(risks.json["data"], "TL") == before + 1


def test_schema(guard):
    names, asset = guard.many(("get", "schema"), ("get", "schema", "-t", "asset", "--details"))
    assert {"asset", "risk", "attribute", "seed", "preseed", "job"} <= set(names.lines)
    assert list(asset.json) == ["asset"] and asset.json["asset"]


def test_export_report_zip(guard, sdk, tmp_path):
    import zipfile

    dns = f"rep-{uid()}.example.com"
    sdk.assets.add(dns, dns)
    sdk.risks.add(f"#asset#{dns}#{dns}", "CVE-2024-5151", "TC")
    out = guard.run("export", "report", "--title", f"E2E {dns}", "--client-name", "Example Co",
                    "--format", "zip", "--risk-keys", f"#risk#{dns}#CVE-2024-5151", "-o", str(tmp_path)).out
    assert "home/reports/" in out
    (archive,) = tmp_path.glob("*.zip")
    with zipfile.ZipFile(archive) as z:
        report = z.read("report.md").decode()
    assert f"# E2E {dns}" in report and f"#risk#{dns}#CVE-2024-5151" in report


# --- assume-role -----------------------------------------------------------------------------------------

def test_assume_role_allowed_for_collaborators_and_refused_otherwise(guard, sdk, stack, tmp_path):
    email = f"analyst-{uid()}@example.com"
    dns = f"ar-{uid()}.example.com"
    sdk.assets.add(dns, dns)
    guard.run("link", "account", email, "-r", "analyst")
    analyst = other_identity(stack, tmp_path / "analyst", email)
    analyst.run("list", "settings")  # cache the analyst's token before concurrent calls

    stranger = f"nobody-{uid()}@example.com"
    own, assumed, refused = analyst.many(("list", "assets"), ("--account", DEMO, "list", "assets"),
                                         ("--account", stranger, "list", "assets"), ok=None)
    assert own.rc == 0 and f"#asset#{dns}#{dns}" not in own.lines, str(own)  # their own, empty, account
    assert assumed.rc == 0 and f"#asset#{dns}#{dns}" in assumed.lines, str(assumed)
    assert refused.rc != 0 and "[403]" in refused.err and "not a collaborator" in refused.err, str(refused)

    sdk.accounts.delete_collaborator(email)
    revoked = analyst.run("--account", DEMO, "list", "assets", ok=False)
    assert "[403]" in revoked.err


def test_readonly_collaborator_cannot_write(guard, sdk, stack, tmp_path):
    email = f"viewer-{uid()}@example.com"
    sdk.accounts.add_collaborator(email, role="readonly")
    viewer = other_identity(stack, tmp_path / "viewer", email)
    res = viewer.run("--account", DEMO, "add", "asset", "-g", f"ro-{uid()}.example.com", ok=False)
    assert "[403]" in res.err and "readonly" in res.err


# --- bad input -------------------------------------------------------------------------------------------

BAD_REQUESTS = [
    ("PUT", "/asset", b"not json"),
    ("PUT", "/asset", b"[1, 2]"),
    ("PUT", "/asset", b'{"group": "", "identifier": ""}'),
    ("PUT", "/asset", b'{"group": "a.com", "identifier": "a.com", "status": "ZZ"}'),
    ("DELETE", "/asset", b"{}"),
    ("PUT", "/risk", b'{"key": "#asset#a.com#a.com", "name": "x", "status": "OH"}'),
    ("PUT", "/risk", b'{"key": 5}'),
    ("DELETE", "/risk", b'{"key": "#risk#a.com#x", "status": "XX"}'),
    ("PUT", "/attribute", b'{"key": "#asset#a.com#a.com"}'),
    ("PUT", "/seed", b'{"type": "asset", "model": "x"}'),
    ("POST", "/preseed", b'{"type": "whois+company"}'),
    ("POST", "/job", b'{"key": "#asset#a.com#a.com", "capabilities": "subdomain"}'),
    ("POST", "/account/bob@example.com", b'{"role": "god"}'),
    ("PUT", "/setting", b'{"name": ""}'),
    ("POST", "/key", b'{"name": "x", "expires": "not-a-date"}'),
    ("DELETE", "/key", b'{"key": []}'),
    ("POST", "/my", b'{"node": {"labels": "Asset"}}'),
    ("POST", "/my", b'{"node": {"labels": ["Asset"], "filters": [{"field": "key", "operator": "BAD", "value": 1}]}}'),
    ("GET", "/my?key=%23job%23&offset=not-json", None),
    ("GET", "/my", None),
    ("GET", "/my/count?key=nokind", None),
    ("PUT", "/file", None),
    ("POST", "/bulk/asset", b'{"action": "explode", "items": []}'),
    ("PUT", "/configuration", b'{"name": "nuclei", "value": "not-an-object"}'),
    ("POST", "/export/report", b'{"export_format": "docx"}'),
]


def test_bad_input_is_a_clear_4xx_with_a_reason(stack, token):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=stack.api, headers=headers, timeout=30) as client:
        def send(case):
            method, path, body = case
            r = client.request(method, path, content=body)
            return case, r.status_code, r.text

        failures = [(case, status, text) for case, status, text in parallel(*[lambda c=c: send(c) for c in BAD_REQUESTS])
                    if not (400 <= status < 500 and _reason(text))]
    assert failures == []


def _reason(text: str) -> str:
    import json

    try:
        return str(json.loads(text).get("message") or "")
    except (ValueError, AttributeError):
        return ""


def test_dashboard_and_ndjson_through_the_real_stack(guard, sdk, stack, token):
    """The BFF on the real stack, in every mode (legacy, all new, mixed): the dashboard's counts are
    the ones `search -c` gives, and NDJSON lists exactly what paging through `GET /my` lists."""
    dns = f"dash-{uid()}.example.com"
    sdk.assets.add(dns, dns)
    sdk.risks.add(f"#asset#{dns}#{dns}", "CVE-2024-8888", "TH")
    auth = {"Authorization": f"Bearer {token}"}
    root = stack.api.removesuffix("/chariot")
    counts = guard.run("search", "-t", "#asset#", "-c").json
    # Four concurrent parts may each start a Lambda instance (a cold start, as on AWS): a part over
    # its timeout is partial, and a partial answer is not cached, so the next call is complete.
    for _ in range(3):
        r = httpx.get(f"{root}/api/v1/dashboard", headers=auth, timeout=30)
        assert r.status_code == 200, r.text
        doc = r.json()
        if not doc["partial"]:
            break
        assert all("no answer within" in why for why in doc["errors"].values()), doc["errors"]
    assert doc["partial"] == [], doc.get("errors")
    assert doc["assets"] == counts["status"]
    assert doc["risks"].get("TH", 0) >= 1 and isinstance(doc["jobs"], dict) and isinstance(doc["notifications"], list)
    assert httpx.get(f"{root}/api/v1/dashboard", timeout=30).status_code == 401  # no token, no dashboard

    paged, offset = [], None
    while True:
        params = {"key": "#asset#", **({"offset": offset} if offset else {})}
        page = httpx.get(f"{stack.api}/my", params=params, headers=auth, timeout=30).json()
        paged += [a["key"] for a in page.get("assets", [])]
        if not page.get("offset"):
            break
        offset = json.dumps(page["offset"])
    streamed = httpx.get(f"{stack.api}/my", params={"key": "#asset#"}, timeout=60,
                         headers={**auth, "accept": "application/x-ndjson"})
    assert streamed.headers["content-type"] == "application/x-ndjson"
    assert [json.loads(x)["key"] for x in streamed.text.splitlines()] == paged and f"#asset#{dns}#{dns}" in paged


GRAPHQL_EVERY_TYPE = """query ($dns: String!) {
  assets(key: $dns) { items { key dns name status risks { key status } attributes { name value } } offset }
  risks(key: $dns) { items { key status } }
  attributes { items { key } }
  jobs { items { key status } }
  seeds { key }
  accounts { key member }
  integrations { key member }
  settings(key: $dns) { items { key name value } }
  capabilities { name }
  notifications { key }
  reports { items { key } }
}"""


def test_graphql_gives_what_the_rest_api_gives(guard, sdk, stack, token):
    """Every type through /graphql on the real stack, in every mode (legacy, all new, mixed): the
    same data as the REST routes, because each resolver calls them through the proxy as the caller."""
    dns = f"gql-{uid()}.example.com"
    sdk.assets.add(dns, dns)
    sdk.risks.add(f"#asset#{dns}#{dns}", "CVE-2024-9999", "TH")
    sdk.attributes.add(f"#asset#{dns}#{dns}", "port", "443")
    sdk.settings.add(dns, "on")
    auth = {"Authorization": f"Bearer {token}"}
    root = stack.api.removesuffix("/chariot")

    def rest(**params):
        return httpx.get(f"{stack.api}/my", params=params, headers=auth, timeout=30).json()

    r = httpx.post(f"{root}/graphql", json={"query": GRAPHQL_EVERY_TYPE, "variables": {"dns": dns}}, headers=auth,
                   timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert "errors" not in body, body["errors"]
    data = body["data"]
    (asset,) = data["assets"]["items"]
    assert asset["key"] == f"#asset#{dns}#{dns}" and [a["key"] for a in rest(key=f"#asset#{dns}")["assets"]] == [asset["key"]]
    assert [x["key"] for x in asset["risks"]] == [x["key"] for x in rest(key=f"#risk#{dns}")["risks"]] != []
    assert asset["attributes"] == [{"name": "port", "value": "443"}]
    assert [x["key"] for x in data["risks"]["items"]] == [x["key"] for x in rest(key=f"#risk#{dns}")["risks"]]
    assert [x["key"] for x in data["settings"]["items"]] == [x["key"] for x in rest(key=f"#setting#{dns}")["settings"]]
    assert data["settings"]["items"][0]["value"] == "on"
    caps = httpx.get(f"{stack.api}/capabilities", headers=auth, timeout=30).json()
    assert sorted(c["name"] for c in data["capabilities"]) == sorted(c["name"] for c in caps)
    for listed in ("attributes", "jobs", "reports"):
        assert isinstance(data[listed]["items"], list)
    for listed in ("seeds", "accounts", "integrations", "notifications"):
        assert isinstance(data[listed], list)

    # A mutation goes through the REST route (so dual write and shadow see it) and reads back.
    made = httpx.post(f"{root}/graphql", headers=auth, timeout=60, json={
        "query": "mutation ($d: String!) { addAsset(dns: $d, name: $d) { key status } }", "variables": {"d": f"m.{dns}"}})
    assert made.status_code == 200 and made.json()["data"]["addAsset"]["key"] == f"#asset#m.{dns}#m.{dns}", made.text
    assert [a["key"] for a in rest(key=f"#asset#m.{dns}")["assets"]] == [f"#asset#m.{dns}#m.{dns}"]
    # GET is for queries; no identity, no data.
    assert httpx.get(f"{root}/graphql", params={"query": 'mutation { deleteSetting(name: "x") }'}, headers=auth,
                     timeout=30).status_code == 405
    anon = httpx.post(f"{root}/graphql", json={"query": "{ settings { items { key } } }"}, timeout=30).json()
    assert anon["data"] is None and anon["errors"][0]["extensions"]["status"] == 401
