import base64
import gzip
import json
from datetime import UTC

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from chariot_migrate.shadow.normalise import (
    NormalisedResponse,
    NormaliseRules,
    canonical_instant,
    from_http,
    normalise,
    parse_instant,
)


def test_header_case_multi_value_and_gateway_headers():
    r = from_http(
        200,
        [("Content-Type", "application/json; charset=UTF-8"), ("X-Thing", "a"), ("x-thing", "b"), ("Date", "now"),
         ("X-Amzn-RequestId", "r1"), ("x-amz-apigw-id", "g"), ("Via", "1.1 cf"), ("X-Migrate-Side", "new"),
         ("X-Correlation-ID", "c"), ("Content-Length", "12")],
        b"{}",
    )
    assert r.headers == {"content-type": "application/json;charset=utf-8", "x-thing": "a, b"}


def test_multi_value_headers_dict_like_api_gateway():
    r = from_http(200, {"Set-Thing": ["1", "2"], "X-One": "x"}, b"")
    assert r.headers == {"set-thing": "1, 2", "x-one": "x"}
    assert r.body_kind == "empty"


def test_bodies_json_text_base64_gzip_binary():
    doc = {"a": [1, 2], "b": "x"}
    raw = json.dumps(doc).encode()
    assert from_http(200, [], raw).body == doc
    assert from_http(200, [], base64.b64encode(raw), is_base64=True).body == doc
    # A base64 JSON body without the flag (Lambda forgot isBase64Encoded) is still decoded.
    assert from_http(200, [], base64.b64encode(raw)).body == doc
    assert from_http(200, [("Content-Encoding", "gzip")], gzip.compress(raw)).body == doc
    t = from_http(200, [], b"plain text, not json")
    assert (t.body_kind, t.body) == ("text", "plain text, not json")
    b = from_http(200, [], b"\xff\xfe\x00binary")
    assert b.body_kind == "binary" and len(b.body) == 64


def test_ignore_paths_unordered_and_header_rules():
    rules = NormaliseRules(
        ignore=["$.items[*].updated", "**.requestId", "header:x-trace"],
        unordered=["$.tags"],
        ignore_headers=["X-Other"],
    )
    body = {"items": [{"updated": 1, "id": "a"}], "meta": {"requestId": "r"}, "requestId": "q", "tags": ["b", "a", {"k": 1}]}
    r = from_http(200, [("x-trace", "1"), ("x-other", "2"), ("x-kept", "3")], json.dumps(body).encode(), rules)
    assert r.body == {"items": [{"id": "a"}], "meta": {}, "tags": sorted(["b", "a", {"k": 1}], key=lambda v: json.dumps(v, sort_keys=True))}
    assert r.headers == {"x-kept": "3"}


def test_header_allowlist_and_status_only():
    hs = [("Content-Type", "application/json"), ("X-A", "1"), ("Date", "d")]
    assert from_http(200, hs, b"{}", NormaliseRules(header_allowlist=["Content-Type", "date"])).headers == {
        "content-type": "application/json", "date": "d"}
    r = from_http(404, hs, b'{"a": 1}', NormaliseRules(status_only=True))
    assert r == NormalisedResponse(404, {}, "empty", None)


def test_timestamp_paths_become_one_canonical_instant():
    rules = NormaliseRules(timestamp_paths=["$.created", "$.items[*].at"])
    a = from_http(200, [], json.dumps({"created": 1700000000, "items": [{"at": "2023-11-14T22:13:20Z"}]}).encode(), rules)
    b = from_http(200, [], json.dumps({"created": 1700000000000, "items": [{"at": "2023-11-15T00:13:20+02:00"}]}).encode(), rules)
    assert a.body == b.body == {"created": "2023-11-14T22:13:20.000000Z", "items": [{"at": "2023-11-14T22:13:20.000000Z"}]}


def test_parse_instant():
    assert parse_instant("2024-01-01T00:00:00.123456789+01:00", numbers=False).astimezone(UTC).isoformat() == "2023-12-31T23:00:00.123456+00:00"
    assert parse_instant("2024-01-01", numbers=False) is not None
    assert parse_instant("hello", numbers=True) is None
    assert parse_instant(1700000000, numbers=False) is None
    assert parse_instant(True, numbers=True) is None
    assert canonical_instant(1700000000123, numbers=True) == "2023-11-14T22:13:20.123000Z"


def test_rules_merge_lists_add_and_explicit_scalars_win():
    glob = NormaliseRules(ignore=["$.a"], abs_tolerance=0.5, timestamps=False)
    route = NormaliseRules(ignore=["$.b", "$.a"], unordered=["$.u"], rel_tolerance=0.1)
    m = glob.merge(route)
    assert m.ignore == ["$.a", "$.b"] and m.unordered == ["$.u"]
    assert (m.abs_tolerance, m.rel_tolerance, m.timestamps) == (0.5, 0.1, False)
    assert glob.merge(NormaliseRules(timestamps=True)).timestamps is True
    assert glob.merge(None) is glob


def test_bad_pattern_is_a_validation_error_with_reason():
    with pytest.raises(ValidationError, match="bad index"):
        NormaliseRules(ignore=["$.a[x]"])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5) | st.sampled_from(["2024-01-01T00:00:00Z", "2024-01-01T02:00:00+02:00"]),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.sampled_from(["a", "b", "at", "id", "tags"]), kids, max_size=4),
    max_leaves=20,
)
rule_sets = st.builds(
    NormaliseRules,
    ignore=st.lists(st.sampled_from(["$.a", "**.id", "$.tags[*].a", "$.b[0]"]), max_size=2),
    unordered=st.lists(st.sampled_from(["$.tags", "**.b", "$.a"]), max_size=2),
    timestamp_paths=st.lists(st.sampled_from(["**.at", "$.a"]), max_size=1),
)


@settings(max_examples=200, deadline=None)
@given(json_values, rule_sets)
def test_normalising_twice_is_idempotent(value, rules):
    once = from_http(200, [("X-A", "1"), ("x-a", "2")], json.dumps(value).encode(), rules)
    assert normalise(once, rules) == once
