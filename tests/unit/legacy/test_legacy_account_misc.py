from __future__ import annotations

import base64

import legacy_testkit
import requests
from legacy_testkit import Stack

from chariot_migrate.legacy import account, file, hook, schema, search, setting, store

stack, _moto_stack = legacy_testkit.stack, legacy_testkit._moto_stack  # fixtures


def _acct(s: Stack, method: str, member: str, body=None, **kw):
    return s.call(account.handler, method, f"/account/{member}", body, resource="/account/{member}",
                  path_params={"member": member}, **kw)


def test_collaborators_integrations_and_webhook(stack: Stack):
    bob = stack.other("bob")
    st, row = _acct(stack, "POST", bob, {"config": {}, "value": "", "role": "analyst"})
    assert st == 200 and row["member"] == bob and row["role"] == "analyst"
    assert _acct(stack, "POST", stack.other("eve"), {"role": "superuser"})[0] == 400
    st, integ = _acct(stack, "POST", "nessus-import", {"config": {}, "value": "", "role": "imports/nessus-import/x"})
    assert st == 200 and integ["role"] == "imports/nessus-import/x"
    st, h = stack.call(account.handler, "POST", "/account/hook", {"config": {}, "value": "pin-1", "role": "readonly"},
                       resource="/account/{member}", path_params={"member": "hook"})
    assert st == 200 and h["key"] == f"#account#{stack.user}#hook#pin-1"
    st, rows = stack.call(search.handler, "GET", "/my", query={"key": "#account#"})
    members = sorted(r["member"] for r in rows["accounts"])
    assert members == sorted([bob, "nessus-import", "hook"])
    # the collaborator sees the account it may act for
    st, theirs = stack.call(search.handler, "GET", "/my", query={"key": "#account#"}, principal=bob)
    assert [r["name"] for r in theirs["accounts"]] == [stack.user]
    st, d = stack.call(account.handler, "DELETE", "/account/hook", {"key": h["key"], "member": "hook", "value": "pin-1"},
                       resource="/account/{member}", path_params={"member": "hook"})
    assert st == 200 and d["member"] == "hook"
    assert _acct(stack, "DELETE", bob, {"value": "", "config": {}})[0] == 200
    assert _acct(stack, "DELETE", bob, {"value": "", "config": {}})[0] == 404


def test_inbound_hook_creates_asset_attribute_and_risk(stack: Stack):
    stack.call(account.handler, "POST", "/account/hook", {"value": "pin-9"}, resource="/account/{member}",
               path_params={"member": "hook"})
    enc = base64.b64encode(stack.user.encode()).decode().rstrip("=")
    st, out = stack.call(hook.handler, "PUT", f"/hook/{enc}/pin-9", {"dns": "w.com", "name": "1.1.1.1",
                                                                    "finding": "open-redirect"},
                         token=None, resource="/hook/{username}/{pin}", path_params={"username": enc, "pin": "pin-9"})
    assert st == 200 and out["assets"][0]["key"] == "#asset#w.com#1.1.1.1"
    assert store.get(stack.user, "#attribute#source#webhook#asset#w.com#1.1.1.1")
    assert store.get(stack.user, "#risk#w.com#open-redirect")["status"] == "TI"
    bad = stack.call(hook.handler, "PUT", f"/hook/{enc}/wrong", {"dns": "w.com", "name": "x"}, token=None,
                     resource="/hook/{username}/{pin}", path_params={"username": enc, "pin": "wrong"})
    assert bad[0] == 401
    assert stack.call(hook.handler, "PUT", f"/hook/{enc}/pin-9", {"dns": "w.com"}, token=None,
                      resource="/hook/{username}/{pin}", path_params={"username": enc, "pin": "pin-9"})[0] == 400


def test_settings_and_configurations(stack: Stack):
    st, s = stack.call(setting.handler, "PUT", "/setting", {"name": "frozen", "value": "false"})
    assert s == s | {"key": "#setting#frozen", "name": "frozen", "value": "false"}
    st, c = stack.call(setting.handler, "PUT", "/configuration", {"name": "nuclei", "value": {"rate": 5}})
    assert st == 200 and c["key"] == "#configuration#nuclei" and c["value"] == {"rate": 5}
    assert stack.call(setting.handler, "PUT", "/configuration", {"name": "x", "value": "flat"})[0] == 400
    assert stack.call(setting.handler, "PUT", "/setting", {"value": "x"})[0] == 400
    assert stack.call(setting.handler, "DELETE", "/configuration", {"name": "nuclei"})[0] == 200
    assert stack.call(setting.handler, "DELETE", "/setting", {"name": "nope"})[0] == 404


def test_files_presigned_round_trip(stack: Stack):
    st, up = stack.call(file.handler, "PUT", "/file", query={"name": "home/hello.txt"})
    assert st == 200 and up["url"].startswith("https://")
    assert requests.put(up["url"], data=b"hello").status_code == 200
    st, listed = stack.call(search.handler, "GET", "/my", query={"key": "#file#home/hello.txt", "exact": "true"})
    assert listed["files"][0]["name"] == "home/hello.txt"
    st, down = stack.call(file.handler, "GET", "/file", query={"name": "home/hello.txt"})
    assert requests.get(down["url"]).content == b"hello"
    assert stack.call(file.handler, "GET", "/file", query={"name": "home/missing"})[0] == 404
    assert stack.call(file.handler, "GET", "/file", query={"name": "../etc/passwd"})[0] == 400
    assert stack.call(file.handler, "GET", "/file")[0] == 400
    assert stack.call(file.handler, "DELETE", "/file", {}, query={"name": "home/hello.txt"})[0] == 200
    assert stack.call(file.handler, "GET", "/file", query={"name": "home/hello.txt"})[0] == 404


def test_encrypted_file_inline_bytes(stack: Stack):
    from legacy_testkit import v1_event
    ev = v1_event("PUT", "/encrypted-file", body=b"\x00secret\xff", query={"name": "_encrypted/a.bin"},
                  headers={"Authorization": f"Bearer {stack.token()}"})
    assert file.handler(ev, None)["statusCode"] == 200
    st, data = stack.call(file.handler, "GET", "/encrypted-file", query={"name": "_encrypted/a.bin"})
    assert st == 200 and data == b"\x00secret\xff"


def test_schema_lists_entities(stack: Stack):
    st, s = stack.call(schema.handler, "GET", "/schema")
    assert st == 200 and {"asset", "risk", "attribute", "seed", "preseed", "job"} <= set(s)
    assert "attackSurface" in s["asset"]["properties"]


def test_malformed_events_never_crash(stack: Stack):
    resp = search.handler({"nonsense": True}, None)
    assert resp["statusCode"] == 400
    from legacy_testkit import v1_event
    ev = v1_event("POST", "/my", body="eyJub2RlIjogMX0=", headers={"Authorization": f"Bearer {stack.token()}"})
    ev["isBase64Encoded"] = True  # {"node": 1}
    assert search.handler(ev, None)["statusCode"] == 400


def test_bad_file_names_and_missing_uploads_are_4xx_not_crashes(stack: Stack):
    # Control characters break S3 keys: refused before any S3 call.
    st, body = stack.call(file.handler, "DELETE", "/file", {}, query={"name": "home/a\nb.txt"})
    assert st == 400 and "control characters" in body["message"]
    # A row handed out by PUT /file whose upload never happened: 404 with what to do, not a 500.
    assert stack.call(file.handler, "PUT", "/file", query={"name": "home/never.bin"})[0] == 200
    st, body = stack.call(file.handler, "GET", "/encrypted-file", query={"name": "home/never.bin"})
    assert st == 404 and "no content yet" in body["message"]
