"""Request context: correlation id and W3C trace context, carried in contextvars.

Pure helpers parse/format ``traceparent``; the app middleware sets the contextvars once per
request so logs and the service client pick them up without threading them through every call.
"""

from __future__ import annotations

import re
import secrets
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

from ...observability import tracing

CORRELATION_HEADER = "x-correlation-id"
TRACEPARENT_HEADER = "traceparent"

# Correlation ids come from clients: keep them short and printable so they cannot inject log lines.
_CORRELATION_OK = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str  # 32 lower-case hex
    span_id: str  # 16 lower-case hex (this hop's span / parent id when forwarded)
    flags: str = "01"

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def child(self) -> TraceContext:
        """The context for an outbound call: same trace, new span."""
        return TraceContext(self.trace_id, secrets.token_hex(8), self.flags)


def parse_traceparent(value: str | None) -> TraceContext | None:
    """Parse a W3C ``traceparent``; None when absent or invalid (all-zero ids are invalid)."""
    parsed = tracing.parse_traceparent(value)
    return TraceContext(*parsed) if parsed is not None else None


def new_trace_context() -> TraceContext:
    return TraceContext(secrets.token_hex(16), secrets.token_hex(8), "01")


def accept_correlation_id(value: str | None) -> str:
    """The client's correlation id when it is sane, otherwise a fresh one."""
    if value and _CORRELATION_OK.match(value):
        return value
    return str(uuid.uuid4())


correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)
trace_context_var: ContextVar[TraceContext | None] = ContextVar("trace_context", default=None)


def current_correlation_id() -> str | None:
    return correlation_id_var.get()


def current_trace() -> TraceContext | None:
    return trace_context_var.get()


def outbound_headers() -> dict[str, str]:
    """Headers that propagate the current request's context to a downstream call."""
    headers: dict[str, str] = {}
    cid = correlation_id_var.get()
    if cid:
        headers["X-Correlation-ID"] = cid
    trace = trace_context_var.get() or new_trace_context()
    headers["traceparent"] = trace.child().traceparent
    return headers
