"""Pure parts: record ids, header scrubbing, the primary-result header, backoff, outcomes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chariot_migrate.dual_write.records import (
    PrimaryResult,
    ReplayRecord,
    ReplayRequest,
    encode_ulid,
    new_record_id,
    scrub_request_headers,
)
from chariot_migrate.dual_write.replay_protocol import (
    PRIMARY_RESULT_HEADER,
    backoff_delay,
    build_replay_request,
    classify_status,
    decode_primary_result,
    encode_primary_result,
    next_state,
)
from chariot_migrate.transport import HttpRequest, HttpResponse

_ms = st.integers(min_value=0, max_value=2**48 - 1)
_rand = st.integers(min_value=0, max_value=2**80 - 1)


@given(st.tuples(_ms, _rand), st.tuples(_ms, _rand))
def test_ulid_string_order_is_time_then_random_order(a, b):
    ea, eb = encode_ulid(*a), encode_ulid(*b)
    assert len(ea) == len(eb) == 26
    assert (ea < eb) == (a < b) and (ea == eb) == (a == b)


def test_record_ids_strictly_increase_within_a_millisecond():
    ids = [new_record_id(4_000_000_000_000) for _ in range(1000)]
    assert ids == sorted(ids) and len(set(ids)) == 1000


def test_scrub_drops_credentials_hop_by_hop_and_control_headers():
    headers = [
        ("Authorization", "Bearer secret"),
        ("Cookie", "s=1"),
        ("X-GUARD-API-KEY-SECRET", "k"),
        ("Content-Type", "application/json"),
        ("X-Migrate-Target", "new"),
        ("Connection", "keep-alive"),
        ("account", "other@x.com"),
        ("X-Custom", "a"),
        ("x-custom", "b"),
    ]
    assert scrub_request_headers(headers) == [
        ("content-type", "application/json"),
        ("account", "other@x.com"),
        ("x-custom", "a"),
        ("x-custom", "b"),
    ]


def test_from_exchange_keeps_routing_context_and_never_credentials():
    req = HttpRequest(
        method="post", path="/asset", query="a=1", headers=[("authorization", "Bearer t"), ("content-type", "x")],
        body=b"{}", route_template="/asset", function="asset-fn", stage="chariot",
    )
    resp = HttpResponse(status=201, headers=[("set-cookie", "x"), ("content-type", "application/json")], body=b"{}")
    r = ReplayRecord.from_exchange(service="s", account="a", target="legacy", request=req, response=resp)
    assert r.request.method == "POST" and r.request.function == "asset-fn" and r.request.stage == "chariot"
    assert "authorization" not in dict(r.request.headers) and "set-cookie" not in dict(r.primary.headers)
    assert "Bearer t" not in r.model_dump_json()


@given(
    status=st.integers(100, 599),
    headers=st.lists(st.tuples(st.text(min_size=1, max_size=10), st.text(max_size=20)), max_size=4),
    body=st.one_of(st.binary(max_size=500), st.text(max_size=500).map(str.encode)),
)
def test_primary_result_header_round_trips(status, headers, body):
    result = PrimaryResult(status=status, headers=headers, body=body)
    value = encode_primary_result(result)
    assert value.isascii() and "\n" not in value
    decoded, truncated = decode_primary_result(value)
    assert not truncated and decoded == result


def test_primary_result_too_big_is_truncated_not_fatal():
    big = PrimaryResult(status=200, body=bytes(range(256)) * 200)  # binary: compresses poorly
    value = encode_primary_result(big, max_header_bytes=1000)
    assert len(value) <= 1000
    decoded, truncated = decode_primary_result(value)
    assert truncated and decoded.status == 200 and decoded.body == b""


def test_decode_rejects_garbage():
    with pytest.raises(ValueError):
        decode_primary_result("nope")
    with pytest.raises(ValueError):
        decode_primary_result("z1.!!!!")


def test_replay_request_carries_identity_key_and_primary_result():
    rec = ReplayRecord(
        service="s", account="acct@x.com", target="new", seq=7, idempotency_key="",
        request=ReplayRequest(method="PUT", path="/x", headers=[("content-type", "application/json")], body=b"{}",
                              function="fn"),
        primary=PrimaryResult(status=200, body=b'{"id":"abc"}'),
    )
    req = build_replay_request(rec, "tok")
    assert req.header("idempotency-key") == rec.id
    assert req.header("x-migrate-replay") == "1"
    assert req.header("x-migrate-replay-account") == "acct@x.com"
    assert req.header("x-migrate-replay-seq") == "7"
    assert req.header("authorization") == "Bearer tok"
    assert req.principal == "acct@x.com" and req.function == "fn" and req.body == b"{}"
    assert decode_primary_result(req.header(PRIMARY_RESULT_HEADER))[0].body == b'{"id":"abc"}'
    assert build_replay_request(rec, None).header("authorization") is None


@pytest.mark.parametrize(
    "status,outcome",
    [(200, "delivered"), (204, "delivered"), (409, "delivered"), (500, "retry"), (503, "retry"),
     (429, "retry"), (408, "retry"), (400, "permanent"), (404, "permanent"), (422, "permanent"), (302, "retry")],
)
def test_classify_status(status, outcome):
    assert classify_status(status) == outcome


@given(st.integers(1, 60), st.floats(0.001, 5), st.floats(0.01, 100), st.floats(0, 0.999999))
def test_backoff_is_full_jitter_within_the_capped_exponential(attempt, base, cap, rand):
    d = backoff_delay(attempt, base, cap, rand)
    assert 0 <= d <= min(cap, base * 2 ** (attempt - 1)) + 1e-9


def test_next_state():
    assert next_state(1, 3, "delivered") == "delivered"
    assert next_state(1, 3, "retry") == "pending"
    assert next_state(3, 3, "retry") == "dead"
    assert next_state(1, 3, "permanent") == "dead"
