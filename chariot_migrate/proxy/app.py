"""The strangler proxy's hot path: a raw ASGI app (no framework routing — it costs ~40 %).

normalise path → read body (limit) → match route → bucket key → pick side → forward → respond.
Decisions are pure functions in routes/ and rollout/; this module only glues them to sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from ..rollout.bucketing import SideDecision, choose_side
from ..rollout.store import StateStore, open_state_store
from ..routes.matcher import RequestView, RouteTable, normalise_path
from ..routes.models import SAFE_METHODS, RoutesFile, ServiceConfig
from ..transport import HttpRequest, HttpResponse, Transport, UpstreamError
from . import metrics
from .accesslog import AccessLog
from .addons import Addon, Exchange
from .auth import EdgeAuth
from .edge import EdgePolicy, send_rejection
from .headers import (
    bucket_key,
    correlation_id,
    downstream_response_headers,
    traceparent,
    upstream_request_headers,
)
from .live import LiveRoutes, LiveState
from .ratelimit import RateLimiters
from .resilience import UpstreamPool, build_service_pool, guard_legacy, send_with_failover, service_pool_key
from .upstream import http_transport

log = logging.getLogger("chariot_migrate.proxy")
access_log = logging.getLogger("chariot_migrate.access")


class BodyTooLarge(Exception):
    pass


class Transports:
    """One transport per side: the legacy invoker and one pool per new service."""

    def __init__(self) -> None:
        self.legacy: Transport | None = None
        self._legacy_key: Any = None
        self.services: dict[str, Transport] = {}
        self._service_keys: dict[str, str] = {}
        self._retired: list[Transport] = []

    def sync(self, cfg: RoutesFile) -> None:
        """(Re)build transports whose configuration changed; keep the others (and their pools)."""
        lk = cfg.legacy.model_dump_json()
        if lk != self._legacy_key:
            if self.legacy is not None:
                self._retired.append(self.legacy)
            self.legacy = guard_legacy(build_legacy_transport(cfg), cfg.legacy)
            self._legacy_key = lk
        for name, svc in cfg.services.items():
            key = service_pool_key(svc)
            if svc.instances and self._service_keys.get(name) != key:
                if name in self.services:
                    old = self.services[name]
                    if isinstance(old, UpstreamPool):
                        old.stop_health()
                    self._retired.append(old)
                self.services[name] = build_service_pool(name, svc)
                self._service_keys[name] = key
            t = self.services.get(name)
            if isinstance(t, UpstreamPool):
                t.start_health()

    async def aclose(self) -> None:
        for t in [*self._retired, *self.services.values(), *([self.legacy] if self.legacy else [])]:
            with contextlib.suppress(Exception):
                await t.aclose()


def build_legacy_transport(cfg: RoutesFile) -> Transport:
    if cfg.legacy.invoker == "http":
        return http_transport(cfg.legacy.url or "")
    # Lambda invokers live in lambda_adapters (toolkit core, Chariot-agnostic).
    from ..lambda_adapters.invokers import build_invoker

    legacy = cfg.legacy
    if legacy.endpoint_url is None and os.environ.get("CHARIOT_MIGRATE_LEGACY_ENDPOINT_URL"):
        # `chariot-migrate up` starts moto on a free port and tells the proxy where it is.
        legacy = legacy.model_copy(update={"endpoint_url": os.environ["CHARIOT_MIGRATE_LEGACY_ENDPOINT_URL"]})
    return build_invoker(legacy)


def _error_body(message: str, side: str) -> bytes:
    return json.dumps({"error": message, "side": side}).encode()


class ProxyApp:
    def __init__(self, routes_path: str | Path, state: StateStore | str | None = None, *,
                 addons: list[Addon] | None = None, poll_interval_s: float = 0.5,
                 access_log_enabled: bool = True) -> None:
        self.routes = LiveRoutes(routes_path)
        self.store = state if state is not None and not isinstance(state, str) else open_state_store(state)
        self.state = LiveState(self.store)
        self.transports = Transports()
        self.addons: list[Addon] = list(addons or [])
        self.poll_interval_s = poll_interval_s
        self.metrics = metrics.RequestMetrics()
        self.access = AccessLog()
        self.operator_token = os.environ.get("CHARIOT_MIGRATE_OPERATOR_TOKEN", "")
        self.access_log_enabled = access_log_enabled
        self._tasks: list[asyncio.Task] = []
        self._before: list[Any] = []  # add-ons with a before() hook, fixed at startup
        self.inflight = 0
        # Edge checks, compiled per route table; limiter and JWT caches outlive reloads.
        self.limiters = RateLimiters()
        self._edge_table: RouteTable | None = None
        self._edge: EdgePolicy | None = None
        self._auth: tuple[str, EdgeAuth] | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    async def startup(self) -> None:
        self.transports.sync(self.routes.table.config)
        await self.state.poll()
        self._before = [a for a in self.addons if hasattr(a, "before")]
        for a in self.addons:
            await a.start()
        self._tasks.append(asyncio.create_task(self._refresh_loop()))

    async def shutdown(self) -> None:
        for t in self._tasks:
            t.cancel()
        self.metrics.flush()
        self.access.flush()
        for a in self.addons:
            with contextlib.suppress(Exception):
                await a.aclose()
        await self.transports.aclose()
        await self.limiters.aclose()

    def _edge_for(self, table: RouteTable) -> EdgePolicy:
        cfg = table.config
        auth = None
        if cfg.auth is not None:
            key = cfg.auth.model_dump_json()
            if self._auth is None or self._auth[0] != key:
                self._auth = (key, EdgeAuth(cfg.auth))
            auth = self._auth[1]
        self.limiters.use_store(cfg.rate_limit_store)
        self._edge, self._edge_table = EdgePolicy(table, self.limiters, auth), table
        return self._edge

    async def _refresh_loop(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(self.poll_interval_s)
            self.access.flush()
            self.metrics.flush()
            await self.state.poll()
            ticks += 1
            if ticks % 2 == 0 and await self.routes.check():  # routes.yaml: once a second
                self.transports.sync(self.routes.table.config)

    async def __call__(self, scope: dict, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.handle(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as e:  # noqa: BLE001 — report any startup failure to the server
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ---- hot path ----------------------------------------------------------------------------

    async def handle(self, scope: dict, receive, send) -> None:
        t0 = time.perf_counter()
        self.inflight += 1
        try:
            await self._handle(scope, receive, send, t0)
        finally:
            self.inflight -= 1

    async def _handle(self, scope: dict, receive, send, t0: float) -> None:
        table = self.routes.table  # one reference per request: reloads swap atomically
        cfg = table.config
        method: str = scope["method"]
        edge = self._edge if self._edge_table is table else self._edge_for(table)
        if edge.screens and (rej := edge.screen(scope, method)) is not None:
            return await send_rejection(send, rej)
        path, problem = normalise_path(scope["path"], cfg.stage_prefix)
        if problem:
            metrics.REJECTED.labels("bad_path").inc()
            return await _send_json(send, 400, {"error": f"bad request path: {problem}"})
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        hmap = dict(headers)
        try:
            body = await _read_body(receive, hmap, cfg.defaults.max_body_bytes)
        except BodyTooLarge:
            metrics.REJECTED.labels("body_too_large").inc()
            return await _send_json(send, 413, {"error": f"request body exceeds {cfg.defaults.max_body_bytes} bytes"})
        query = scope["query_string"].decode("latin-1")
        view = RequestView(method, path, query, hmap, body)
        match = table.match(view)
        if match is None and edge.enforced and (rej := edge.method_not_allowed(view)) is not None:
            return await send_rejection(send, rej, edge.cors_headers(hmap))
        route = match.route if match else None
        service = route.service if route else None
        svc_cfg = cfg.services.get(service) if service else None
        account = bucket_key(cfg.bucket_by, hmap, view.query_first)
        client = scope.get("client") or ("127.0.0.1", 0)
        principal = account
        if edge.auth is not None and not (route and route.public):
            verified, rej = await edge.authenticate(hmap)
            if rej is not None:
                return await send_rejection(send, rej, edge.cors_headers(hmap))
            principal = verified.principal
        if edge.limits and (rej := await edge.limit(service, account, client[0])) is not None:
            return await send_rejection(send, rej, edge.cors_headers(hmap))

        state = None
        if service is not None:
            state = self.state.get(service, svc_cfg)
            decision = choose_side(salt=(svc_cfg.salt if svc_cfg and svc_cfg.salt else service), key=account,
                                   percent_bp=state.percent_bp, pins=state.pins,
                                   override=self._override(hmap), retired=state.stage == "retired")
            if account is None:
                metrics.UNBUCKETED.labels(service).inc()
        else:
            decision = SideDecision("legacy", "bucket")
        side = decision.side
        new_t = self.transports.services.get(service) if service else None
        if side == "new" and new_t is None:  # no instance configured: legacy keeps serving
            side, decision = "legacy", SideDecision("legacy", decision.reason)
        primary = new_t if side == "new" else self.transports.legacy
        other = (self.transports.legacy if side == "new" else new_t) if service else None
        timeout = (route.timeout_s if route and route.timeout_s else None) or \
                  (svc_cfg.timeout_s if side == "new" and svc_cfg and svc_cfg.timeout_s else None) or \
                  (cfg.legacy.timeout_s if side == "legacy" else cfg.defaults.timeout_s)

        cid = correlation_id(hmap)
        tp = traceparent(hmap)
        req = HttpRequest(
            method=method, path=path, query=query,
            headers=upstream_request_headers(headers, client_ip=client[0], scheme=scope.get("scheme", "http"),
                                             host=hmap.get("host"), correlation_id=cid,
                                             traceparent=tp),
            body=body, route_template=route.template if route else None,
            path_params=match.path_params if match else {},
            function=(route.function if route else None) or cfg.legacy.default_function,
            principal=principal, stage=cfg.legacy.stage, client_ip=client[0], request_id=cid,
        )
        ex = Exchange(request=req, route=route, service=service, account=account, state=state, side=side,
                      decision=decision.reason, primary=primary, other=other, timeout_s=timeout)
        for a in self._before:  # add-ons that may still change the side (e.g. dual-write draining)
            await a.before(ex)
        side, primary, other = ex.side, ex.primary, ex.other
        buffer = any(a.needs_body(ex) for a in self.addons)
        try:
            if side == "new" and svc_cfg is not None and isinstance(primary, UpstreamPool):
                resp = await self._send_new(ex, cfg, svc_cfg)
                side = ex.side
            else:
                resp = await primary.send(req, timeout)
            if buffer:
                await resp.read()
        except UpstreamError as e:
            side = ex.side
            ex.error = e
            metrics.UPSTREAM_ERRORS.labels(service or "-", side, e.kind).inc()
            status = 504 if e.kind == "timeout" else 502
            resp = HttpResponse(status, [("content-type", "application/json")], _error_body(e.message, side))
        ex.response = resp
        ex.latency_s = time.perf_counter() - t0
        for a in self.addons:
            await a.response(ex)
        resp = ex.response  # an add-on may have replaced it (e.g. a write it could not record)

        # The side may echo the correlation id; the client gets exactly one (ours, the same value).
        out_headers = [h for h in downstream_response_headers(resp.headers) if h[0] != "x-correlation-id"]
        if cfg.defaults.side_header:
            out_headers.append((cfg.defaults.side_header.lower(), side))
        out_headers.append(("x-correlation-id", cid))
        out_headers.extend(ex.extra_headers)
        if edge.cors is not None:
            out_headers.extend(edge.cors_headers(hmap))
        status = await _send_response(send, resp, out_headers, side, log)
        elapsed = time.perf_counter() - t0
        endpoint = route.template if route else "unmatched"
        self.metrics.observe(service or "-", method, endpoint, status, side, decision.reason, elapsed)
        if self.access_log_enabled:
            self.access.write({
                "correlation_id": cid, "trace_id": tp[3:35], "method": method, "route": endpoint,
                "upstream_service": service, "side": side, "decision": ex.decision, "status": status,
                "duration_ms": round(elapsed * 1000, 2)})
        for a in self.addons:
            a.done(ex)

    async def _send_new(self, ex: Exchange, cfg: RoutesFile, svc: ServiceConfig) -> HttpResponse:
        """New side through its pool (retries, breakers). A failed safe request (a read, or a
        ``shadow: true`` route) is served by legacy instead when failover is on: counted, marked."""
        route, legacy = ex.route, self.transports.legacy
        safe = ex.request.method in SAFE_METHODS or (route is not None and route.shadow is True)
        failover = legacy is not None and safe and (svc.failover if svc.failover is not None else cfg.defaults.failover)
        retry_writes = route is not None and cfg.routes[route.index].retry_writes
        legacy_timeout = (route.timeout_s if route and route.timeout_s else None) or cfg.legacy.timeout_s
        resp, reason = await send_with_failover(ex.primary, legacy, ex.request, ex.timeout_s,  # type: ignore[arg-type]
                                                legacy_timeout, retry_writes=retry_writes, failover=failover)
        if reason is not None:
            metrics.FAILOVERS.labels(ex.service or "-", reason).inc()
            # Legacy answered: the exchange is a legacy one now; no shadow copy to the failing side.
            ex.side, ex.primary, ex.other = "legacy", legacy, None  # type: ignore[assignment]
            ex.extra_headers.append(("x-migrate-failover", reason))
        return resp

    def _override(self, hmap: dict[str, str]) -> Any:
        target = hmap.get("x-migrate-target")
        if not target or not self.operator_token:
            return None
        if target not in ("legacy", "new"):
            return None
        if not hmac.compare_digest(hmap.get("x-migrate-token", ""), self.operator_token):
            return None
        return target


async def _read_body(receive, hmap: dict[str, str], limit: int) -> bytes:
    cl = hmap.get("content-length")
    if cl is not None and cl.isdigit() and int(cl) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            break
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not msg.get("more_body", False):
            break
    return b"".join(chunks)


async def _send_json(send, status: int, doc: dict) -> None:
    body = json.dumps(doc).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _send_response(send, resp: HttpResponse, headers: list[tuple[str, str]], side: str, logger) -> int:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    if resp.stream is None:
        if not any(k == "content-length" for k, _ in headers):
            raw.append((b"content-length", str(len(resp.body)).encode()))
        await send({"type": "http.response.start", "status": resp.status, "headers": raw})
        await send({"type": "http.response.body", "body": resp.body})
        return resp.status
    # Streamed: read the first chunk before committing the status, so an upstream that dies
    # immediately still becomes a clean 502 instead of a truncated 200.
    it = resp.stream.__aiter__()
    try:
        first = await it.__anext__()
    except StopAsyncIteration:
        first = b""
        it = None
    except UpstreamError as e:
        await _send_json(send, 502, {"error": e.message, "side": side})
        return 502
    await send({"type": "http.response.start", "status": resp.status, "headers": raw})
    if it is None:
        await send({"type": "http.response.body", "body": first})
        return resp.status
    await send({"type": "http.response.body", "body": first, "more_body": True})
    try:
        async for chunk in it:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except UpstreamError as e:
        # Headers are gone; all we can do is end the body. Logged, never a traceback.
        logger.warning("upstream broke off a streamed response: %s", e.message)
    await send({"type": "http.response.body", "body": b""})
    return resp.status


def create_app() -> ProxyApp:
    """uvicorn factory: configuration comes from the environment set by ``chariot-migrate proxy``."""
    from ..jsonlog import configure_json_logging

    configure_json_logging()
    routes = os.environ.get("CHARIOT_MIGRATE_ROUTES", "routes.yaml")
    app = ProxyApp(routes, os.environ.get("CHARIOT_MIGRATE_STATE"),
                   access_log_enabled=os.environ.get("CHARIOT_MIGRATE_ACCESS_LOG", "1") != "0")
    app.addons.extend(default_addons(app))
    return app


def default_addons(app: ProxyApp) -> list[Addon]:
    """Always installed: shadow comparison (one check per request while nothing is shadowed) and
    request windows for the rollout gates (one dict update per request)."""
    from .shadowing import ShadowAddon

    def config() -> RoutesFile:
        return app.routes.table.config

    from ..rollout.plan import Plan
    from ..rollout.windows import open_window_store
    from .windowing import WindowAddon

    metrics_url = os.environ.get("CHARIOT_MIGRATE_METRICS_STORE") or Plan.from_routes(config()).metrics_store
    shadow = ShadowAddon(config, store_url=os.environ.get("CHARIOT_MIGRATE_SHADOW_STORE"))
    addons: list[Addon] = [shadow, WindowAddon(open_window_store(metrics_url))]
    if config().dual_write is not None or os.environ.get("CHARIOT_MIGRATE_OUTBOX"):
        from ..dual_write.outbox import open_outbox
        from .dualwrite import DualWriteAddon

        def side_transport(service: str, side: str) -> Transport | None:
            return app.transports.legacy if side == "legacy" else app.transports.services.get(service)

        outbox = open_outbox(os.environ["CHARIOT_MIGRATE_OUTBOX"]) if os.environ.get("CHARIOT_MIGRATE_OUTBOX") else None
        # Dual write goes first: its outbox append must happen before anything else sees the answer.
        addons.insert(0, DualWriteAddon(config, side_transport, outbox=outbox, shadow_engine=shadow.engine,
                                        shadow_rules=lambda route_id: shadow._config().rules_for(route_id)))
    if os.environ.get("CHARIOT_MIGRATE_CAPTURE"):
        from .capturing import CaptureAddon

        addons.append(CaptureAddon(os.environ["CHARIOT_MIGRATE_CAPTURE"],
                                   float(os.environ.get("CHARIOT_MIGRATE_CAPTURE_SAMPLE", "1"))))
    from .tracing import TracingAddon

    addons.append(TracingAddon())  # last: trace id on log lines, in-flight gauges, spans when OTEL_* is set
    return addons
