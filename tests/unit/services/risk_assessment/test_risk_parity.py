"""risk-assessment answers PUT/DELETE /risk, POST /bulk/risk and POST /my (Risk) like legacy."""

from __future__ import annotations

import graph_svc_testkit as kit
from graph_svc_testkit import Services, Stack, same

stack, _moto_stack, services = kit.stack, kit._moto_stack, kit.services  # fixtures


def _assets(svc: Services, s: Stack) -> None:
    same(svc, s, "PUT", "/asset", {"group": "example.com", "identifier": "example.com"})
    same(svc, s, "PUT", "/asset", {"group": "example.com", "identifier": "1.2.3.4"})
    same(svc, s, "PUT", "/attribute", {"key": "#asset#example.com#1.2.3.4", "name": "port", "value": "443"})


def test_add_update_comment_remove_and_delete(services: Services, stack: Stack):
    _assets(services, stack)
    st, body = same(services, stack, "PUT", "/risk", {"key": "#asset#example.com#1.2.3.4", "name": "cve-2024-0001",
                                                       "status": "TH", "comment": "found it", "tags": ["web"]})
    risk = body["risks"][0]
    assert st == 200 and risk["key"] == "#risk#example.com#CVE-2024-0001" and risk["priority"] == 10
    # a risk on an attribute files under the attribute's asset dns and records its target
    same(services, stack, "PUT", "/risk", {"key": "#attribute#port#443#asset#example.com#1.2.3.4",
                                          "name": "Open Port", "status": "TM"})
    # scanner-sourced risks may skip triage
    same(services, stack, "PUT", "/risk", {"key": "#asset#example.com#example.com", "name": "weak tls",
                                          "status": "OL", "source": "nuclei"})
    same(services, stack, "PUT", "/risk", {"key": "#risk#example.com#CVE-2024-0001", "status": "OC",
                                          "comment": "confirmed"})
    same(services, stack, "PUT", "/risk", {"key": "#risk#example.com#CVE-2024-0001", "comment": "just a note"})
    same(services, stack, "PUT", "/risk", {"key": "#risk#example.com#CVE-2024-0001", "remove": 1,
                                          "title": "Bad bug", "tags": ["prod"]})
    st, body = same(services, stack, "PUT", "/risk", {"key": "#risk#example.com#", "status": "IM"})
    assert len(body["risks"]) == 3 and {r["priority"] for r in body["risks"]} == {20}
    st, body = same(services, stack, "DELETE", "/risk", {"key": "#risk#example.com#open-port", "status": "DMF",
                                                          "comment": "false positive"})
    assert body["status"] == "DMF" and body["history"][-1]["comment"] == "false positive"
    # re-adding an existing risk updates it
    same(services, stack, "PUT", "/risk", {"key": "#asset#example.com#1.2.3.4", "name": "CVE-2024-0001",
                                          "status": "TC"})


def test_risk_bad_input_is_the_same_4xx(services: Services, stack: Stack):
    _assets(services, stack)
    cases = [
        {"key": "#asset#example.com#1.2.3.4", "name": "x", "status": "OH"},  # manual risk not in triage
        {"key": "#asset#example.com#1.2.3.4", "name": "x", "status": "ZZ"},
        {"key": "#asset#nope.com#nope.com", "name": "x", "status": "TH"},  # target missing
        {"key": "#preseed#a#b#c", "name": "x", "status": "TH"},
        {"key": "#asset#example.com#1.2.3.4", "name": "a#b", "status": "TH"},
        {"key": "#risk#example.com#none", "status": "TH"},
        {"key": "#asset#example.com#1.2.3.4", "status": "TH"},  # update with a non-risk key
        {"key": "#risk#example.com#x", "status": "RHF"},  # reason suffix only on D
    ]
    for bad in cases:
        st, body = same(services, stack, "PUT", "/risk", bad)
        assert 400 <= st < 500 and body["message"], bad
    same(services, stack, "PUT", "/risk", {"key": "#asset#example.com#1.2.3.4", "name": "r1", "status": "TL"})
    st, _ = same(services, stack, "PUT", "/risk", {"key": "#risk#example.com#r1", "remove": 7})
    assert st == 400
    for bad in ({"key": "#risk#example.com#r1", "status": "OH"}, {"key": "#risk#example.com#zzz", "status": "DHF"},
                {"status": "DHF"}):
        st, _ = same(services, stack, "DELETE", "/risk", bad)
        assert st in (400, 404)
    st, _ = same(services, stack, "PUT", "/risk", raw=b"nope")
    assert st == 400


def test_bulk_risk_and_query(services: Services, stack: Stack):
    _assets(services, stack)
    st, job = same(services, stack, "POST", "/bulk/risk", {"action": "upsert", "items": [
        {"key": "#asset#example.com#1.2.3.4", "name": "b1", "status": "TH"},
        {"key": "#asset#example.com#1.2.3.4", "name": "b2", "status": "XX"},
        {"key": "#asset#missing.com#missing.com", "name": "b3", "status": "TL"}]})
    assert job["config"]["failed"] == "2" and job["status"].startswith("JP#")
    same(services, stack, "POST", "/bulk/risk", {"action": "delete", "items": []})
    same(services, stack, "POST", "/bulk/risk", {"items": [{"key": "#asset#x#x", "name": "n", "status": "TH"}]})
    for q in ({"node": {"labels": ["Risk"]}},
              {"node": {"labels": ["Risk"], "filters": [{"field": "status", "operator": "STARTS WITH", "value": "T"}]}},
              {"node": {"labels": ["Risk"], "relationships": [
                  {"label": "HAS_VULNERABILITY", "source": {"labels": ["Asset"]}}]}},
              {"node": {"labels": ["Risk"], "relationships": [
                  {"label": "HAS_VULNERABILITY", "source": {"labels": ["Attribute"]}}]}},
              {"node": {"labels": ["Risk"]}, "limit": 1, "page": 0},
              {"node": {"labels": ["Risk"]}, "limit": 0}):
        same(services, stack, "POST", "/my", q)
    same(services, stack, "POST", "/my", {"node": {"labels": ["Risk"], "relationships": [
        {"label": "HAS_VULNERABILITY", "source": {"labels": ["Asset"]}}]}}, query={"tree": "true"})


def test_statistics_follow_legacy(services: Services, stack: Stack):
    """The #statistic#my#status rows risk writes produce are the ones legacy produces."""
    from chariot_migrate.legacy import store as legacy_store

    _assets(services, stack)
    same(services, stack, "PUT", "/risk", {"key": "#asset#example.com#1.2.3.4", "name": "s1", "status": "TH"})
    same(services, stack, "PUT", "/risk", {"key": "#asset#example.com#1.2.3.4", "name": "s2", "status": "TH"})
    same(services, stack, "PUT", "/risk", {"key": "#risk#example.com#s1", "status": "OH"})
    legacy_rows = {r["key"]: kit.normalize(kit.public_plain(r)) for r in legacy_store.query_all(stack.user, "#statistic#")
                   if str(r.get("value", "")) in ("TH", "OH")}
    svc = services.risks.app.state.risk_assessment
    rows = {r["key"]: kit.normalize(r) for r in svc.store.statistics.query_all(stack.user, "#statistic#")}
    assert rows == legacy_rows
    totals = {k: v["data"]["count"] for k, v in rows.items() if k.endswith("#total")}
    assert totals == {"#statistic#my#status:TH#total": 1, "#statistic#my#status:OH#total": 1}


def test_attribute_on_a_risk_crosses_the_service_line(services: Services, stack: Stack):
    """``PUT /attribute`` on a risk key: asset-discovery asks risk-assessment whether it exists."""
    _assets(services, stack)
    same(services, stack, "PUT", "/risk", {"key": "#asset#example.com#1.2.3.4", "name": "rk", "status": "TL"})
    st, body = same(services, stack, "PUT", "/attribute", {"key": "#risk#example.com#rk", "name": "ticket",
                                                            "value": "SEC-1"})
    assert st == 200 and body["attributes"][0]["source"] == "#risk#example.com#rk"
    st, _ = same(services, stack, "PUT", "/attribute", {"key": "#risk#example.com#missing", "name": "t", "value": "v"})
    assert st == 404
    same(services, stack, "POST", "/my", {"node": {"labels": ["Risk"], "relationships": [
        {"label": "HAS_ATTRIBUTE", "target": {"labels": ["Attribute"]}}]}})
