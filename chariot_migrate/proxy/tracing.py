"""Proxy add-on: the trace id on every log line of a request, in-flight gauges, and — only when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set — an OpenTelemetry span per proxied request.

Always on (cheap): the trace id of the ``traceparent`` the proxy forwards goes into the access
log line (and other proxy log lines of the request) through a contextvar + logging filter, and
``active_connections_total{service, connection_type}`` counts client requests in flight
(``client``) and requests in flight to a side (``upstream_legacy`` / ``upstream_new``).

Spans: ``before`` starts a SERVER span that *adopts* the forwarded traceparent's trace and span
ids — the upstream already received that header, so the service's span (or the Lambda event)
names this span as its parent without rewriting any header. An add-on cannot wrap the upstream
call in a child span, so the upstream answer is recorded as a span event (side, status, time
since the request started); on the legacy side the Lambda emulator adds a real child span
(``lambda.invoke``) because the span is the current context during the call.

Bookkeeping is closed in ``done``; if a request dies between ``before`` and ``done`` (a bug, a
cancelled task), a done-callback on the request's task closes it, so gauges never drift.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..observability import logcontext, tracing
from ..observability import metrics as obs
from ..rollout.state import ServiceState
from ..routes.matcher import Route
from .addons import Exchange

LOGGERS = ("chariot_migrate.access", "chariot_migrate.proxy")


def forwarded_traceparent(headers: list[tuple[str, str]]) -> str | None:
    """The traceparent the proxy forwards (it appends its own last)."""
    for k, v in reversed(headers):
        if k == "traceparent":
            return v
    return None


class _Counter:
    """An in-flight count kept in memory; the gauge is set from it once a second (each gauge
    write is a locked mmap write in multiprocess mode — too dear twice per request)."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def inc(self) -> None:
        self.n += 1

    def dec(self) -> None:
        self.n -= 1


class _Flight:
    """One request's open bookkeeping; every close is idempotent."""

    __slots__ = ("client", "upstream", "span", "token", "t0")

    def __init__(self, client: _Counter, upstream: _Counter) -> None:
        self.client: _Counter | None = client
        self.upstream: _Counter | None = upstream
        self.span: Any = None
        self.token: object | None = None
        self.t0 = time.perf_counter()

    def close_upstream(self) -> None:
        if self.upstream is not None:
            self.upstream.dec()
            self.upstream = None

    def close(self, error: str | None = None) -> None:
        self.close_upstream()
        if self.client is not None:
            self.client.dec()
            self.client = None
        if self.span is not None:
            tracing.end_span(self.span, error=error)
            self.span = None

    def on_task_done(self, _task: object) -> None:
        if self.client is not None or self.span is not None:
            self.close("request ended before the proxy finished it")


class TracingAddon:
    def __init__(self, *, service_name: str = "chariot-migrate-proxy", setup_tracing: bool = True) -> None:
        self.service_name = service_name
        self._setup = setup_tracing
        self._owns_tracing = False
        self._filter: logcontext.TraceIdFilter | None = None
        self._counts: dict[tuple[str, str], _Counter] = {}
        self._sampler: asyncio.Task | None = None

    def _gauge(self, service: str, connection_type: str) -> _Counter:
        key = (service, connection_type)
        c = self._counts.get(key)
        if c is None:
            c = self._counts[key] = _Counter()
        return c

    def sample(self) -> None:
        """Publish the in-flight counts to the gauge."""
        for (service, kind), c in list(self._counts.items()):
            obs.ACTIVE_CONNECTIONS.labels(service, kind).set(c.n)

    async def _sample_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.sample()

    async def start(self) -> None:
        if self._sampler is None:
            self._sampler = asyncio.create_task(self._sample_loop())
        if self._filter is None:
            self._filter = logcontext.install(LOGGERS)
        if self._setup and not tracing.tracing_enabled():
            self._owns_tracing = tracing.setup_tracing(self.service_name)

    async def aclose(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            self._sampler = None
            self.sample()
        if self._filter is not None:
            logcontext.uninstall(self._filter, LOGGERS)
            self._filter = None
        if self._owns_tracing:
            tracing.shutdown_tracing()
            self._owns_tracing = False

    async def before(self, ex: Exchange) -> None:
        tp = forwarded_traceparent(ex.request.headers)
        if tp is not None:
            logcontext.trace_id_var.set(tp[3:35])
        service = ex.service or "-"
        client = self._gauge(service, "client")
        upstream = self._gauge(service, "upstream_" + ex.side)
        client.inc()
        upstream.inc()
        flight = _Flight(client, upstream)
        ex.notes["tracing"] = flight
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(flight.on_task_done)
        if tracing.tracing_enabled() and tp is not None and not tp.endswith("-00"):
            route = ex.route.template if ex.route else "unmatched"
            flight.span = tracing.start_span(
                f"{ex.request.method} {route}", kind=tracing.SpanKind.SERVER, adopt=tp,
                attributes={"http.request.method": ex.request.method, "http.route": route,
                            "migrate.service": service, "migrate.side": ex.side, "migrate.decision": ex.decision,
                            "migrate.correlation_id": ex.request.request_id},
            )
            flight.token = tracing.activate(flight.span)

    def applies(self, route: Route | None, state: ServiceState | None) -> bool:
        return True

    def needs_body(self, ex: Exchange) -> bool:
        return False

    async def response(self, ex: Exchange) -> None:
        flight = ex.notes.get("tracing")
        if not isinstance(flight, _Flight):
            return
        flight.close_upstream()
        if flight.span is not None:
            attrs: dict[str, Any] = {"migrate.side": ex.side,
                                     "upstream.elapsed_ms": round((time.perf_counter() - flight.t0) * 1000, 3)}
            if ex.error is not None:
                attrs["upstream.error"] = ex.error.kind
            elif ex.response is not None:
                attrs["upstream.status_code"] = ex.response.status
            flight.span.add_event("upstream.response", attrs)
            flight.span.set_attribute("migrate.side", ex.side)  # failover may have changed it

    def done(self, ex: Exchange) -> None:
        flight = ex.notes.get("tracing")
        if not isinstance(flight, _Flight):
            return
        if flight.span is not None and ex.response is not None:
            flight.span.set_attribute("http.response.status_code", ex.response.status)
        error = None
        if ex.error is not None:
            error = f"upstream {ex.error.kind}"
        elif ex.response is not None and ex.response.status >= 500:
            error = f"HTTP {ex.response.status}"
        token, flight.token = flight.token, None
        flight.close(error)
        tracing.deactivate(token)
