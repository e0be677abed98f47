from __future__ import annotations

import legacy_testkit
from legacy_testkit import Stack

from chariot_migrate.legacy import asset, attribute, preseed, risk, search, seed

stack, _moto_stack = legacy_testkit.stack, legacy_testkit._moto_stack  # fixtures


def _graph(s: Stack, node: dict, **extra):
    return s.call(search.handler, "POST", "/my", {"node": node, **extra})


def test_put_asset_returns_list_with_derived_fields(stack: Stack):
    st, body = stack.call(asset.handler, "PUT", "/asset", {"group": "Example.com", "identifier": "1.2.3.4",
                                                          "status": "A", "attackSurface": ["external"], "type": "asset"})
    assert st == 200 and isinstance(body, list)
    a = body[0]
    assert a["key"] == "#asset#example.com#1.2.3.4" and a["class"] == "ipv4" and a["status"] == "A"
    assert a["dns"] == "example.com" and a["name"] == "1.2.3.4" and a["source"] == "self"
    assert a["history"][0]["to"] == "A" and a["username"] == stack.user


def test_asset_update_by_prefix_and_delete(stack: Stack):
    for ident in ("a.example.com", "b.example.com"):
        stack.call(asset.handler, "PUT", "/asset", {"group": "example.com", "identifier": ident})
    st, out = stack.call(asset.handler, "PUT", "/asset", {"key": "#asset#example.com#", "status": "F"})
    assert st == 200 and sorted(a["status"] for a in out) == ["F", "F"]
    st, gone = stack.call(asset.handler, "DELETE", "/asset", {"key": "#asset#example.com#a.example.com"})
    assert st == 200 and gone["status"] == "D" and gone["history"][-1] == gone["history"][-1] | {"from": "F", "to": "D"}
    assert stack.call(asset.handler, "PUT", "/asset", {"key": "#asset#nope#", "status": "A"})[0] == 404


def test_asset_bad_input_is_400_with_reason(stack: Stack):
    cases = [
        ({"group": "x.com"}, "identifier"),
        ({"group": "x.com", "identifier": "x.com", "status": "Q"}, "invalid asset status"),
        ({"group": "x#y", "identifier": "x"}, "must not contain '#'"),
        ({"key": "#risk#a#b", "status": "A"}, "must start with #asset#"),
        ("[1,2", "not valid JSON"),
        ([1, 2], "JSON object"),
    ]
    for body, reason in cases:
        st, out = stack.call(asset.handler, "PUT", "/asset", body)
        assert st == 400, body
        assert reason in out["message"], (body, out)
    assert stack.call(asset.handler, "GET", "/asset")[0] == 405


def test_risk_add_update_delete_and_priority(stack: Stack):
    stack.call(asset.handler, "PUT", "/asset", {"group": "example.com", "identifier": "1.2.3.4"})
    st, out = stack.call(risk.handler, "PUT", "/risk", {"key": "#asset#example.com#1.2.3.4", "name": "cve-2024-0001",
                                                        "status": "TH", "comment": "found it", "source": ""})
    assert st == 200 and list(out) == ["risks"]
    r = out["risks"][0]
    assert r["key"] == "#risk#example.com#CVE-2024-0001" and r["priority"] == 10 and r["status"] == "TH"
    assert r["history"][0]["comment"] == "found it"
    st, out = stack.call(risk.handler, "PUT", "/risk", {"key": r["key"], "status": "OC", "comment": "confirmed"})
    r2 = out["risks"][0]
    assert r2["status"] == "OC" and r2["priority"] == 0
    assert r2["history"][-1] | {"updated": ""} == {"from": "TH", "to": "OC", "by": stack.user, "comment": "confirmed", "updated": ""}
    st, out = stack.call(risk.handler, "PUT", "/risk", {"key": r["key"], "comment": "just a note"})
    assert set(out["risks"][0]["history"][-1]) == {"by", "comment", "updated"}
    st, out = stack.call(risk.handler, "PUT", "/risk", {"key": r["key"], "remove": 2})
    assert "comment" not in out["risks"][0]["history"][2]
    st, d = stack.call(risk.handler, "DELETE", "/risk", {"key": r["key"], "status": "DCF"})
    assert st == 200 and d["status"] == "DCF"
    # other names: lowercased, spaces to dashes
    st, out = stack.call(risk.handler, "PUT", "/risk", {"key": "#asset#example.com#1.2.3.4", "name": "Weak TLS",
                                                        "status": "TL"})
    assert out["risks"][0]["key"] == "#risk#example.com#weak-tls"


def test_risk_bad_input(stack: Stack):
    stack.call(asset.handler, "PUT", "/asset", {"group": "example.com", "identifier": "example.com"})
    base = {"key": "#asset#example.com#example.com", "name": "x"}
    assert "triage status" in stack.call(risk.handler, "PUT", "/risk", base | {"status": "OH"})[1]["message"]
    assert stack.call(risk.handler, "PUT", "/risk", base | {"status": "ZZ"})[0] == 400
    assert stack.call(risk.handler, "PUT", "/risk", base | {"status": "TH", "key": "#asset#no#no"})[0] == 404
    assert stack.call(risk.handler, "DELETE", "/risk", {"key": "#risk#example.com#x", "status": "OH"})[0] == 400
    assert stack.call(risk.handler, "PUT", "/risk", {"key": "#risk#nope#x", "status": "OH"})[0] == 404


def test_attributes_and_relationships(stack: Stack):
    stack.call(asset.handler, "PUT", "/asset", {"group": "example.com", "identifier": "1.2.3.4"})
    akey = "#asset#example.com#1.2.3.4"
    st, out = stack.call(attribute.handler, "PUT", "/attribute", {"key": akey, "name": "port", "value": "443"})
    assert st == 200 and out["attributes"][0]["key"] == "#attribute#port#443#asset#example.com#1.2.3.4"
    assert out["attributes"][0]["source"] == akey
    assert stack.call(attribute.handler, "PUT", "/attribute", {"key": "#asset#x#y", "name": "p", "value": "1"})[0] == 404
    # by_source: attributes of the asset via POST /my
    st, res = _graph(stack, {"labels": ["Attribute"],
                             "filters": [{"field": "source", "operator": "STARTS WITH", "value": akey, "not": False}]})
    assert [a["name"] for a in res["attributes"]] == ["port"]
    # Asset -HAS_ATTRIBUTE-> Attribute
    st, res = _graph(stack, {"labels": ["Attribute"], "relationships": [{"label": "HAS_ATTRIBUTE", "source": {
        "labels": ["Asset"], "filters": [{"field": "key", "operator": "=", "value": akey}]}}]})
    assert len(res["attributes"]) == 1
    st, d = stack.call(attribute.handler, "DELETE", "/attribute", {"key": out["attributes"][0]["key"]})
    assert st == 200 and _graph(stack, {"labels": ["Attribute"]})[1] == {}


def test_seed_add_list_update(stack: Stack):
    st, s = stack.call(seed.handler, "PUT", "/seed", {"type": "asset", "model": {"dns": "seed.example.org",
                                                                                 "status": "P"}})
    assert st == 200 and s["key"] == "#asset#seed.example.org#seed.example.org" and s["source"] == "seed"
    st, res = _graph(stack, {"labels": ["Seed"], "filters": [{"field": "key", "operator": "=", "value": s["key"],
                                                               "not": False}]})
    assert [x["key"] for x in res["seeds"]] == [s["key"]]
    st, up = stack.call(seed.handler, "PUT", "/seed", {"key": s["key"], "status": "A"})
    assert st == 200 and up["status"] == "A"
    assert stack.call(seed.handler, "PUT", "/seed", {"key": "#asset#no#no", "status": "A"})[0] == 404
    assert stack.call(seed.handler, "PUT", "/seed", {"type": "asset", "model": {}})[0] == 400
    # a plain asset is not a seed
    stack.call(asset.handler, "PUT", "/asset", {"group": "plain.org", "identifier": "plain.org"})
    assert len(_graph(stack, {"labels": ["Seed"]})[1]["seeds"]) == 1


def test_preseed_lifecycle(stack: Stack):
    st, out = stack.call(preseed.handler, "POST", "/preseed", {"type": "whois+company", "title": "Example Co",
                                                                "value": "example co", "status": "A"})
    assert st == 200 and out[0]["key"] == "#preseed#whois+company#Example Co#example co"
    st, up = stack.call(preseed.handler, "PUT", "/preseed", {"key": out[0]["key"], "status": "F"})
    assert st == 200 and up["status"] == "F"
    assert stack.call(preseed.handler, "DELETE", "/preseed", {"key": out[0]["key"]})[0] == 200
    assert stack.call(preseed.handler, "DELETE", "/preseed", {"key": out[0]["key"]})[0] == 404
    assert stack.call(preseed.handler, "POST", "/preseed", {"type": "x"})[0] == 400


def test_bulk_asset_writes_results_file(stack: Stack):
    from chariot_migrate.legacy import blobs
    items = [{"group": "b.com", "identifier": "b.com"}, {"group": "bad#", "identifier": "x"}]
    st, job = stack.call(asset.handler, "POST", "/bulk/asset", {"action": "upsert", "items": items})
    assert st == 200 and job["status"].startswith("JP") and job["config"]["failed"] == "1"
    import json
    results = json.loads(blobs.read(stack.user, job["config"]["results_s3_key"]))
    assert [r["status"] for r in results] == ["ok", "error"]
    assert stack.call(asset.handler, "POST", "/bulk/asset", {"action": "nuke", "items": []})[0] == 400


def test_statistics_follow_status_changes(stack: Stack):
    stack.call(asset.handler, "PUT", "/asset", {"group": "e.com", "identifier": "e.com"})
    akey = "#asset#e.com#e.com"
    for name in ("a", "b"):
        stack.call(risk.handler, "PUT", "/risk", {"key": akey, "name": name, "status": "TH"})
    stack.call(risk.handler, "PUT", "/risk", {"key": "#risk#e.com#a", "status": "OH"})
    st, res = stack.call(search.handler, "GET", "/my", query={"key": "#statistic#my#status:T"})
    rows = {r["key"].rsplit("#", 1)[1]: r for r in res["statistics"]}
    assert rows["total"]["data"]["count"] == 1 and rows["total"]["value"] == "TH"
    st, res = stack.call(search.handler, "GET", "/my", query={"key": "#statistic#my#status:OH"})
    assert {r["data"]["count"] for r in res["statistics"]} == {1}
