"""OpenTelemetry tracing, OFF unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (or a test passes an
exporter). While off, every helper here is a cheap no-op: the proxy hot path is benchmarked.

We keep our own ``TracerProvider`` instead of OpenTelemetry's process-global one (which can be
set only once per process): tests can set tracing up, inspect spans and tear it down again.

W3C ``traceparent`` is the only propagation format. Helpers here are pure functions over the
header string; spans are created from it with :func:`start_span`.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags

__all__ = [
    "SpanKind",
    "current_traceparent",
    "format_traceparent",
    "parse_traceparent",
    "setup_tracing",
    "shutdown_tracing",
    "span",
    "start_span",
    "trace_id_of",
    "traceparent_of",
    "tracing_enabled",
    "end_span",
]

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

# (trace id, span id) the next span must take: lets a span adopt ids that were already sent on
# the wire (the proxy forwards its traceparent before any span exists).
_preset_ids: ContextVar[tuple[int | None, int] | None] = ContextVar("chariot_preset_span_ids", default=None)


class _PresetIdGenerator(RandomIdGenerator):
    def generate_span_id(self) -> int:
        preset = _preset_ids.get()
        if preset is not None:
            return preset[1]
        return super().generate_span_id()

    def generate_trace_id(self) -> int:
        preset = _preset_ids.get()
        if preset is not None and preset[0] is not None:
            return preset[0]
        return super().generate_trace_id()


class _Tracing:
    provider: TracerProvider | None = None
    tracer: trace.Tracer | None = None
    service: str = ""


_state = _Tracing()


# ---- pure helpers --------------------------------------------------------------------------


def parse_traceparent(value: str | None) -> tuple[str, str, str] | None:
    """(trace id, parent span id, flags) of a valid W3C traceparent, else None."""
    if not value:
        return None
    m = _TRACEPARENT.match(value.strip().lower())
    if not m:
        return None
    version, trace_id, span_id, flags = m.groups()
    if version == "ff" or trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id, flags


def trace_id_of(traceparent: str | None) -> str | None:
    parsed = parse_traceparent(traceparent)
    return parsed[0] if parsed else None


def format_traceparent(trace_id: int | str, span_id: int | str, sampled: bool = True) -> str:
    t = trace_id if isinstance(trace_id, str) else f"{trace_id:032x}"
    s = span_id if isinstance(span_id, str) else f"{span_id:016x}"
    return f"00-{t}-{s}-{'01' if sampled else '00'}"


def traceparent_of(s: Span | None) -> str | None:
    if s is None:
        return None
    ctx = s.get_span_context()
    if not ctx.is_valid:
        return None
    return format_traceparent(ctx.trace_id, ctx.span_id, bool(ctx.trace_flags & TraceFlags.SAMPLED))


# ---- setup ---------------------------------------------------------------------------------


def tracing_enabled() -> bool:
    return _state.tracer is not None


def setup_tracing(service_name: str, *, exporter: SpanExporter | None = None,
                  env: Mapping[str, str] | None = None) -> bool:
    """Turn tracing on for this process. Returns False (and stays off) when no OTLP endpoint is
    configured and no exporter is given. ``exporter`` (tests: ``InMemorySpanExporter``) is
    exported synchronously; the OTLP/HTTP exporter in batches off the request path."""
    env = os.environ if env is None else env
    if exporter is None:
        if env.get("OTEL_SDK_DISABLED", "").lower() == "true" or not any(env.get(v) for v in ENDPOINT_VARS):
            return False
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor: Any = BatchSpanProcessor(OTLPSpanExporter())  # reads OTEL_EXPORTER_OTLP_* itself
    else:
        processor = SimpleSpanProcessor(exporter)
    shutdown_tracing()
    name = env.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({"service.name": name}), id_generator=_PresetIdGenerator())
    provider.add_span_processor(processor)
    _state.provider, _state.tracer, _state.service = provider, provider.get_tracer("chariot_migrate"), name
    return True


def shutdown_tracing() -> None:
    """Flush and stop (idempotent); tracing is off afterwards."""
    provider, _state.provider, _state.tracer = _state.provider, None, None
    if provider is not None:
        with contextlib.suppress(Exception):
            provider.shutdown()


# ---- spans ---------------------------------------------------------------------------------


def _parent(traceparent: str | None) -> otel_context.Context | None:
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        return None
    trace_id, span_id, flags = parsed
    sc = SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(int(flags, 16)))
    return trace.set_span_in_context(NonRecordingSpan(sc), otel_context.Context())


def start_span(name: str, *, kind: SpanKind = SpanKind.INTERNAL, parent: str | None = None,
               adopt: str | None = None, attributes: Mapping[str, Any] | None = None) -> Span | None:
    """Start (not activate) a span; None while tracing is off.

    ``parent``: a traceparent to continue (else the current context's span is the parent).
    ``adopt``: a traceparent that was already sent downstream before this span existed; the span
    takes its trace id and span id, so downstream spans that name it as parent link up.
    """
    tracer = _state.tracer
    if tracer is None:
        return None
    ctx = _parent(parent) if parent else None
    token = None
    if adopt and (ids := parse_traceparent(adopt)):
        # With a parent the trace id is inherited; without one the span is a root with this id.
        token = _preset_ids.set((None if ctx is not None else int(ids[0], 16), int(ids[1], 16)))
        if ctx is None:
            ctx = otel_context.Context()  # a root: do not inherit whatever is current
    try:
        return tracer.start_span(name, context=ctx, kind=kind, attributes=dict(attributes or {}))
    finally:
        if token is not None:
            _preset_ids.reset(token)


def end_span(s: Span | None, *, error: BaseException | str | None = None,
             attributes: Mapping[str, Any] | None = None) -> None:
    if s is None:
        return
    if attributes:
        s.set_attributes(dict(attributes))
    if error is not None:
        if isinstance(error, BaseException):
            s.record_exception(error)
        s.set_status(Status(StatusCode.ERROR, str(error)[:200]))
    s.end()


@contextlib.contextmanager
def span(name: str, *, kind: SpanKind = SpanKind.INTERNAL, parent: str | None = None,
         attributes: Mapping[str, Any] | None = None) -> Iterator[Span | None]:
    """A span made current for the block; yields None (and costs ~nothing) while tracing is off."""
    s = start_span(name, kind=kind, parent=parent, attributes=attributes)
    if s is None:
        yield None
        return
    token = otel_context.attach(trace.set_span_in_context(s))
    try:
        yield s
    except BaseException as e:
        end_span(s, error=e)
        raise
    else:
        s.end()
    finally:
        otel_context.detach(token)


def activate(s: Span | None) -> object | None:
    """Make ``s`` the current span (returns a token for :func:`deactivate`)."""
    if s is None:
        return None
    return otel_context.attach(trace.set_span_in_context(s))


def deactivate(token: object | None) -> None:
    if token is not None:
        with contextlib.suppress(Exception):  # detaching in another context only logs upstream
            otel_context.detach(token)  # type: ignore[arg-type]  # activate()'s token, typed loosely for callers without otel


def current_traceparent() -> str | None:
    """The current span as a traceparent (None while tracing is off or no span is current)."""
    if _state.tracer is None:
        return None
    return traceparent_of(trace.get_current_span())
