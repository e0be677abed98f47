"""The BFF's pure decisions: matching, assembling an aggregate, paging a list, caller cache keys."""

import json
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chariot_migrate.proxy.bff import (
    SubResponse,
    assemble,
    identity_key,
    match_bff,
    next_page_query,
    page_items,
)
from chariot_migrate.routes.loader import RoutesError
from chariot_migrate.routes.models import Aggregate, RoutesFile

CFG = RoutesFile.model_validate({
    "stage_prefix": "/chariot",
    "legacy": {"invoker": "http", "url": "http://127.0.0.1:9"},
    "bff": {"aggregates": [{"path": "/dashboard", "parts": {
        "assets": {"path": "/my/count", "query": {"key": "#asset#"}, "pick": "status"},
        "alerts": {"path": "/account/alert"}}}],
        "ndjson": ["/my"]},
})
AGG = CFG.bff.aggregates[0]


def scope(path, method="GET", accept="application/json", raw=None):
    return {"path": path, "raw_path": (raw or path).encode(), "method": method,
            "headers": [(b"accept", accept.encode()), (b"account", b"a@x.com")]}


def js(doc, status=200):
    return SubResponse(status, [(b"content-type", b"application/json")], json.dumps(doc).encode())


@pytest.mark.parametrize("path", ["/api/v1/dashboard", "/chariot/dashboard", "/dashboard"])
def test_aggregates_answer_under_the_stage_and_their_versions(path):
    m = match_bff(CFG, scope(path))
    assert m is not None and m.kind == "aggregate" and m.aggregate is AGG


@pytest.mark.parametrize("path", ["/api/v2/dashboard", "/internal/api/dashboard", "/chariot/dashboardx", "/my/dashboard/x"])
def test_other_paths_and_versions_are_not_the_aggregate(path):
    assert match_bff(CFG, scope(path)) is None


def test_ndjson_only_when_the_client_asks_and_only_for_a_get():
    assert match_bff(CFG, scope("/chariot/my", accept="application/x-ndjson")).kind == "ndjson"
    assert match_bff(CFG, scope("/chariot/my", accept="text/html, application/X-NDJSON;q=0.9")).kind == "ndjson"
    assert match_bff(CFG, scope("/chariot/my")) is None  # the classic paginated JSON stays the default
    assert match_bff(CFG, scope("/chariot/my", method="POST", accept="application/x-ndjson")) is None
    assert match_bff(CFG, scope("/chariot/my/count", accept="application/x-ndjson")) is None


def test_assemble_marks_a_failed_part_partial_and_keeps_the_rest():
    status, doc = assemble(AGG, {"assets": js({"status": {"A": 3}, "source": {}}),
                                 "alerts": js({"error": "alerts are down"}, 503)})
    assert status == 200
    assert doc["assets"] == {"A": 3}  # picked
    assert doc["alerts"] is None and doc["partial"] == ["alerts"]
    assert doc["errors"] == {"alerts": "status 503: alerts are down"}
    status, doc = assemble(AGG, {"assets": "no answer within 2s", "alerts": js([{"key": "#account#a#alert#x"}])})
    assert status == 200 and doc["partial"] == ["assets"] and doc["alerts"] == [{"key": "#account#a#alert#x"}]
    status, doc = assemble(AGG, {"assets": js({"status": {}}), "alerts": js([])})
    assert status == 200 and doc["partial"] == [] and "errors" not in doc


def test_a_caller_refused_by_every_part_gets_the_refusal_not_an_empty_dashboard():
    status, doc = assemble(AGG, {"assets": js({"error": "bad token"}, 401), "alerts": js({"error": "bad token"}, 401)})
    assert status == 401 and doc["partial"] == ["assets", "alerts"] and "bad token" in doc["error"]
    status, _ = assemble(AGG, {"assets": js({}, 401), "alerts": js({}, 503)})
    assert status == 200  # mixed failures: a partial answer


def test_page_items_and_next_page_follow_the_chariot_list_shape():
    doc = {"assets": [{"key": "a"}, {"key": "b"}], "offset": {"key": "#asset#b", "username": "u"}}
    assert page_items(doc) == [{"key": "a"}, {"key": "b"}]
    assert page_items([1, 2]) == [1, 2] and page_items("x") == []
    q = next_page_query("key=%23asset%23&offset=old", doc)
    assert dict(parse_qsl(q)) == {"key": "#asset#", "offset": json.dumps(doc["offset"])}
    assert next_page_query("key=x", {"assets": []}) is None
    assert next_page_query("key=x", {"assets": [], "offset": "3"}) == "key=x&offset=3"


@given(st.lists(st.tuples(st.sampled_from(["key", "label", "exact", "offset", "k y"]), st.text(max_size=8)), max_size=6),
       st.one_of(st.text(min_size=1, max_size=8), st.dictionaries(st.text(max_size=5), st.text(max_size=5), min_size=1)))
def test_the_next_page_keeps_every_other_parameter_and_sends_the_offset_back(pairs, offset):
    from urllib.parse import quote, urlencode

    q = next_page_query(urlencode(pairs, quote_via=quote), {"offset": offset})
    back = parse_qsl(q, keep_blank_values=True)
    assert [p for p in back if p[0] != "offset"] == [p for p in pairs if p[0] != "offset"]
    (sent,) = [v for k, v in back if k == "offset"]
    assert sent == (offset if isinstance(offset, str) else json.dumps(offset))


def test_the_cache_key_is_the_callers_identity_only():
    a = [(b"authorization", b"Bearer t1"), (b"account", b"a@x.com"), (b"x-correlation-id", b"1")]
    assert identity_key(a) == identity_key([(b"Account", b"a@x.com"), (b"authorization", b"Bearer t1"),
                                            (b"x-correlation-id", b"2")])
    assert identity_key(a) != identity_key([(b"authorization", b"Bearer t2"), (b"account", b"a@x.com")])
    assert identity_key(a) != identity_key([(b"authorization", b"Bearer t1"), (b"account", b"b@x.com")])
    assert "t1" not in identity_key(a)


def test_a_bad_aggregate_is_refused_when_routes_yaml_loads(tmp_path):
    from chariot_migrate.routes.loader import load_table

    for bad in ({"path": "dashboard", "parts": {}}, {"path": "/internal/api/d", "parts": {}},
                {"path": "/d", "versions": ["two"], "parts": {}}, {"path": "/d", "parts": {"a": {"path": "my"}}}):
        with pytest.raises(ValueError):
            Aggregate.model_validate(bad)
    p = tmp_path / "routes.yaml"
    p.write_text("legacy: {invoker: http, url: 'http://127.0.0.1:9'}\nbff:\n  aggregates:\n    - {path: /d, parts: {a: {paht: /x}}}\n")
    with pytest.raises(RoutesError, match=r"routes.yaml:4"):
        load_table(p)


def test_graphql_alone_is_enough_to_turn_the_bff_on():
    cfg = RoutesFile.model_validate({"legacy": {"invoker": "http", "url": "http://127.0.0.1:9"},
                                     "bff": {"graphql": {"endpoint": "chariot_migrate.gateway.schema:endpoint"}}})
    assert cfg.bff.enabled and not RoutesFile.model_validate({"legacy": cfg.legacy.model_dump()}).bff.enabled
    m = match_bff(cfg, scope("/graphql", method="POST"))
    assert m is not None and m.kind == "graphql"
    assert match_bff(cfg, scope("/api/v1/graphql", method="POST")) is None  # /graphql is unversioned
    with pytest.raises(ValueError, match="module.path:factory"):
        RoutesFile.model_validate({"legacy": cfg.legacy.model_dump(), "bff": {"graphql": {"endpoint": "nocolon"}}})
