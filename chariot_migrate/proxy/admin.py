"""Admin API (FastAPI) on its own port, never the public one; every call needs the admin token."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from ..rollout.operations import OperationError, Operations, initial_state
from ..rollout.store import StateStore, StateStoreError, open_state_store
from ..routes.loader import RoutesError, load_table

# Every number an operator sends must be finite: NaN passes no comparison (so no range check
# would catch it) and neither NaN nor Infinity can be stored or rendered back as JSON.
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]


class ShiftBody(BaseModel):
    percent: Percent
    reason: str = ""
    force: bool = False


class ShadowBody(BaseModel):
    percent: Percent
    reason: str = ""


class PinBody(BaseModel):
    account: str = Field(..., min_length=1)
    to: Literal["legacy", "new"]
    reason: str = ""
    force: bool = False


class ReasonBody(BaseModel):
    reason: str = ""
    force: bool = False


class DualWriteBody(BaseModel):
    mode: Literal["on", "off"]
    percent: Percent = 100
    reason: str = ""
    force: bool = False


class ApproveBody(BaseModel):
    step: str | None = None  # default: the service's next plan step
    reason: str = ""


def resolve_admin_token(state_dir: str | Path | None = None) -> str:
    """CHARIOT_MIGRATE_ADMIN_TOKEN, else a random token written once to <state dir>/admin.token (0600)."""
    from ..statedir import state_dir as default_state_dir

    tok = os.environ.get("CHARIOT_MIGRATE_ADMIN_TOKEN")
    if tok:
        return tok
    p = Path(state_dir or default_state_dir()) / "admin.token"
    if p.exists():
        return p.read_text().strip()
    p.parent.mkdir(parents=True, exist_ok=True)
    tok = secrets.token_urlsafe(32)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(tok)
    return tok


def proxy_capabilities(cfg) -> dict:
    """Dual write is always installed (embedded SQLite outbox by default); replays run inside the
    workers unless ``dual_write.worker`` is false (then `chariot-migrate dual-write worker` must run)."""
    from ..dual_write.config import DualWriteConfig, outbox_url
    from ..redact import redact_url

    section = cfg.dual_write if cfg is not None else None
    dw = DualWriteConfig.from_section(section)
    return {"dual_write": {"installed": True, "outbox": redact_url(outbox_url(section)),
                           "replay": "in-proxy" if dw.worker else "external"},
            "failover": bool(cfg.defaults.failover) if cfg is not None else True}


def create_admin_app(routes_path: str | Path, store: StateStore | None = None, *, token: str | None = None) -> FastAPI:
    token = token or resolve_admin_token()
    store = store or open_state_store()
    # The schema and its viewers are served below, behind the token like everything else.
    app = FastAPI(title="chariot-migrate admin", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    routes_path = Path(routes_path)

    def ops() -> Operations:
        try:
            cfg = load_table(routes_path).config
        except RoutesError:
            cfg = None  # a broken routes.yaml must not lock operators out (e.g. of rollback)
        return Operations(store, cfg)

    def authorised(request: Request) -> None:
        auth = request.headers.get("authorization", "")
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "admin token required: Authorization: Bearer <CHARIOT_MIGRATE_ADMIN_TOKEN>")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the input, which cannot be rendered when it is NaN/Infinity (a
        # 500); the location and the reason are what the operator needs.
        detail = [{"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
                  for err in e.errors()]
        reason = "; ".join(f"{'.'.join(str(p) for p in d['loc'])}: {d['msg']}" for d in detail)
        return JSONResponse({"error": reason, "detail": detail}, status_code=422)

    @app.exception_handler(OperationError)
    async def _op_error(_: Request, e: OperationError) -> JSONResponse:
        return JSONResponse({"error": str(e)}, status_code=400)

    @app.exception_handler(StateStoreError)
    async def _store_error(_: Request, e: StateStoreError) -> JSONResponse:
        return JSONResponse({"error": str(e)}, status_code=503)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready")
    def ready() -> JSONResponse:
        """Readiness for orchestrators. This process probes the store and routes.yaml itself; the
        proxy workers keep serving from their last known state / last valid table either way, and
        the answer says so. A rejected routes.yaml edit is reported but keeps the proxy ready: every
        replica reads the same file, so failing readiness on it would take them all out of service
        at once (Envoy likewise keeps serving, and ready, on a rejected config)."""
        try:
            store_doc: dict = {"reachable": True, "version": store.version()}
        except (StateStoreError, OSError) as e:
            store_doc = {"reachable": False, "error": str(e),
                         "serving": "the proxy keeps routing with the last state it read"}
        try:
            table = load_table(routes_path)
            routes_doc: dict = {"valid": True, "routes": len(table.routes)}
        except RoutesError as e:
            routes_doc = {"valid": False, "error": str(e), "serving": "the proxy keeps the last valid route table"}
        ok = store_doc["reachable"]
        degraded = [part for part, bad in (("state_store", not ok), ("routes", not routes_doc["valid"])) if bad]
        return JSONResponse({"ready": ok, "degraded": degraded, "state_store": store_doc, "routes": routes_doc},
                            status_code=200 if ok else 503)

    guarded = [Depends(authorised)]

    @app.get("/state", dependencies=guarded)
    def state() -> dict:
        return {"version": store.version(), "services": [r.as_dict() for r in ops().status()]}

    def actor(request: Request) -> str:
        return request.headers.get("x-actor", "admin-api")[:100]

    def done(o: Operations, s) -> dict:
        return {**s.model_dump(), "notes": list(o.notes)}

    @app.post("/services/{service}/shift", dependencies=guarded)
    def shift(service: str, body: ShiftBody, request: Request) -> dict:
        o = ops()
        return done(o, o.shift(service, body.percent, actor=actor(request), reason=body.reason, force=body.force))

    @app.post("/services/{service}/shadow", dependencies=guarded)
    def shadow(service: str, body: ShadowBody, request: Request) -> dict:
        return ops().set_shadow(service, body.percent, actor=actor(request), reason=body.reason).model_dump()

    @app.post("/services/{service}/rollback", dependencies=guarded)
    def rollback(service: str, body: ReasonBody, request: Request) -> dict:
        o = ops()
        return done(o, o.rollback(service, actor=actor(request), reason=body.reason, force=body.force))

    @app.post("/services/{service}/pins", dependencies=guarded)
    def pin(service: str, body: PinBody, request: Request) -> dict:
        o = ops()
        return done(o, o.pin(service, body.account, body.to, actor=actor(request), reason=body.reason,
                             force=body.force))

    @app.delete("/services/{service}/pins/{account}", dependencies=guarded)
    def unpin(service: str, account: str, request: Request, reason: str = "", force: bool = False) -> dict:
        o = ops()
        return done(o, o.unpin(service, account, actor=actor(request), reason=reason, force=force))

    @app.post("/services/{service}/dual-write", dependencies=guarded)
    def dual_write(service: str, body: DualWriteBody, request: Request) -> dict:
        o = ops()
        return done(o, o.set_dual_write(service, body.mode, body.percent, actor=actor(request), reason=body.reason,
                                        force=body.force))

    @app.post("/services/{service}/approve", dependencies=guarded)
    def approve(service: str, body: ApproveBody, request: Request) -> dict:
        o = ops()
        step, s = o.approve_next(service, body.step, actor=actor(request), reason=body.reason)
        return {"approved": step, **(done(o, s) if s is not None else {})}

    def evaluate(service: str, body: ReasonBody, who: str, *, by_controller: bool) -> dict:
        """The plan's gates for ``service`` on this deployment's stores (state, request windows,
        diffs, outbox). ``by_controller``: the rollout loop's tick (holds and breaches recorded and
        acted on); else a person's ``advance`` (only a promotion is applied)."""
        from ..rollout.assembly import build_controller, tick_doc

        if body.force and not body.reason:
            raise OperationError("force needs a reason (it is kept in the audit history)")
        try:
            ctl, cfg, plan = build_controller(routes_path, os.environ.get("CHARIOT_MIGRATE_STATE"), store=store,
                                              actor=who)
        except ValueError as e:
            raise OperationError(str(e)) from None
        if service not in cfg.services:
            raise OperationError(f"unknown service {service!r}; routes.yaml knows: {', '.join(sorted(cfg.services))}")
        if by_controller:
            tick = ctl.tick(service, force_phase=body.force, force_reason=body.reason)
        else:
            tick = ctl.tick(service, force_phase=body.force, force_reason=body.reason, record=False, resume=True,
                            force_safety=body.force)
        return {**tick_doc(tick), "line": tick.line(), "interval_s": plan.interval_s}

    @app.post("/services/{service}/advance", dependencies=guarded)
    def advance(service: str, body: ReasonBody, request: Request) -> dict:
        """`chariot-migrate advance` evaluated here: one step forward if the gates pass; the
        verdict and every check."""
        return evaluate(service, body, actor(request), by_controller=False)

    @app.post("/services/{service}/tick", dependencies=guarded)
    def tick(service: str, body: ReasonBody, request: Request) -> dict:
        """One evaluation of `chariot-migrate rollout --admin-url`: promote, hold or roll back, as
        the controller does, on this deployment's stores."""
        return evaluate(service, body, request.headers.get("x-actor", "rollout-controller")[:100], by_controller=True)

    @app.get("/capabilities", dependencies=guarded)
    def capabilities() -> dict:
        """What the proxy workers started from this configuration do, so the CLI can refuse to
        record a state nothing would honour (e.g. dual write with no replay)."""
        return proxy_capabilities(ops().config)

    @app.get("/history", dependencies=guarded)
    def history(service: str | None = None, limit: int = 50) -> list[dict]:
        return [h.model_dump() for h in ops().history(service, limit)]

    @app.get("/openapi.json", dependencies=guarded, include_in_schema=False)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", dependencies=guarded, include_in_schema=False)
    def docs() -> Response:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=app.title)

    @app.get("/redoc", dependencies=guarded, include_in_schema=False)
    def redoc() -> Response:
        return get_redoc_html(openapi_url="/openapi.json", title=app.title)

    @app.get("/metrics", dependencies=guarded)
    def prom() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        else:
            from prometheus_client import REGISTRY as registry
        from .metrics import split_exposition

        o = ops()
        try:
            live = o.store.all()
        except Exception:  # noqa: BLE001 — an unreadable state store must not take the other metrics down
            live = None
        states = {} if live is None else {**{n: initial_state(n, svc) for n, svc in
                                             (o.config.services.items() if o.config else ())}, **live}
        return Response(generate_latest(registry) + split_exposition(states), media_type=CONTENT_TYPE_LATEST)

    return app


def create_admin_app_from_env() -> FastAPI:
    from ..jsonlog import configure_json_logging

    configure_json_logging("chariot-migrate-admin")
    return create_admin_app(os.environ.get("CHARIOT_MIGRATE_ROUTES", "routes.yaml"),
                            open_state_store(os.environ.get("CHARIOT_MIGRATE_STATE")))
