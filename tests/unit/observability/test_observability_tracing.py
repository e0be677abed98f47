"""observability.tracing: off by default, spans with the in-memory exporter, adopted ids."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chariot_migrate.observability import tracing


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    assert tracing.setup_tracing("test-svc", exporter=exporter)
    yield exporter
    tracing.shutdown_tracing()


def test_tracing_is_off_without_an_otlp_endpoint():
    assert tracing.setup_tracing("x", env={}) is False
    assert not tracing.tracing_enabled()
    assert tracing.start_span("nothing") is None
    with tracing.span("nothing") as s:
        assert s is None
    assert tracing.current_traceparent() is None


def test_otlp_endpoint_turns_tracing_on_and_sdk_disabled_wins():
    assert tracing.setup_tracing("x", env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}) is True
    try:
        assert tracing.tracing_enabled()
    finally:
        tracing.shutdown_tracing()
    assert not tracing.tracing_enabled()
    assert tracing.setup_tracing("x", env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
                                           "OTEL_SDK_DISABLED": "true"}) is False


def test_child_spans_link_to_the_current_span(spans):
    with tracing.span("outer") as outer, tracing.span("inner") as inner:
        assert tracing.current_traceparent() == tracing.traceparent_of(inner)
    got = {s.name: s for s in spans.get_finished_spans()}
    assert got["inner"].parent.span_id == outer.get_span_context().span_id
    assert got["inner"].context.trace_id == got["outer"].context.trace_id
    assert got["outer"].resource.attributes["service.name"] == "test-svc"


def test_remote_parent_from_traceparent(spans):
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with tracing.span("server", parent=tp, kind=tracing.SpanKind.SERVER):
        pass
    (s,) = spans.get_finished_spans()
    assert f"{s.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{s.parent.span_id:016x}" == "b7ad6b7169203331" and s.parent.is_remote


def test_adopted_ids_make_a_root_span_with_the_forwarded_ids(spans):
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    s = tracing.start_span("proxy", adopt=tp)
    tracing.end_span(s)
    (done,) = spans.get_finished_spans()
    assert tracing.traceparent_of(s) == tp and done.parent is None
    # The preset is used once: the next span gets fresh ids.
    t = tracing.start_span("other")
    tracing.end_span(t)
    assert t.get_span_context().span_id != s.get_span_context().span_id


def test_errors_mark_the_span(spans):
    with pytest.raises(ValueError), tracing.span("boom"):
        raise ValueError("no")
    (s,) = spans.get_finished_spans()
    assert s.status.status_code.name == "ERROR" and s.events[0].name == "exception"


@given(st.text(max_size=80))
def test_parse_traceparent_never_raises_and_accepts_only_valid_ids(value):
    parsed = tracing.parse_traceparent(value)
    if parsed is not None:
        trace_id, span_id, flags = parsed
        assert len(trace_id) == 32 and len(span_id) == 16 and len(flags) == 2
        assert trace_id != "0" * 32 and span_id != "0" * 16


@given(st.integers(1, 2**128 - 1), st.integers(1, 2**64 - 1), st.booleans())
def test_format_and_parse_round_trip(trace_id, span_id, sampled):
    tp = tracing.format_traceparent(trace_id, span_id, sampled)
    assert tracing.parse_traceparent(tp) == (f"{trace_id:032x}", f"{span_id:016x}", "01" if sampled else "00")
    assert tracing.trace_id_of(tp) == f"{trace_id:032x}"
