from hypothesis import given
from hypothesis import strategies as st

from chariot_migrate.routes.matcher import RequestView, RouteTable, normalise_path, parse_body_path
from chariot_migrate.routes.models import RoutesFile

BASE = {
    "legacy": {"invoker": "http", "url": "http://127.0.0.1:9"},
    "services": {"account": {"phase": 1}, "risk": {"phase": 3}, "caps": {"phase": 4}, "hub": {"phase": 5},
                 "notify": {"phase": 6}, "assets": {"phase": 2}},
}


def table(routes):
    return RouteTable(RoutesFile.model_validate({**BASE, "routes": routes}))


CHARIOT_LIKE = table([
    {"path": "/token", "methods": ["GET"], "service": "account", "public": True},
    {"path": "/my", "methods": ["GET"], "service": "caps", "match": {"query": {"key": "^#job#"}}},
    {"path": "/my", "methods": ["POST"], "service": "risk", "match": {"body": {"node.labels[0]": "^Risk$"}}},
    {"path": "/my", "methods": ["POST"], "service": "assets",
     "match": {"body": {"node.labels[0]": "^(Asset|Seed|Attribute|Preseed)$"}}},
    {"path": "/account/{member}", "methods": ["POST", "DELETE"], "service": "account", "match": {"path": {"member": "@"}}},
    {"path": "/account/{member}", "methods": ["POST", "DELETE"], "service": "hub"},
    {"path": "/account/hook", "methods": ["POST", "DELETE"], "service": "notify"},
    {"path": "/hook/{principal}/{pin}", "methods": ["PUT"], "service": "hub", "public": True},
    {"path": "/files/{path+}", "methods": ["GET"], "service": "assets"},
])


def svc(method, path, query="", body=b"", headers=None):
    m = CHARIOT_LIKE.match(RequestView(method, path, query, headers or {}, body))
    return (m.route.service, m.path_params) if m else None


def test_query_predicate_selects_the_owner():
    assert svc("GET", "/my", "key=%23job%23example.com")[0] == "caps"
    assert svc("GET", "/my", "key=%23asset%23") is None  # unmatched → the proxy's default (legacy)


def test_body_predicate_on_json_field_path():
    assert svc("POST", "/my", body=b'{"node":{"labels":["Risk"]}}')[0] == "risk"
    assert svc("POST", "/my", body=b'{"node":{"labels":["Seed"]}}')[0] == "assets"
    assert svc("POST", "/my", body=b'{"node":{"labels":["Job"]}}') is None
    assert svc("POST", "/my", body=b"not json") is None


def test_path_predicate_and_fallback_on_the_same_template():
    assert svc("POST", "/account/bob@example.com") == ("account", {"member": "bob@example.com"})
    assert svc("DELETE", "/account/amazon") == ("hub", {"member": "amazon"})


def test_literal_segment_beats_param():
    assert svc("POST", "/account/hook")[0] == "notify"


def test_method_mismatch_on_literal_falls_back_to_param_route():
    # GET /account/hook is not declared on the literal route; the param routes don't allow GET either
    assert svc("GET", "/account/hook") is None


def test_multi_param_and_greedy_capture():
    assert svc("PUT", "/hook/Ym9iQHguY29t/1234") == ("hub", {"principal": "Ym9iQHguY29t", "pin": "1234"})
    assert svc("GET", "/files/home/a/report.pdf") == ("assets", {"path": "home/a/report.pdf"})


def test_negated_predicate():
    t = table([{"path": "/x/{m}", "methods": ["GET"], "service": "account", "match": {"path": {"m": {"not": "@"}}}}])
    assert t.match(RequestView("GET", "/x/amazon")) is not None
    assert t.match(RequestView("GET", "/x/a@b.c")) is None


def test_header_predicate():
    t = table([{"path": "/x", "methods": ["GET"], "service": "account", "match": {"header": {"X-Beta": "^1$"}}}])
    assert t.match(RequestView("GET", "/x", headers={"x-beta": "1"})) is not None
    assert t.match(RequestView("GET", "/x")) is None


def test_normalise_path_collapses_and_strips_stage():
    assert normalise_path("/chariot//agent/enhanced", "/chariot") == ("/agent/enhanced", None)
    assert normalise_path("/chariot", "/chariot") == ("/", None)
    assert normalise_path("/chariotx/a", "/chariot") == ("/chariotx/a", None)
    assert normalise_path("/a/../etc/passwd")[0] is None
    assert normalise_path("/a/\x00b")[0] is None


@given(st.lists(st.sampled_from(["a", "b", "", "chariot", "x-y"]), max_size=8))
def test_normalise_is_idempotent(segs):
    p, _ = normalise_path("/" + "/".join(segs), "/chariot")
    assert normalise_path(p, "")[0] == p
    assert "//" not in p


def test_body_path_parser():
    assert parse_body_path("node.labels[0]") == ("node", "labels", 0)
    assert parse_body_path("a") == ("a",)
