"""asset-discovery answers every owned route exactly like the legacy Lambda functions."""

from __future__ import annotations

import graph_svc_testkit as kit
from graph_svc_testkit import Services, Stack, same

stack, _moto_stack, services = kit.stack, kit._moto_stack, kit.services  # fixtures


def test_put_asset_add_update_prefix_and_delete(services: Services, stack: Stack):
    st, body = same(services, stack, "PUT", "/asset",
                    {"group": "Example.com", "identifier": "1.2.3.4", "status": "A", "attackSurface": ["external"],
                     "type": "asset"})
    assert st == 200 and body[0]["key"] == "#asset#example.com#1.2.3.4" and body[0]["class"] == "ipv4"
    same(services, stack, "PUT", "/asset", {"group": "example.com", "identifier": "www.example.com"})
    same(services, stack, "PUT", "/asset", {"dns": "old.example.com", "name": "old.example.com"})  # older UI shape
    # re-discovery merges surfaces and keeps history
    same(services, stack, "PUT", "/asset", {"group": "example.com", "identifier": "1.2.3.4",
                                           "attackSurface": ["internal"], "status": "F"})
    # update by exact key and by prefix
    same(services, stack, "PUT", "/asset", {"key": "#asset#example.com#1.2.3.4", "status": "A", "comment": "back"})
    st, body = same(services, stack, "PUT", "/asset", {"key": "#asset#example.com", "attackSurface": ["cloud"],
                                                        "secret": "s3cret"})
    assert len(body) == 2
    same(services, stack, "DELETE", "/asset", {"key": "#asset#example.com#www.example.com"})
    st, body = same(services, stack, "DELETE", "/asset", {"key": "#asset#example.com"})
    assert isinstance(body, list) and all(a["status"] == "D" for a in body)


def test_put_asset_bad_input_is_the_same_4xx(services: Services, stack: Stack):
    for bad in ({"group": "e.com"}, {"group": "e.com", "identifier": "x", "status": "Q"},
                {"key": "#asset#nothing#here", "status": "A"}, {"key": "#risk#x#y", "status": "A"},
                {"group": "e#com", "identifier": "x"}, {"key": "#asset#e.com#x", "status": "BAD"}):
        st, body = same(services, stack, "PUT", "/asset", bad)
        assert 400 <= st < 500 and body["message"]
    for raw in (b"", b"{not json", b"[1,2]"):
        st, _ = same(services, stack, "PUT", "/asset", raw=raw)
        assert st == 400
    st, _ = same(services, stack, "DELETE", "/asset", {"key": "#asset#missing#missing"})
    assert st == 404
    st, _ = same(services, stack, "PUT", "/asset", {"group": "e.com", "identifier": "e.com"}, token=None)
    assert st == 401


def test_seeds_preseeds_attributes(services: Services, stack: Stack):
    st, seed = same(services, stack, "PUT", "/seed", {"type": "asset", "model": {"dns": "Seed.example.org",
                                                                                  "status": "P", "note": "x"}})
    assert seed["key"] == "#asset#seed.example.org#seed.example.org" and seed["source"] == "seed"
    same(services, stack, "PUT", "/seed", {"type": "asset", "model": {"group": "g.example.org", "owner": None,
                                                                      "score": 1.5, "meta": {"k": [1, None]}}})
    same(services, stack, "POST", "/my", {"node": {"labels": ["Seed"]}})
    same(services, stack, "PUT", "/seed", {"key": "#asset#seed.example.org#seed.example.org", "status": "A",
                                          "comment": "approved"})
    same(services, stack, "PUT", "/seed", {"key": "#seed#seed.example.org#seed.example.org", "status": "F"})
    for bad in ({"type": "asset", "model": {}}, {"key": "#asset#nope#nope", "status": "A"},
                {"key": "#asset#seed.example.org#seed.example.org", "status": "ZZ"}, {"model": {"dns": "x", "status": "Q"}}):
        st, _ = same(services, stack, "PUT", "/seed", bad)
        assert st in (400, 404)
    same(services, stack, "PUT", "/asset", {"group": "seed.example.org", "identifier": "10.0.0.1"})
    st, body = same(services, stack, "PUT", "/seed", {"key": "#asset#seed.example.org#10.0.0.1", "status": "A"})
    assert st == 404  # not a seed

    st, pre = same(services, stack, "POST", "/preseed", {"type": "whois+company", "title": "Example Co",
                                                          "value": "example co", "status": "P"})
    key = pre[0]["key"]
    same(services, stack, "POST", "/preseed", {"type": "whois+company", "title": "Example Co", "value": "example co"})
    same(services, stack, "PUT", "/preseed", {"key": key, "status": "A", "comment": "ok"})
    same(services, stack, "PUT", "/preseed", {"key": key, "status": "A"})
    for method, bad in (("PUT", {"key": "#asset#x#y", "status": "A"}), ("PUT", {"key": "#preseed#n#o#p", "status": "A"}),
                        ("POST", {"type": "t"}), ("DELETE", {"key": "#preseed#n#o#p"}), ("DELETE", {})):
        st, _ = same(services, stack, method, "/preseed", bad)
        assert st in (400, 404)
    same(services, stack, "DELETE", "/preseed", {"key": key})

    st, attr = same(services, stack, "PUT", "/attribute", {"key": "#asset#seed.example.org#10.0.0.1", "name": "port",
                                                            "value": 443})
    akey = attr["attributes"][0]["key"]
    assert akey == "#attribute#port#443#asset#seed.example.org#10.0.0.1"
    same(services, stack, "PUT", "/attribute", {"key": "#asset#seed.example.org#10.0.0.1", "name": "port", "value": "443"})
    for bad in ({"key": "#asset#none#none", "name": "a", "value": "b"}, {"key": "nohash", "name": "a", "value": "b"},
                {"key": "#asset#seed.example.org#10.0.0.1", "name": "a#b", "value": "c"}, {"key": "#asset#x#y"}):
        st, _ = same(services, stack, "PUT", "/attribute", bad)
        assert st in (400, 404)
    for bad in ({"key": "#asset#x#y"}, {"key": "#attribute#no#such#asset#x#y"}):
        st, _ = same(services, stack, "DELETE", "/attribute", bad)
        assert st in (400, 404)
    same(services, stack, "DELETE", "/attribute", {"key": akey})


def test_bulk_asset_and_attribute(services: Services, stack: Stack):
    st, job = same(services, stack, "POST", "/bulk/asset", {"action": "upsert", "items": [
        {"group": "b.com", "identifier": "b.com"}, {"group": "b.com"}, {"group": "b.com", "identifier": "1.1.1.1"}]})
    assert job["config"]["failed"] == "1" and job["config"]["results_s3_key"].startswith("bulk/asset/")
    same(services, stack, "POST", "/bulk/attribute", {"items": [
        {"key": "#asset#b.com#b.com", "name": "n", "value": "v"}, {"key": "#asset#none#none", "name": "n", "value": "v"}]})
    st, job = same(services, stack, "POST", "/bulk/asset", {"items": [{"group": "x"}]})
    assert job["status"].startswith("JF#")
    for bad in ({"action": "delete", "items": []}, {"items": "nope"}, {}):
        st, _ = same(services, stack, "POST", "/bulk/asset", bad)
        assert st == 400
    # the results file is where the job says
    svc = services.assets.app.state.asset_discovery
    import json

    obj = svc.s3.get_object(Bucket=svc.settings.files_bucket,
                            Key=f"{stack.user}/{job['config']['results_s3_key']}")
    assert json.loads(obj["Body"].read())[0]["status"] == "error"


def _graph(svc: Services, s: Stack) -> None:
    same(svc, s, "PUT", "/seed", {"type": "asset", "model": {"dns": "e.com", "status": "A"}})
    for ident in ("1.2.3.4", "www.e.com", "api.e.com"):
        same(svc, s, "PUT", "/asset", {"group": "e.com", "identifier": ident})
    same(svc, s, "PUT", "/asset", {"group": "other.org", "identifier": "other.org", "attackSurface": ["cloud"]})
    same(svc, s, "PUT", "/attribute", {"key": "#asset#e.com#1.2.3.4", "name": "port", "value": "22"})
    same(svc, s, "PUT", "/attribute", {"key": "#asset#e.com#www.e.com", "name": "port", "value": "443"})
    same(svc, s, "POST", "/preseed", {"type": "csp", "title": "e", "value": "e.com"})
    same(svc, s, "PUT", "/risk", {"key": "#asset#e.com#www.e.com", "name": "CVE-2024-1111", "status": "TH"})
    same(svc, s, "PUT", "/risk", {"key": "#attribute#port#22#asset#e.com#1.2.3.4", "name": "ssh", "status": "TM"})


QUERIES = [
    {"node": {"labels": ["Asset"]}, "limit": 4096, "page": 0},
    {"node": {"labels": ["Seed"]}},
    {"node": {"labels": ["Seed"], "filters": [{"field": "key", "operator": "=", "value": "#seed#e.com#e.com"}]}},
    {"node": {"labels": ["Attribute"]}},
    {"node": {"labels": ["Preseed"]}},
    {"node": {"labels": ["Asset"], "filters": [{"field": "class", "operator": "IN", "value": ["ipv4", "tld"]}]}},
    {"node": {"labels": ["Asset"], "filters": [{"field": "name", "operator": "CONTAINS", "value": "E.COM",
                                                 "not": True}]}},
    {"node": {"labels": ["Asset"], "filters": [{"field": "", "operator": "OR", "value": [
        {"field": "isCloud", "operator": "=", "value": True},
        {"field": "name", "operator": "ENDS WITH", "value": ".4"}]}]}},
    {"node": {"labels": ["Asset"], "search": "api"}},
    {"node": {"labels": ["Asset"]}, "orderBy": "name", "descending": True},
    {"node": {"labels": ["Asset"]}, "limit": 2, "page": 1},
    {"node": {"labels": ["Asset"]}, "limit": 2, "page": 9},
    {"node": {"labels": ["Asset"], "relationships": [{"label": "HAS_VULNERABILITY", "target": {"labels": ["Risk"]}}]}},
    {"node": {"labels": ["Asset"], "relationships": [{"label": "HAS_ATTRIBUTE", "target": {
        "labels": ["Attribute"], "filters": [{"field": "value", "operator": "=", "value": "22"}]}}]}},
    {"node": {"labels": ["Attribute"], "relationships": [{"label": "HAS_VULNERABILITY", "target": {}}]}},
    {"node": {"labels": ["Seed"], "relationships": [{"label": "DISCOVERED", "target": {"labels": ["Asset"]}}]}},
    {"node": {"labels": ["Asset"], "relationships": [{"label": ["HAS_VULNERABILITY", "HAS_ATTRIBUTE"],
                                                      "target": {}, "optional": True}]}},
    {"node": {"labels": ["Asset"], "filters": [{"field": "name", "operator": "BAD", "value": 1}]}},
    {"node": {"labels": ["Asset"]}, "limit": 100000},
    {"node": "nope"},
]


def test_post_my_queries_match_legacy(services: Services, stack: Stack):
    _graph(services, stack)
    for q in QUERIES:
        same(services, stack, "POST", "/my", q)
    st, body = same(services, stack, "POST", "/my", QUERIES[0])
    assert st == 200 and len(body["assets"]) == 5 and "offset" not in body
    st, body = same(services, stack, "POST", "/my", QUERIES[12])
    assert [a["key"] for a in body["assets"]] == ["#asset#e.com#1.2.3.4", "#asset#e.com#api.e.com",
                                                   "#asset#e.com#e.com", "#asset#e.com#www.e.com"]
    same(services, stack, "POST", "/my", {"node": {"labels": ["Asset"], "filters": [
        {"field": "key", "operator": "=", "value": "#asset#e.com#e.com"}], "relationships": [
        {"label": ["HAS_VULNERABILITY", "HAS_PORT", "HAS_WEBPAGE", "HAS_MEMBER"], "target": {}, "optional": True,
         "length": 1}]}, "limit": 4096}, query={"tree": "true"})
    same(services, stack, "POST", "/my", QUERIES[0], query={"global": "true"})
    same(services, stack, "POST", "/my", raw=b"{")


def test_post_my_413_reduce_page_size(services: Services, stack: Stack, monkeypatch):
    _graph(services, stack)
    monkeypatch.setenv("CHARIOT_MAX_RESPONSE_BYTES", "2000")
    monkeypatch.setattr(services.assets.app.state.asset_discovery.settings, "max_response_bytes", 2000)
    st, body = same(services, stack, "POST", "/my", {"node": {"labels": ["Asset"]}, "limit": 4096})
    assert st == 413 and "reduce page size" in body["message"]
    # what praetorian-cli does next: halve the limit, double the page, until it fits
    st, body = same(services, stack, "POST", "/my", {"node": {"labels": ["Asset"]}, "limit": 1, "page": 0})
    assert st == 200 and len(body["assets"]) == 1 and body["offset"] == "1"


def test_statistics_follow_legacy(services: Services, stack: Stack):
    from chariot_migrate.legacy import store as legacy_store

    same(services, stack, "PUT", "/asset", {"group": "s.com", "identifier": "s.com", "status": "P"})
    same(services, stack, "PUT", "/asset", {"group": "s.com", "identifier": "a.s.com"})
    same(services, stack, "PUT", "/asset", {"key": "#asset#s.com#s.com", "status": "A"})
    same(services, stack, "DELETE", "/asset", {"key": "#asset#s.com#a.s.com"})
    legacy_rows = {r["key"]: kit.normalize(kit.public_plain(r)) for r in legacy_store.query_all(stack.user, "#statistic#")}
    svc = services.assets.app.state.asset_discovery
    rows = {r["key"]: kit.normalize(r) for r in svc.store.statistics.query_all(stack.user, "#statistic#")}
    assert rows == legacy_rows
    totals = {k: v["data"]["count"] for k, v in rows.items() if k.endswith("#total")}
    assert totals == {"#statistic#my#status:A#total": 1, "#statistic#my#status:P#total": 0,
                      "#statistic#my#status:D#total": 1}


def test_readonly_collaborator_may_query_but_not_write(services: Services, stack: Stack):
    """Assume-role via the `account` header: the membership lookup decides; readonly cannot write."""
    from chariot_migrate.legacy import store as legacy_store
    from chariot_migrate.model.keys import account_key

    viewer = stack.other("viewer")
    legacy_store.put({"username": stack.user, "key": account_key(stack.user, viewer, ""), "role": "readonly"})
    services.assets.app.state.auth.membership = lambda account, principal: (
        "readonly" if (account, principal) == (stack.user, viewer) else None)
    st, body = same(services, stack, "PUT", "/asset", {"group": "r.com", "identifier": "r.com"},
                    principal=viewer, account=stack.user)
    assert st == 403 and body == {"message": "Forbidden: the readonly role cannot write"}
    st, _ = same(services, stack, "POST", "/my", {"node": {"labels": ["Asset"]}}, principal=viewer,
                 account=stack.user)
    assert st == 200
    st, _ = same(services, stack, "POST", "/my", {"node": {"labels": ["Asset"]}}, principal=stack.other("x"),
                 account=stack.user)
    assert st == 403


def test_dual_write_replay_adopts_the_primary_values(services: Services, stack: Stack):
    """A replay from the trusted identity carries the primary's key/created/updated: both sides
    store and answer byte-identical items (nothing to normalise away)."""
    import json as _json

    replay = {"principal": "replay@chariot-migrate.local", "account": stack.user, "headers": {"X-Migrate-Replay": "1"}}
    body = {"group": "rp.com", "identifier": "rp.com", "created": "2024-05-01T12:00:00Z",
            "updated": "2024-05-01T12:00:00Z"}
    (ls, lb), (ns, nb) = kit.both(services, stack, "PUT", "/asset", body, **replay)
    assert ls == ns == 200 and _json.dumps(lb, sort_keys=True) == _json.dumps(nb, sort_keys=True)
    assert nb[0]["created"] == "2024-05-01T12:00:00Z" and nb[0]["history"][0]["by"] == "replay@chariot-migrate.local"
    # without the header the same identity mints its own values
    (ls, lb), (ns, nb) = kit.both(services, stack, "PUT", "/asset", body | {"identifier": "x.rp.com"},
                                  principal=replay["principal"], account=stack.user)
    assert ls == ns == 200 and nb[0]["created"] != "2024-05-01T12:00:00Z"


def test_unexpected_failure_is_a_legacy_500(services: Services, stack: Stack, monkeypatch):
    svc = services.assets.app.state.asset_discovery

    def boom(*a, **k):
        raise RuntimeError("dynamodb exploded")

    monkeypatch.setattr(svc.store.assets, "get", boom)
    st, body = kit.call_service(services.assets, stack, "PUT", "/asset", {"group": "b.com", "identifier": "b.com"})
    assert (st, body) == (500, {"message": "internal error"})
