"""The service app factory: health, readiness, metrics, JSON logs, context propagation, errors.

A service is ``create_service_app("account", settings=..., routers=[router], ready_checks=...)``
plus its routes, models and ``migration.py``. Cross-cutting behaviour lives in one raw ASGI
middleware (cheaper than BaseHTTPMiddleware) so every route gets it for free.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import multiprocess
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chariot_migrate.model.errors import ApiError, describe_errors
from chariot_migrate.redact import redact_text

from ...observability import tracing
from .auth import Authenticator, AuthError, MembershipLookup, build_authenticator
from .context import (
    CORRELATION_HEADER,
    TRACEPARENT_HEADER,
    accept_correlation_id,
    correlation_id_var,
    new_trace_context,
    parse_traceparent,
    trace_context_var,
)
from .logs import configure_json_logging
from .metrics import UNMATCHED_ENDPOINT, ServiceMetrics
from .settings import ServiceSettings

ReadyCheck = Callable[[], Any]  # sync or async; raises (or returns False) when not ready
Hook = Callable[[FastAPI], Any]  # sync or async, receives the app
QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})  # logged at debug: probes are frequent


def validation_message(errors: Sequence[Mapping[str, Any]]) -> str:
    """Pydantic errors → the legacy API's one-line ``"<field>: <problem>"`` message (pure)."""
    return describe_errors(errors)


class ServiceMiddleware:
    """Correlation id + traceparent, metrics, one access log event, and last-resort 500s."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics, logger: logging.Logger) -> None:
        self.app = app
        self.metrics = metrics
        self.log = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        correlation_id = accept_correlation_id(headers.get(CORRELATION_HEADER))
        incoming = parse_traceparent(headers.get(TRACEPARENT_HEADER))
        trace = incoming.child() if incoming else new_trace_context()
        span = span_token = None
        if tracing.tracing_enabled() and trace.flags != "00":
            # The server span takes this hop's ids, so logs, the echoed header and the span agree.
            span = tracing.start_span(
                f"{scope['method']} {scope.get('path', '')}", kind=tracing.SpanKind.SERVER,
                parent=incoming.traceparent if incoming else None, adopt=trace.traceparent,
                attributes={"http.request.method": scope["method"], "migrate.correlation_id": correlation_id},
            )
            span_token = tracing.activate(span)
        cid_token = correlation_id_var.set(correlation_id)
        trace_token = trace_context_var.set(trace)
        echo = [
            (b"x-correlation-id", correlation_id.encode()),
            (b"traceparent", trace.traceparent.encode()),
        ]
        status = 500
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [
                    *[
                        (k, v)
                        for k, v in message.get("headers", [])
                        if k.lower() not in (b"x-correlation-id", b"traceparent")
                    ],
                    *echo,
                ]
            await send(message)

        t0 = time.perf_counter()
        self.metrics.connection_opened("http")
        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            self.log.exception("unhandled error", extra={"method": scope["method"], "route": _route(scope)})
            if not started:
                resp = JSONResponse({"message": "Internal server error"}, status_code=500)
                await resp(scope, receive, send_wrapper)
            status = 500
        finally:
            duration = time.perf_counter() - t0
            self.metrics.connection_closed("http")
            route = _route(scope)
            self.metrics.observe_request(scope["method"], route, status, duration)
            if span is not None:
                span.update_name(f"{scope['method']} {route}")
                tracing.end_span(span, error=f"HTTP {status}" if status >= 500 else None,
                                 attributes={"http.route": route, "http.response.status_code": status})
                tracing.deactivate(span_token)
            level = logging.DEBUG if scope.get("path") in QUIET_PATHS else logging.INFO
            self.log.log(
                level,
                "request",
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(duration * 1000, 3),
                },
            )
            correlation_id_var.reset(cid_token)
            trace_context_var.reset(trace_token)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ENDPOINT


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


async def run_ready_checks(checks: Mapping[str, ReadyCheck], timeout: float) -> dict[str, str]:
    """Run every check concurrently; returns {name: "ok" | reason}."""

    async def one(name: str, check: ReadyCheck) -> tuple[str, str]:
        try:
            result = await asyncio.wait_for(_call(check), timeout)
        except TimeoutError:
            return name, f"timed out after {timeout:g}s"
        except Exception as exc:  # a failing dependency is the answer, not an error
            return name, redact_text(f"{type(exc).__name__}: {exc}")[:300]
        return name, "ok" if result is not False else "check returned false"

    results = await asyncio.gather(*(one(n, c) for n, c in checks.items()))
    return dict(results)


def create_service_app(
    name: str,
    *,
    settings: ServiceSettings | None = None,
    routers: Sequence[APIRouter] = (),
    ready_checks: Mapping[str, ReadyCheck] | None = None,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    membership: MembershipLookup | None = None,
    authenticator: Authenticator | None = None,
    version: str = "0.1.0",
    ready_timeout: float = 2.0,
    configure_logging: bool = True,
) -> FastAPI:
    """Build a FastAPI service app with the kit's conventions.

    ``ready_checks`` may also be extended after creation via ``app.state.ready_checks[name] = fn``
    (handy when a check needs a client created in an ``on_startup`` hook).
    """
    settings = settings or ServiceSettings.from_env(name)
    # OpenTelemetry only when OTEL_EXPORTER_OTLP_ENDPOINT is set (one provider per process).
    owns_tracing = not tracing.tracing_enabled() and tracing.setup_tracing(name)
    if configure_logging:
        configure_json_logging(name, settings.log_level)
    log = logging.getLogger(f"chariot.{name}")
    metrics = ServiceMetrics(name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for hook in on_startup:
            await _call(hook, app)
        log.info("service started", extra={"version": version})
        try:
            yield
        finally:
            for hook in reversed(on_shutdown):
                try:
                    await _call(hook, app)
                except Exception:
                    log.exception("shutdown hook failed")
            if owns_tracing:
                tracing.shutdown_tracing()  # flushes the batch exporter
            if metrics.multiprocess:
                # Drop this process's live gauges from the shared directory (workers come and go).
                multiprocess.mark_process_dead(os.getpid())

    app = FastAPI(title=f"chariot {name}", version=version, lifespan=lifespan)
    app.state.service_name = name
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.ready_checks = dict(ready_checks or {})
    if authenticator is None and (settings.jwks_url or settings.jwks_json or settings.jwt_public_key):
        authenticator = build_authenticator(settings, membership)
    app.state.auth = authenticator

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"message": validation_message(exc.errors())}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return JSONResponse({"message": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"message": exc.message}, status_code=exc.status)

    @app.exception_handler(AuthError)
    async def _auth(request: Request, exc: AuthError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"message": exc.reason}, status_code=exc.status, headers=headers)

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": name}

    @app.get("/ready", tags=["ops"])
    async def ready() -> JSONResponse:
        results = await run_ready_checks(app.state.ready_checks, ready_timeout)
        failed = {k: v for k, v in results.items() if v != "ok"}
        if failed:
            log.warning("not ready", extra={"failed": failed})
            return JSONResponse(
                {"status": "unavailable", "failed": failed, "checks": results}, status_code=503
            )
        return JSONResponse({"status": "ready", "checks": results})

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    for router in routers:
        app.include_router(router)
    app.add_middleware(ServiceMiddleware, metrics=metrics, logger=log)
    return app


__all__ = [
    "ReadyCheck",
    "ServiceMiddleware",
    "create_service_app",
    "run_ready_checks",
    "validation_message",
]
