import io
import json
import logging

from hypothesis import given
from hypothesis import strategies as st

from chariot_migrate.redact import redact_text
from chariot_migrate.redact import redact_value as redact
from chariot_migrate.services.kit.context import (
    TraceContext,
    accept_correlation_id,
    correlation_id_var,
    outbound_headers,
    parse_traceparent,
    trace_context_var,
)
from chariot_migrate.services.kit.logs import JsonFormatter

hex_str = lambda n: st.text("0123456789abcdef", min_size=n, max_size=n)  # noqa: E731


@given(hex_str(32), hex_str(16), hex_str(2))
def test_traceparent_round_trips_unless_ids_are_zero(trace_id, span_id, flags):
    parsed = parse_traceparent(f"00-{trace_id}-{span_id}-{flags}")
    if set(trace_id) == {"0"} or set(span_id) == {"0"}:
        assert parsed is None
    else:
        assert parsed == TraceContext(trace_id, span_id, flags)
        assert parse_traceparent(parsed.traceparent) == parsed


def test_traceparent_rejects_garbage_and_child_keeps_trace():
    assert parse_traceparent(None) is None
    assert parse_traceparent("00-xyz-abc-01") is None
    assert parse_traceparent("ff-" + "a" * 32 + "-" + "b" * 16 + "-01") is None
    tc = parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    child = tc.child()
    assert child.trace_id == tc.trace_id and child.span_id != tc.span_id


def test_correlation_id_accepts_sane_values_only():
    assert accept_correlation_id("abc-123") == "abc-123"
    fresh = accept_correlation_id("bad\nvalue")
    assert fresh != "bad\nvalue" and len(fresh) == 36
    assert accept_correlation_id(None) != accept_correlation_id(None)


def test_outbound_headers_propagate_context():
    t1 = correlation_id_var.set("cid-1")
    t2 = trace_context_var.set(TraceContext("a" * 32, "b" * 16))
    try:
        h = outbound_headers()
    finally:
        correlation_id_var.reset(t1)
        trace_context_var.reset(t2)
    assert h["X-Correlation-ID"] == "cid-1"
    assert h["traceparent"].startswith("00-" + "a" * 32 + "-") and "b" * 16 not in h["traceparent"]


def test_redact_hides_secret_keys_and_bearer_tokens():
    out = redact(
        {
            "Authorization": "Bearer abc",
            "nested": {"api_key_secret": "s3cr3t", "ok": "Bearer eyJa.eyJb.c"},
            "list": ["token eyJhbGciOi.eyJzdWIi.sig"],
            "n": 3,
        }
    )
    text = json.dumps(out)
    assert "abc" not in text and "s3cr3t" not in text and "eyJ" not in text
    assert out["n"] == 3


def test_json_formatter_writes_one_line_with_ids_and_redacts():
    stream = io.StringIO()
    logger = logging.getLogger("test.kit.formatter")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("svc"))
    logger.addHandler(handler)
    logger.propagate = False
    token = correlation_id_var.set("corr-9")
    try:
        logger.warning(
            "got Bearer abc.def.ghi\nsecond line", extra={"route": "/x", "authorization": "Bearer zzz"}
        )
    finally:
        correlation_id_var.reset(token)
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["service"] == "svc" and event["correlation_id"] == "corr-9" and event["route"] == "/x"
    assert event["level"] == "warning"
    assert "zzz" not in lines[0] and "abc.def.ghi" not in lines[0]


def test_redact_text_hides_credentials_in_a_quoted_url():
    line = 'HTTP Request: GET http://n/internal/api/hook?account=a%40x.com&pin=5f20-76ad&spin=1 "HTTP/1.1 200 OK"'
    assert redact_text(line) == ('HTTP Request: GET http://n/internal/api/hook?account=a%40x.com&pin=[REDACTED]'
                                 '&spin=1 "HTTP/1.1 200 OK"')
    assert redact_text("access_token=abc&page=2") == "access_token=[REDACTED]&page=2"
