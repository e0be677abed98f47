from __future__ import annotations

import json

import legacy_testkit
from legacy_testkit import Stack

from chariot_migrate.legacy import asset, attribute, job, risk, search, setting, store

stack, _moto_stack = legacy_testkit.stack, legacy_testkit._moto_stack  # fixtures


def _seed_settings(s: Stack, n: int) -> None:
    store.put_many([{"username": s.user, "key": f"#setting#s{i:03d}", "name": f"s{i:03d}", "value": str(i)}
                    for i in range(n)])


def test_get_my_prefix_buckets_and_offset_round_trip(stack: Stack, monkeypatch):
    monkeypatch.setenv("CHARIOT_PAGE_SIZE", "4")
    _seed_settings(stack, 10)
    seen, offset, pages = [], None, 0
    while True:
        q = {"key": "#setting#"} | ({"offset": offset} if offset else {})
        st, body = stack.call(search.handler, "GET", "/my", query=q)
        assert st == 200
        seen += [r["name"] for r in body["settings"]]
        pages += 1
        if "offset" not in body:
            break
        assert isinstance(body["offset"], dict)
        offset = json.dumps(body["offset"])  # what the client sends back
    assert seen == [f"s{i:03d}" for i in range(10)] and pages == 3


def test_get_my_exact_desc_label_and_bad_offset(stack: Stack):
    _seed_settings(stack, 3)
    st, body = stack.call(search.handler, "GET", "/my", query={"key": "#setting#s001", "exact": "true"})
    assert [r["name"] for r in body["settings"]] == ["s001"]
    st, body = stack.call(search.handler, "GET", "/my", query={"key": "#setting#", "desc": "true"})
    assert [r["name"] for r in body["settings"]] == ["s002", "s001", "s000"]
    assert stack.call(search.handler, "GET", "/my", query={"key": "#setting#", "offset": "{bad"})[0] == 400
    other = json.dumps({"username": "someone@else.com", "key": "#setting#s000"})
    assert stack.call(search.handler, "GET", "/my", query={"key": "#setting#", "offset": other})[0] == 400
    assert stack.call(search.handler, "GET", "/my")[0] == 400
    assert stack.call(search.handler, "GET", "/my", query={"key": "nofield"})[0] == 400


def test_get_my_field_value_uses_indexes(stack: Stack):
    stack.call(asset.handler, "PUT", "/asset", {"group": "e.com", "identifier": "e.com"})
    stack.call(job.handler, "POST", "/job", {"key": "#asset#e.com#e.com", "capabilities": ["portscan", "whois"]})
    st, body = stack.call(search.handler, "GET", "/my", query={"key": "status:JQ", "label": "job"})
    assert st == 200 and len(body["jobs"]) == 2 and "assets" not in body
    st, body = stack.call(search.handler, "GET", "/my", query={"key": "source:whois", "label": "job"})
    assert [j["key"] for j in body["jobs"]] == ["#job#e.com#e.com#whois"]
    st, body = stack.call(search.handler, "GET", "/my", query={"key": "dns:e.com"})
    assert {"assets", "jobs"} <= set(body)


def _mk_graph(s: Stack):
    for ident in ("1.2.3.4", "www.e.com", "api.e.com"):
        s.call(asset.handler, "PUT", "/asset", {"group": "e.com", "identifier": ident})
    s.call(asset.handler, "PUT", "/asset", {"group": "other.com", "identifier": "other.com"})
    s.call(attribute.handler, "PUT", "/attribute", {"key": "#asset#e.com#1.2.3.4", "name": "port", "value": "22"})
    s.call(risk.handler, "PUT", "/risk", {"key": "#asset#e.com#1.2.3.4", "name": "weak ssh", "status": "TL"})
    s.call(risk.handler, "PUT", "/risk", {"key": "#asset#other.com#other.com", "name": "CVE-2024-1234", "status": "TC"})


def _q(s: Stack, node, **kw):
    st, body = s.call(search.handler, "POST", "/my", {"node": node, **kw})
    assert st == 200, body
    return body


def _f(field, op, value, not_=False):
    return {"field": field, "operator": op, "value": value, "not": not_}


def test_graph_query_operators(stack: Stack):
    _mk_graph(stack)
    names = lambda b: sorted(a["name"] for a in b.get("assets", []))  # noqa: E731
    assert names(_q(stack, {"labels": ["Asset"], "filters": [_f("name", "CONTAINS", "E.COM")]})) == [
        "api.e.com", "www.e.com"]
    assert names(_q(stack, {"labels": ["Asset"], "filters": [_f("name", "STARTS WITH", "www")]})) == ["www.e.com"]
    assert names(_q(stack, {"labels": ["Asset"], "filters": [_f("name", "ENDS WITH", ".e.com", True)]})) == [
        "1.2.3.4", "other.com"]
    assert names(_q(stack, {"labels": ["Asset"], "filters": [_f("class", "IN", [["ipv4", "tld"]])]})) == [
        "1.2.3.4", "other.com"]
    risks = _q(stack, {"labels": ["Risk"], "filters": [_f("priority", "<=", 10)]})["risks"]
    assert [r["name"] for r in risks] == ["CVE-2024-1234"]
    risks = _q(stack, {"labels": ["Risk"], "filters": [_f("priority", ">", 0)]})["risks"]
    assert [r["name"] for r in risks] == ["weak-ssh"]
    either = _f("", "OR", [_f("name", "=", "other.com"), _f("name", "=", "www.e.com")])
    assert names(_q(stack, {"labels": ["Asset"]}, filters=[either])) == ["other.com", "www.e.com"]
    both = _f("", "AND", [_f("dns", "=", "e.com"), _f("class", "=", "ipv4", True)])
    assert names(_q(stack, {"labels": ["Asset"], "filters": [both]})) == ["api.e.com", "www.e.com"]
    assert names(_q(stack, {"labels": ["Asset"], "search": "api"})) == ["api.e.com"]
    assert stack.call(search.handler, "POST", "/my", {"node": {"filters": [_f("x", "LIKE", "y")]}})[0] == 400


def test_graph_relationships(stack: Stack):
    _mk_graph(stack)
    by_key = lambda k: {"labels": ["Asset"], "filters": [_f("key", "=", k)]}  # noqa: E731
    risks = _q(stack, {"labels": ["Risk"], "relationships": [
        {"label": "HAS_VULNERABILITY", "source": by_key("#asset#other.com#other.com")}]})
    assert [r["key"] for r in risks["risks"]] == ["#risk#other.com#CVE-2024-1234"]
    assets = _q(stack, {"labels": ["Asset"], "relationships": [
        {"label": "HAS_ATTRIBUTE", "target": {"labels": ["Attribute"], "filters": [_f("value", "=", "22")]}}]})
    assert [a["key"] for a in assets["assets"]] == ["#asset#e.com#1.2.3.4"]
    tree = stack.call(search.handler, "POST", "/my", {"node": by_key("#asset#e.com#1.2.3.4") | {"relationships": [
        {"label": ["HAS_VULNERABILITY", "HAS_PORT"], "target": {}, "optional": True, "length": 1}]}, "limit": 4096},
        query={"tree": "true"})[1]
    assert isinstance(tree, list) and len(tree) == 1
    rel = tree[0]["node"]["relationships"]
    assert [r["label"] for r in rel] == ["HAS_VULNERABILITY"]
    assert rel[0]["target"]["result"]["risks"][0]["name"] == "weak-ssh"


def test_graph_paging_and_413_contract(stack: Stack, monkeypatch):
    store.put_many([{"username": stack.user, "key": f"#asset#p.com#h{i:02d}.p.com", "dns": "p.com",
                     "name": f"h{i:02d}.p.com", "status": "A", "source": "self"} for i in range(10)])
    got, page = [], 0
    while True:
        body = _q(stack, {"labels": ["Asset"]}, page=page, limit=4)
        got += [a["name"] for a in body["assets"]]
        if "offset" not in body:
            break
        assert isinstance(body["offset"], str)
        page = int(body["offset"])
    assert got == [f"h{i:02d}.p.com" for i in range(10)]
    monkeypatch.setenv("CHARIOT_MAX_RESPONSE_BYTES", "400")
    st, body = stack.call(search.handler, "POST", "/my", {"node": {"labels": ["Asset"]}, "limit": 8, "page": 0})
    assert st == 413 and "reduce page size" in body["message"]
    st, body = stack.call(search.handler, "POST", "/my", {"node": {"labels": ["Asset"]}, "limit": 2, "page": 0})
    assert st == 200 and len(body["assets"]) == 2


def test_count_and_setting_delete(stack: Stack):
    _mk_graph(stack)
    st, c = stack.call(search.handler, "GET", "/my/count", query={"key": "#asset#"})
    assert st == 200 and c["count"] == 4 and c["status"] == {"A": 4}
    stack.call(setting.handler, "PUT", "/setting", {"name": "frozen", "value": "false"})
    assert stack.call(setting.handler, "DELETE", "/setting", {"name": "frozen"})[1]["key"] == "#setting#frozen"
    assert stack.call(search.handler, "GET", "/my", query={"key": "#setting#"})[1] == {}


def test_count_by_field_value_as_the_cli_search_c_sends_it(stack: Stack):
    _mk_graph(stack)
    st, c = stack.call(search.handler, "GET", "/my/count", query={"key": "dns:e.com"})
    assert st == 200 and c["count"] == 4 and c["status"] == {"A": 3, "TL": 1}  # 3 assets + the risk
    st, c = stack.call(search.handler, "GET", "/my/count", query={"key": "dns:e.com", "label": "risk"})
    assert c["count"] == 1 and c["status"] == {"TL": 1}
    st, c = stack.call(search.handler, "GET", "/my/count", query={"key": "status:T"})
    assert c["count"] == 2
    st, body = stack.call(search.handler, "GET", "/my/count", query={"key": "nofield"})
    assert st == 400 and "field:value" in body["message"]
