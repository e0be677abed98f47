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
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..resilience.breaker import CircuitBreaker, State
from ..rollout.bucketing import BUCKETS, Side, salt_for
from ..rollout.state import ServiceState
from ..rollout.store import StateStore, open_state_store
from ..routes.matcher import (
    RAW_SAFE,
    RequestPath,
    RequestView,
    Route,
    RouteMatch,
    RouteTable,
    split_raw_path,
    split_version,
)
from ..routes.models import SAFE_METHODS, RoutesFile, ServiceConfig
from ..transport import HttpRequest, HttpResponse, Transport, UpstreamError, quote_path
from . import metrics
from .accesslog import AccessLog
from .addons import Addon, Exchange, WritesInFlight
from .auth import EdgeAuth
from .bff import SUBREQUEST, Bff, match_bff
from .breakers import BreakerBus, edge_store_url
from .decide import OTHER, Decision, DecisionInput, decide_side
from .edge import EdgePolicy, send_rejection
from .failover_new import NewFailover
from .headers import (
    bucket_key,
    downstream_response_headers,
    path_account,
    request_ids,
    upstream_request_headers,
)
from .live import LiveRoutes, LiveState
from .ratelimit import RateLimiters
from .resilience import (
    UpstreamPool,
    build_service_pool,
    failure_reason,
    guard_legacy,
    send_with_failover,
    service_pool_key,
)
from .settings import ProxySettings
from .upstream import http_transport

log = logging.getLogger("chariot_migrate.proxy")
access_log = logging.getLogger("chariot_migrate.access")


class BodyTooLarge(Exception):
    pass


class Transports:
    """One transport per side: the legacy invoker and one pool per new service."""

    def __init__(self, legacy_endpoint_url: str | None = None) -> None:
        self.legacy_endpoint_url = legacy_endpoint_url
        self.legacy: Transport | None = None
        self._legacy_key: Any = None
        self.services: dict[str, Transport] = {}
        self._service_keys: dict[str, str] = {}
        self._retired: list[Transport] = []
        self.bus: BreakerBus | None = None  # breaker trips shared with the other workers (Redis)

    def _share(self, service: str, instance: str, to: State) -> None:
        if self.bus is not None:
            self.bus.publish(service, instance, to)

    def breaker(self, service: str, instance: str) -> CircuitBreaker | None:
        pool = self.legacy if service == "legacy" else self.services.get(service)
        return pool.breaker(instance) if isinstance(pool, UpstreamPool) else None

    def sync(self, cfg: RoutesFile) -> None:
        """(Re)build transports whose configuration changed; keep the others (and their pools)."""
        lk = cfg.legacy.model_dump_json()
        if lk != self._legacy_key:
            if self.legacy is not None:
                self._retired.append(self.legacy)
            self.legacy = guard_legacy(build_legacy_transport(cfg, self.legacy_endpoint_url), cfg.legacy, self._share)
            self._legacy_key = lk
        for name, svc in cfg.services.items():
            key = service_pool_key(svc)
            if svc.instances and self._service_keys.get(name) != key:
                if name in self.services:
                    old = self.services[name]
                    if isinstance(old, UpstreamPool):
                        old.stop_health()
                    self._retired.append(old)
                self.services[name] = build_service_pool(name, svc, self._share)
                self._service_keys[name] = key
            t = self.services.get(name)
            if isinstance(t, UpstreamPool):
                t.start_health()

    async def share_through(self, url: str | None) -> None:
        """Share breaker trips through the Redis at ``url`` (None: each worker keeps its own)."""
        if self.bus is not None and (url is None or self.bus.url != url):
            await self.bus.aclose()
            self.bus = None
        if url is not None and self.bus is None:
            self.bus = BreakerBus(url, self.breaker)
            self.bus.start()

    async def aclose(self) -> None:
        if self.bus is not None:
            await self.bus.aclose()
        for t in [*self._retired, *self.services.values(), *([self.legacy] if self.legacy else [])]:
            with contextlib.suppress(Exception):
                await t.aclose()


def build_legacy_transport(cfg: RoutesFile, endpoint_url: str | None = None) -> Transport:
    if cfg.legacy.invoker == "http":
        return http_transport(cfg.legacy.url or "")
    # Lambda invokers live in lambda_adapters (toolkit core, Chariot-agnostic).
    from ..lambda_adapters.invokers import build_invoker

    legacy = cfg.legacy
    if legacy.endpoint_url is None and endpoint_url:
        # `chariot-migrate up` starts moto on a free port and tells the proxy where it is.
        legacy = legacy.model_copy(update={"endpoint_url": endpoint_url})
    return build_invoker(legacy)


UNMATCHED = Decision("legacy", "bucket")  # no route: legacy's default, nothing to decide


@dataclass(slots=True)
class RoutePlan:
    """What requests on one route need, compiled once per route table: the stages that apply
    (authenticate, limit), what they read (salt, timeouts, failover), and the add-ons that can
    act on the route under the service's current state (recomputed when the state changes)."""

    route: Route | None
    service: str | None
    svc: ServiceConfig | None
    salt: str
    endpoint: str  # the route template, the metrics' and access log's name for it
    function: str | None  # the Lambda legacy invokes
    authenticate: bool
    limit: bool
    retry_writes: bool
    failover: bool  # the new side failed a safe request: legacy serves it
    failover_to_new: bool
    timeout: dict[str, float]  # per side
    side_header: str | None
    response_headers: tuple[tuple[str, str], ...]
    endpoint_json: str = ""  # endpoint and service as JSON, for the access log
    service_json: str = "null"
    _addons_key: tuple[object, int] | None = None
    _addons: tuple[Addon, ...] = ()

    @classmethod
    def compile(cls, cfg: RoutesFile, edge: EdgePolicy, route: Route | None) -> RoutePlan:
        service = route.service if route else None
        svc = cfg.services.get(service) if service else None
        route_t = route.timeout_s if route and route.timeout_s else None
        return cls(
            route=route, service=service, svc=svc,
            salt=salt_for(service, svc.salt if svc else None) if service else "",
            endpoint=route.template if route else "unmatched",
            function=(route.function if route else None) or cfg.legacy.default_function,
            authenticate=edge.auth is not None and not (route and route.public),
            limit=bool(edge.limits),
            retry_writes=route is not None and cfg.routes[route.index].retry_writes,
            failover=bool(svc is not None and (svc.failover if svc.failover is not None else cfg.defaults.failover)),
            failover_to_new=bool(svc is not None and svc.failover_to_new),
            timeout={"new": route_t or (svc.timeout_s if svc and svc.timeout_s else None) or cfg.defaults.timeout_s,
                     "legacy": route_t or cfg.legacy.timeout_s},
            side_header=cfg.defaults.side_header.lower() if cfg.defaults.side_header else None,
            response_headers=route.response_headers if route else (),
            endpoint_json=json.dumps(route.template if route else "unmatched"), service_json=json.dumps(service),
        )

    def addons_for(self, state: ServiceState | None, addons: list[Addon]) -> tuple[Addon, ...]:
        key = (state, len(addons))
        if self._addons_key is None or self._addons_key[0] is not state or self._addons_key[1] != len(addons):
            self._addons = tuple(a for a in addons if a.applies(self.route, state))
            self._addons_key = key
        return self._addons


@dataclass(slots=True)
class Flow:
    """One request between the stages: what was read from the client, and the route's plan."""

    scope: dict
    cfg: RoutesFile
    method: str
    headers: list[tuple[str, str]]  # lower-case names, in order
    hmap: dict[str, str]
    body: bytes
    rp: RequestPath
    query: str
    match: RouteMatch | None
    plan: RoutePlan
    account: str | None
    principal: str | None
    client_ip: str
    cid: str = ""
    tp: str = ""


def _error_body(message: str, side: str) -> bytes:
    return json.dumps({"error": message, "side": side}).encode()


class ProxyApp:
    def __init__(self, routes_path: str | Path, state: StateStore | str | None = None, *,
                 addons: list[Addon] | None = None, poll_interval_s: float = 0.5,
                 access_log_enabled: bool = True, settings: ProxySettings | None = None) -> None:
        self.settings = settings or ProxySettings.from_env()
        self.routes = LiveRoutes(routes_path)
        self.store = state if state is not None and not isinstance(state, str) else open_state_store(state)
        self.state_url = state if isinstance(state, str) else None
        self.new_failover = NewFailover(lambda: self.routes.table.config, self.state_url)
        self._pending_toward: Any = None  # dual write's "writes of this account still on their way there?"
        self.state = LiveState(self.store)
        self.transports = Transports(self.settings.legacy_endpoint_url)
        self.addons: list[Addon] = list(addons or [])
        self.poll_interval_s = poll_interval_s
        self.metrics = metrics.RequestMetrics()
        self.access = AccessLog()
        self.operator_token = self.settings.operator_token
        self.access_log_enabled = access_log_enabled
        self._tasks: list[asyncio.Task] = []
        self._plans: dict[int, RoutePlan] = {}  # route index (-1: unmatched) → plan, per route table
        self.inflight = 0
        self.bff = Bff(self.handle)
        # Edge checks, compiled per route table; limiter and JWT caches outlive reloads.
        self.limiters = RateLimiters()
        self._edge_table: RouteTable | None = None
        self._edge: EdgePolicy | None = None
        self._auth: tuple[str, EdgeAuth] | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    async def startup(self) -> None:
        self.transports.sync(self.routes.table.config)
        await self.transports.share_through(self.edge_store(self.routes.table.config))
        await self.state.poll()
        self._plans.clear()
        self._pending_toward = next((a.pending_toward for a in self.addons if isinstance(a, WritesInFlight)), None)
        self.new_failover.start()
        for a in self.addons:
            await a.start()
        self._tasks.append(asyncio.create_task(self._refresh_loop()))

    async def shutdown(self) -> None:
        for t in self._tasks:
            t.cancel()
        await self.new_failover.aclose()
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
        self.limiters.use_store(self.edge_store(cfg))
        self._edge, self._edge_table = EdgePolicy(table, self.limiters, auth), table
        self._plans = {}
        return self._edge

    def _plan_for(self, table: RouteTable, edge: EdgePolicy, route: Route | None) -> RoutePlan:
        key = route.index if route is not None else -1
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = RoutePlan.compile(table.config, edge, route)
        return plan

    def edge_store(self, cfg: RoutesFile) -> str | None:
        """Where rate limits and breaker trips are shared: rate_limit_store, else a Redis state store."""
        return edge_store_url(cfg.rate_limit_store, self.state_url)

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
                await self.transports.share_through(self.edge_store(self.routes.table.config))

    async def __call__(self, scope: dict, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.handle(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await refuse_websocket(scope, receive, send)

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
    #
    # Stages, top to bottom (DESIGN §3): screen → match → authenticate → limit → decide side →
    # forward → respond → record. Each returns what the next needs, or answers the client itself
    # and returns None. What a route needs is compiled once per route table (``RoutePlan``).

    async def handle(self, scope: dict, receive, send) -> None:
        t0 = time.perf_counter()
        self.inflight += 1
        try:
            cfg = self.routes.table.config
            if (cfg.bff.enabled and SUBREQUEST not in (scope.get("extensions") or {})
                    and (m := match_bff(cfg, scope)) is not None):
                await self.bff.serve(m, cfg, scope, receive, send)  # its parts come back through handle()
            else:
                await self._handle(scope, receive, send, t0)
        finally:
            self.inflight -= 1

    async def _handle(self, scope: dict, receive, send, t0: float) -> None:
        table = self.routes.table  # one reference per request: reloads swap atomically
        edge = self._edge if self._edge_table is table and self._edge is not None else self._edge_for(table)
        if edge.screens and (rej := edge.screen(scope, scope["method"])) is not None:
            return await send_rejection(send, rej)
        flow = await self._match(scope, receive, send, table, edge)
        if flow is None:
            return
        plan = flow.plan
        if plan.authenticate and not await self._authenticate(flow, edge, send):
            return
        if plan.limit and (rej := await edge.limit(plan.service, flow.account, flow.client_ip)) is not None:
            return await send_rejection(send, rej, edge.cors_headers(flow.hmap))
        ex = await self._decide(flow, plan)
        addons = plan.addons_for(ex.state, self.addons)
        for a in addons:
            await a.before(ex)
        await self._forward(ex, plan, addons)
        ex.latency_s = time.perf_counter() - t0
        for a in addons:
            await a.response(ex)
        status = await self._respond(send, ex, flow, plan, edge)
        self._record(ex, flow, plan, status, t0)
        for a in addons:
            a.done(ex)

    async def _match(self, scope: dict, receive, send, table: RouteTable, edge: EdgePolicy) -> Flow | None:
        """Path, version, headers (one pass), body, route: a ``Flow``, or a 4xx already sent."""
        cfg = table.config
        method: str = scope["method"]
        # Match on the decoded path, forward the raw one: an escaped '?', '#' or '%' stays data.
        rp, problem = split_raw_path(scope.get("raw_path") or quote_path(scope["path"]), cfg.stage_prefix)
        if rp is None:
            metrics.REJECTED.labels("bad_path").inc()
            await _send_json(send, 400, {"error": f"bad request path: {problem}"})
            return None
        rp, version = split_version(rp)
        if rp is None:  # whatever routes.yaml says: the internal API is for the services only
            metrics.REJECTED.labels("internal_api").inc()
            await _send_json(send, 404, {"error": "not found: /internal/api is service-to-service only"})
            return None
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        hmap = dict(headers)
        try:
            body = await _read_body(receive, hmap, cfg.defaults.max_body_bytes)
        except BodyTooLarge:
            metrics.REJECTED.labels("body_too_large").inc()
            await _send_json(send, 413, {"error": f"request body exceeds {cfg.defaults.max_body_bytes} bytes"})
            return None
        path = rp.path
        query = _raw_query(scope["query_string"])
        view = RequestView(method, path, query, hmap, body, version or "v1")
        match = table.match(view)
        if (match is None and version is not None and version not in (have := table.versions_of(view))
                and (have or version != "v1")):  # no route at all under v1: the legacy default, as on the stage
            metrics.REJECTED.labels("api_version").inc()
            await _send_json(send, 404, {"error": f"{method} {path} has no API version {version}",
                                                "versions": have})
            return None
        if view.json_problem is not None:  # a body predicate could not read the body: neither side could
            metrics.REJECTED.labels("bad_json").inc()
            await _send_json(send, 400, {"error": f"request body is not valid JSON: {view.json_problem}"})
            return None
        if match is None and edge.enforced and (rej := edge.method_not_allowed(view)) is not None:
            await send_rejection(send, rej, edge.cors_headers(hmap))
            return None
        plan = self._plan_for(table, edge, match.route if match else None)
        account = bucket_key(cfg.bucket_by, hmap, view.query_first)
        principal = account
        if account is None and match is not None and match.path_params:
            account = path_account(cfg.bucket_by, match.path_params)  # bucketing only, never the principal
        client = scope.get("client") or ("127.0.0.1", 0)
        return Flow(scope, cfg, method, headers, hmap, body, rp, query, match, plan, account, principal, client[0])

    async def _authenticate(self, flow: Flow, edge: EdgePolicy, send) -> bool:
        verified, rej = await edge.authenticate(flow.hmap)
        if rej is not None:
            await send_rejection(send, rej, edge.cors_headers(flow.hmap))
            return False
        if verified is not None:  # None only with a rejection, sent above
            flow.principal = verified.principal
        return True

    async def _decide(self, flow: Flow, plan: RoutePlan) -> Exchange:
        """The side (``decide_side``: every override goes through it) and the exchange to forward."""
        service, account, hmap, cfg = plan.service, flow.account, flow.hmap, flow.cfg
        new_t = self.transports.services.get(service) if service else None
        state = None
        if service is None:
            decided, decision = None, UNMATCHED
        else:
            state = self.state.get(service, plan.svc)
            decided = DecisionInput(
                salt=plan.salt, account=account, percent_bp=state.percent_bp, pins=state.pins,
                override=self._override(hmap), retired=state.stage == "retired",
                random_bucket=random.randrange(BUCKETS) if account is None else 0,
                has_new=new_t is not None, has_legacy=self.transports.legacy is not None)
            decision = decide_side(decided)
            if account is None:
                metrics.UNBUCKETED.labels(service).inc()
            elif self._pending_toward is not None and "x-migrate-replay" not in hmap:
                pending = await self._pending_sides(account, service, decision.side)
                if pending:
                    decided = replace(decided, pending=pending)
                    decision = decide_side(decided)
        side = decision.side
        primary = new_t if side == "new" else self.transports.legacy
        other = (self.transports.legacy if side == "new" else new_t) if service else None
        cid, tp = request_ids(hmap)
        route, match = plan.route, flow.match
        req = HttpRequest(
            method=flow.method, path=flow.rp.path, query=flow.query,
            headers=upstream_request_headers(flow.headers, client_ip=flow.client_ip,
                                             scheme=flow.scope.get("scheme", "http"), host=hmap.get("host"),
                                             correlation_id=cid, traceparent=tp),
            body=flow.body, route_template=route.template if route else None,
            path_params=match.path_params if match else {}, function=plan.function,
            principal=flow.principal, stage=cfg.legacy.stage, client_ip=flow.client_ip, request_id=cid,
            raw_path=flow.rp.raw,
        )
        flow.cid, flow.tp = cid, tp
        return Exchange(request=req, route=route, service=service, account=account, state=state, side=side,
                        decision=decision.reason, primary=primary, other=other,  # type: ignore[arg-type]  # decide_side picks a side with a transport
                        timeout_s=plan.timeout[side], decided=decided)

    async def _pending_sides(self, account: str, service: str, side: Side) -> frozenset[Side]:
        """The sides this account's writes (of this service) are still on their way to. The
        other side is asked only when the chosen one has some: draining needs both answers."""
        assert self._pending_toward is not None
        if not await self._pending_toward(account, service, side):
            return frozenset()
        if await self._pending_toward(account, service, OTHER[side]):
            return frozenset((side, OTHER[side]))
        return frozenset((side,))

    async def _forward(self, ex: Exchange, plan: RoutePlan, addons: tuple[Addon, ...]) -> None:
        """Send to the decided side; a failed safe request may fail over (``decide_side``)."""
        buffer = False
        for a in addons:  # a loop, not any(genexpr): one generator less per request
            if a.needs_body(ex):
                buffer = True
                break
        svc = plan.svc
        try:
            if ex.side == "new" and svc is not None and isinstance(ex.primary, UpstreamPool):
                resp = await self._send_new(ex, plan)
            elif (ex.side == "legacy" and plan.failover_to_new and ex.other is not None
                  and ex.primary is self.transports.legacy and self._may_fail_over_to_new(ex)):
                resp = await self._send_legacy(ex, plan)
            else:
                resp = await ex.primary.send(ex.request, ex.timeout_s)
            if buffer:
                await resp.read()
        except UpstreamError as e:
            ex.error = e
            metrics.UPSTREAM_ERRORS.labels(ex.service or "-", ex.side, e.kind).inc()
            status = 504 if e.kind == "timeout" else 502
            resp = HttpResponse(status, [("content-type", "application/json")], _error_body(e.message, ex.side))
        ex.response = resp

    async def _respond(self, send, ex: Exchange, flow: Flow, plan: RoutePlan, edge: EdgePolicy) -> int:
        resp = ex.response  # an add-on may have replaced it (e.g. a write it could not record)
        assert resp is not None
        # The side may echo the correlation id; the client gets exactly one (ours, the same value).
        out_headers = [h for h in downstream_response_headers(resp.headers) if h[0] != "x-correlation-id"]
        if plan.side_header:
            out_headers.append((plan.side_header, ex.side))
        out_headers.append(("x-correlation-id", flow.cid))
        out_headers.extend(ex.extra_headers)
        out_headers.extend(plan.response_headers)
        if edge.cors is not None:
            out_headers.extend(edge.cors_headers(flow.hmap))
        return await _send_response(send, resp, out_headers, ex.side, log)

    def _record(self, ex: Exchange, flow: Flow, plan: RoutePlan, status: int, t0: float) -> None:
        elapsed = time.perf_counter() - t0
        self.metrics.observe(plan.service or "-", flow.method, plan.endpoint, status, ex.side, ex.decision, elapsed)
        if self.access_log_enabled:
            self.access.request(flow.cid, flow.tp[3:35], flow.method, plan.endpoint_json, plan.service_json,
                                ex.side, ex.decision, status, round(elapsed * 1000, 2))

    def _failed_over(self, ex: Exchange, failed: Side, reason: str, *, pending_new: bool = False) -> bool:
        """Ask ``decide_side`` whether the side that failed this safe request is replaced; if so,
        the exchange becomes one of the other side: counted, marked for the client and the gates,
        and no shadow copy goes to the failing side."""
        if ex.decided is None:
            return False
        d = ex.decided
        decision = decide_side(replace(d, failed=failed, pending=d.pending | {"new"} if pending_new else d.pending))
        if decision.reason != "failover":
            return False
        metrics.FAILOVERS.labels(ex.service or "-", reason).inc()
        ex.primary = self.transports.legacy if decision.side == "legacy" else ex.other  # type: ignore[assignment]  # can_serve() checked it
        ex.side, ex.decision, ex.other = decision.side, decision.reason, None
        ex.extra_headers.append(("x-migrate-failover", reason))
        ex.notes["failed_over"] = reason  # the failing side still failed it: the gates must see that
        if failed == "legacy":
            ex.notes["failed_side"] = "legacy"
        return True

    async def _send_new(self, ex: Exchange, plan: RoutePlan) -> HttpResponse:
        """New side through its pool (retries, breakers). A failed safe request (a read, or a
        ``shadow: true`` route) is served by legacy instead when failover is on."""
        legacy = self.transports.legacy
        safe = ex.request.method in SAFE_METHODS or (plan.route is not None and plan.route.shadow is True)
        failover = legacy is not None and safe and plan.failover
        resp, reason = await send_with_failover(ex.primary, legacy, ex.request, ex.timeout_s,
                                                plan.timeout["legacy"], retry_writes=plan.retry_writes,
                                                failover=failover)
        if reason is not None:
            self._failed_over(ex, "new", reason)
        return resp

    def _may_fail_over_to_new(self, ex: Exchange) -> bool:
        """failover_to_new could apply to this request: safe, bucketed, the service prepared."""
        route = ex.route
        if not (ex.request.method in SAFE_METHODS or (route is not None and route.shadow is True)):
            return False
        return ex.account is not None and ex.service is not None and self.new_failover.allows(ex.service)

    async def _send_legacy(self, ex: Exchange, plan: RoutePlan) -> HttpResponse:
        """Legacy first; when it fails this safe request (Lambda error or timeout, 5xx) the new
        side serves it (``failover_to_new``) unless writes of the account are still on their way
        to new (``decide_side`` refuses it then): counted, marked, and counted against legacy's window."""
        resp: HttpResponse | None = None
        error: UpstreamError | None = None
        try:
            resp = await ex.primary.send(ex.request, ex.timeout_s)
        except UpstreamError as e:
            error = e
        reason = failure_reason(resp, error)
        if reason is not None:
            pending_new = (self._pending_toward is not None and ex.account is not None and ex.service is not None
                           and await self._pending_toward(ex.account, ex.service, "new"))
            if not self._failed_over(ex, "legacy", "legacy_" + reason, pending_new=pending_new):
                reason = None  # e.g. the new store lacks some of this account's writes: legacy's answer stands
        if reason is None:
            if error is not None:
                raise error
            assert resp is not None
            return resp
        if resp is not None:
            await resp.read()  # free the legacy connection
        return await ex.primary.send(ex.request, plan.timeout["new"])

    def _override(self, hmap: dict[str, str]) -> Side | None:
        target = hmap.get("x-migrate-target")
        if not target or not self.operator_token:
            return None
        if target not in ("legacy", "new"):
            return None
        if not hmac.compare_digest(hmap.get("x-migrate-token", ""), self.operator_token):
            return None
        return "legacy" if target == "legacy" else "new"


UPGRADE_REFUSED = json.dumps({"error": "protocol upgrades (WebSocket) are not proxied; send plain HTTP requests"}).encode()


async def refuse_websocket(scope: dict, receive, send) -> None:
    """No route enables upgrades, so a WebSocket handshake gets 403 and a reason (Envoy answers
    403 ``upgrade_failed`` on routes without ``upgrade_configs``); never a half-open socket."""
    msg = await receive()
    if msg.get("type") != "websocket.connect":
        return
    metrics.REJECTED.labels("upgrade").inc()
    if "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(UPGRADE_REFUSED)).encode())]})
        await send({"type": "websocket.http.response.body", "body": UPGRADE_REFUSED})
    else:  # the server answers a close before accept with a bare 403
        await send({"type": "websocket.close", "code": 1008})


def _raw_query(qs: bytes) -> str:
    """The query string as received; bytes outside ASCII are percent-encoded, never re-decoded."""
    try:
        return qs.decode("ascii")
    except UnicodeDecodeError:
        return quote(qs, safe=RAW_SAFE)


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
    stream: AsyncIterator[bytes] = resp.stream.__aiter__()
    it: AsyncIterator[bytes] | None = stream
    try:
        first = await stream.__anext__()
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
    settings = ProxySettings.from_env()  # the one read of the environment
    app = ProxyApp(settings.routes, settings.state, access_log_enabled=settings.access_log, settings=settings)
    app.addons.extend(default_addons(app))
    return app


def default_addons(app: ProxyApp) -> list[Addon]:
    """Always installed: dual write (one check per request while no service dual writes), shadow
    comparison (one check per request while nothing is shadowed) and request windows for the
    rollout gates (one dict update per request)."""
    from .shadowing import ShadowAddon

    def config() -> RoutesFile:
        return app.routes.table.config

    from ..rollout.plan import Plan
    from ..rollout.windows import open_window_store
    from .windowing import WindowAddon

    settings = app.settings
    metrics_url = settings.metrics_store or Plan.from_routes(config()).metrics_store
    shadow = ShadowAddon(config, store_url=settings.shadow_store)
    addons: list[Addon] = [shadow, WindowAddon(open_window_store(metrics_url))]
    # Dual write is always installed: with no `dual_write:` section the outbox is the embedded
    # SQLite file in the state directory (a safety net that must be switched on is no net).
    from ..dual_write.config import outbox_url
    from ..dual_write.outbox import open_outbox
    from .dualwrite import DualWriteAddon

    def side_transport(service: str, side: str) -> Transport | None:
        return app.transports.legacy if side == "legacy" else app.transports.services.get(service)

    outbox = open_outbox(outbox_url(config().dual_write, state_url=settings.state))
    # Dual write goes first: its outbox append must happen before anything else sees the answer.
    addons.insert(0, DualWriteAddon(config, side_transport, outbox=outbox, shadow_engine=shadow.engine,
                                    shadow_rules=lambda route_id: shadow._config().rules_for(route_id)))
    if settings.capture:
        from .capturing import CaptureAddon

        addons.append(CaptureAddon(settings.capture, settings.capture_sample))
    from .tracing import TracingAddon

    addons.append(TracingAddon())  # last: trace id on log lines, in-flight gauges, spans when OTEL_* is set
    return addons
