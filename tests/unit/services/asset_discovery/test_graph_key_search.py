"""``GET /my?key=#asset#…`` (and #seed#, #attribute#, #preseed#, #risk#): the graph services answer
it exactly like legacy's search function — prefix, exact, range, descending, label, global and the
DynamoDB ``offset`` paging the client round-trips (issue 20, contract corners)."""

from __future__ import annotations

import json

import graph_svc_testkit as kit
from graph_svc_testkit import Services, Stack, both, normalize, same

stack, _moto_stack, services = kit.stack, kit._moto_stack, kit.services  # fixtures


def _write_graph(services: Services, stack: Stack, dns: str) -> None:
    for name in (dns, f"www.{dns}", "10.0.0.7", f"mail.{dns}"):
        same(services, stack, "PUT", "/asset", {"group": dns, "identifier": name})
    same(services, stack, "PUT", "/asset", {"key": f"#asset#{dns}#10.0.0.7", "status": "F"})
    same(services, stack, "PUT", "/seed", {"type": "asset", "model": {"dns": f"seed.{dns}"}})
    same(services, stack, "PUT", "/attribute", {"key": f"#asset#{dns}#{dns}", "name": "port", "value": "443"})
    same(services, stack, "POST", "/preseed", {"type": "whois+company", "title": f"T {dns}", "value": dns})
    same(services, stack, "PUT", "/risk", {"key": f"#asset#{dns}#{dns}", "name": "CVE-2024-2", "status": "TH"})
    same(services, stack, "PUT", "/risk", {"key": f"#asset#{dns}#www.{dns}", "name": "CVE-2024-3", "status": "TL"})


def test_key_searches_answer_like_legacy(services: Services, stack: Stack):
    dns = "ks.example.com"
    _write_graph(services, stack, dns)
    queries = [
        {"key": "#asset#"}, {"key": f"#asset#{dns}"}, {"key": f"#asset#{dns}#{dns}", "exact": "true"},
        {"key": f"#asset#{dns}#a", "to": f"#asset#{dns}#n"}, {"key": f"#asset#{dns}", "desc": "true"},
        {"key": "#asset#", "label": "asset"}, {"key": "#asset#", "label": "job"}, {"key": "#asset#", "global": "true"},
        {"key": f"#asset#seed.{dns}"}, {"key": f"#seed#seed.{dns}"}, {"key": "#attribute#port#443"},
        {"key": "#preseed#whois+company#"}, {"key": "#risk#"}, {"key": f"#risk#{dns}#CVE-2024-3", "exact": "true"},
        {"key": "#risk#", "desc": "true"}, {"key": "#asset#nothing-here"},
        {"key": "#asset#", "offset": "not json"}, {"key": "#asset#", "offset": json.dumps({"username": "x", "key": "y"})},
    ]
    for q in queries:
        status, body = same(services, stack, "GET", "/my", query=q)
        assert status in (200, 400), (q, status, body)
    # the bodies are not trivially empty: the assets and risks written above are found
    assert len(same(services, stack, "GET", "/my", query={"key": f"#asset#{dns}#"})[1]["assets"]) == 4
    assert len(same(services, stack, "GET", "/my", query={"key": f"#risk#{dns}"})[1]["risks"]) == 2


def test_offset_pages_round_trip_like_legacy(services: Services, stack: Stack, monkeypatch):
    dns = "pages.example.com"
    for i in range(5):
        same(services, stack, "PUT", "/asset", {"group": dns, "identifier": f"h{i}.{dns}"})
    monkeypatch.setenv("CHARIOT_PAGE_SIZE", "2")  # legacy's page size
    for client in (services.assets, services.risks):
        monkeypatch.setattr(client.app.state.asset_discovery.settings if client is services.assets
                            else client.app.state.risk_assessment.settings, "page_size", 2)
    query: dict[str, str] = {"key": f"#asset#{dns}"}
    seen: list[str] = []
    while True:
        (ls, lb), (ns, nb) = both(services, stack, "GET", "/my", query=query)
        assert (ls, normalize(lb)) == (ns, normalize(nb))
        seen += [a["key"] for a in nb.get("assets", [])]
        if "offset" not in nb:
            break
        query = {**query, "offset": json.dumps(nb["offset"])}
    assert seen == sorted(f"#asset#{dns}#h{i}.{dns}" for i in range(5))
