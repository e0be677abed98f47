import json

from hypothesis import given, settings
from hypothesis import strategies as st

from chariot_migrate.shadow.compare import compare_pair
from chariot_migrate.shadow.diff import Difference, diff, difference_class, signature_id, value_class
from chariot_migrate.shadow.normalise import NormaliseRules, from_http
from chariot_migrate.transport import HttpResponse, UpstreamError


def j(value, status=200, headers=(), rules=None):
    return from_http(status, list(headers), json.dumps(value).encode(), rules)


def kinds(a, b, rules=None):
    return [(d.path, d.kind) for d in diff(j(a, rules=rules), j(b, rules=rules), rules)]


def test_every_kind():
    assert kinds({"a": 1}, {"a": 1}) == []
    assert kinds({"a": 1}, {}) == [("$.a", "missing")]
    assert kinds({}, {"a": 1}) == [("$.a", "extra")]
    assert kinds({"a": 1}, {"a": "1"}) == [("$.a", "type")]
    assert kinds({"a": True}, {"a": 1}) == [("$.a", "type")]  # bool is not a number
    assert kinds({"a": {"b": [1, {"c": 2}]}}, {"a": {"b": [1, {"c": 3}]}}) == [("$.a.b[1].c", "value")]
    assert kinds({"l": [1, 2]}, {"l": [1, 2, 3]}) == [("$.l", "length")]
    assert kinds({"l": [1, 2, 3]}, {"l": [3, 1, 2]}) == [("$.l", "order")]
    a, b = j({}, 200, [("X-A", "1")]), j({}, 404, [("X-A", "2")])
    assert [(d.path, d.kind, d.left, d.right) for d in diff(a, b)] == [
        ("status", "status", 200, 404), ("header:x-a", "header", "1", "2")]


def test_order_is_real_unless_declared_unordered():
    a, b = {"items": [{"id": 1}, {"id": 2}]}, {"items": [{"id": 2}, {"id": 1}]}
    assert kinds(a, b) == [("$.items", "order")]
    assert kinds(a, b, NormaliseRules(unordered=["$.items"])) == []


def test_numeric_tolerance():
    assert kinds({"x": 1.0}, {"x": 1}) == []
    assert kinds({"x": 1.0}, {"x": 1.004}) == [("$.x", "value")]
    assert kinds({"x": 1.0}, {"x": 1.004}, NormaliseRules(abs_tolerance=0.01)) == []
    assert kinds({"x": 100.0}, {"x": 101.0}, NormaliseRules(rel_tolerance=0.02)) == []
    assert kinds({"x": 100.0}, {"x": 103.0}, NormaliseRules(rel_tolerance=0.02)) == [("$.x", "value")]


def test_timestamp_equivalence_without_configuration():
    iso_utc, iso_off = "2023-11-14T22:13:20Z", "2023-11-15T00:13:20+02:00"
    assert kinds({"t": iso_utc}, {"t": iso_off}) == []
    assert kinds({"t": iso_utc}, {"t": 1700000000}) == []  # ISO vs epoch seconds
    assert kinds({"t": iso_utc}, {"t": 1700000000000}) == []  # ISO vs epoch ms
    assert kinds({"t": iso_utc}, {"t": "2023-11-14T22:13:21Z"}) == [("$.t", "value")]
    assert kinds({"t": iso_utc}, {"t": iso_off}, NormaliseRules(timestamps=False)) == [("$.t", "value")]
    # Two plain numbers never become instants by luck...
    assert kinds({"t": 1700000000}, {"t": 1700000000000}) == [("$.t", "value")]
    # ...unless the path is declared a timestamp field.
    assert kinds({"t": 1700000000}, {"t": 1700000000000}, NormaliseRules(timestamp_paths=["$.t"])) == []


def test_text_and_kind_mismatch_bodies():
    a, b = from_http(200, [], b"hello"), from_http(200, [], b"world")
    assert [(d.path, d.kind) for d in diff(a, b)] == [("$", "value")]
    c = from_http(200, [], b'{"a":1}')
    assert [(d.path, d.kind) for d in diff(a, c)] == [("$", "type")]


def test_status_only_mode_ignores_bodies():
    rules = NormaliseRules(status_only=True)
    assert diff(j({"a": 1}, rules=rules), j({"a": 2}, rules=rules), rules) == []
    assert [d.kind for d in diff(j({}, 200, rules=rules), j({}, 500, rules=rules), rules)] == ["status"]


def test_signature_and_value_class():
    s = signature_id("GET /asset", "$.items[*].name", "value")
    assert s == signature_id("GET /asset", "$.items[*].name", "value") and len(s) == 12
    assert int(s, 16) >= 0
    assert s != signature_id("GET /asset", "$.items[*].name", "missing")
    assert s != signature_id("GET /risk", "$.items[*].name", "value")
    assert [value_class(v) for v in (None, True, 1, 1.5, "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
                                     "2024-01-01T00:00:00Z", "x", [], {})] == [
        "null", "bool", "int", "float", "str-uuid", "str-timestamp", "str", "list", "dict"]
    assert difference_class(Difference("$.a", "value", 1, "x")) == "int→str"
    assert difference_class(Difference("$.a", "missing", "x", None)) == "str"


def test_compare_pair_groups_by_collapsed_path_and_handles_errors():
    left = HttpResponse(200, [("content-type", "application/json")], json.dumps({"items": [{"p": 1}, {"p": 2}]}).encode())
    right = HttpResponse(200, [("content-type", "application/json")], json.dumps({"items": [{"p": 5}, {"p": 6}]}).encode())
    c = compare_pair("GET /x", left, right)
    assert not c.match and len(c.differences) == 2
    assert [(h.path, h.kind, h.count) for h in c.hits] == [("$.items[*].p", "value", 2)]
    assert c.paths == {"$.items[*].p"}
    err = compare_pair("GET /x", left, UpstreamError("timeout", "slow"))
    assert [(d.kind, d.right) for d in err.differences] == [("status", "error:timeout")]
    assert compare_pair("GET /x", left, left).match


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-5, 5, allow_nan=False) | st.text("ab", max_size=3)
    | st.sampled_from(["2024-01-01T00:00:00Z", "2024-01-01T01:00:00+01:00", 1704067200]),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.sampled_from(["a", "b", "c"]), kids, max_size=3),
    max_leaves=15,
)
rule_sets = st.builds(
    NormaliseRules,
    unordered=st.lists(st.sampled_from(["$.a", "**.b"]), max_size=1),
    abs_tolerance=st.sampled_from([0.0, 0.5]),
    timestamps=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(json_values, rule_sets)
def test_diff_of_a_value_with_itself_is_empty(x, rules):
    assert diff(j(x, rules=rules), j(x, rules=rules), rules) == []


@settings(max_examples=300, deadline=None)
@given(json_values, json_values, rule_sets)
def test_diff_is_symmetric_in_count_and_paths(x, y, rules):
    ab, ba = diff(j(x, rules=rules), j(y, rules=rules), rules), diff(j(y, rules=rules), j(x, rules=rules), rules)
    assert len(ab) == len(ba)
    assert sorted(d.path for d in ab) == sorted(d.path for d in ba)
    swap = {"missing": "extra", "extra": "missing"}
    assert sorted((d.path, swap.get(d.kind, d.kind)) for d in ab) == sorted((d.path, d.kind) for d in ba)
