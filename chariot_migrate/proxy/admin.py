"""Admin API (FastAPI) on its own port, never the public one; every call needs the admin token."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from ..rollout.operations import OperationError, Operations
from ..rollout.store import StateStore, StateStoreError, open_state_store
from ..routes.loader import RoutesError, load_table


class ShiftBody(BaseModel):
    percent: float = Field(..., ge=0, le=100)
    reason: str = ""
    force: bool = False


class ShadowBody(BaseModel):
    percent: float = Field(..., ge=0, le=100)
    reason: str = ""


class PinBody(BaseModel):
    account: str = Field(..., min_length=1)
    to: Literal["legacy", "new"]
    reason: str = ""


class ReasonBody(BaseModel):
    reason: str = ""


def resolve_admin_token(state_dir: str | Path = ".chariot-migrate") -> str:
    """CHARIOT_MIGRATE_ADMIN_TOKEN, else a random token written once to <state_dir>/admin.token (0600)."""
    tok = os.environ.get("CHARIOT_MIGRATE_ADMIN_TOKEN")
    if tok:
        return tok
    p = Path(state_dir) / "admin.token"
    if p.exists():
        return p.read_text().strip()
    p.parent.mkdir(parents=True, exist_ok=True)
    tok = secrets.token_urlsafe(32)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(tok)
    return tok


def create_admin_app(routes_path: str | Path, store: StateStore | None = None, *, token: str | None = None) -> FastAPI:
    token = token or resolve_admin_token()
    store = store or open_state_store()
    app = FastAPI(title="chariot-migrate admin", version="1")
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
        the answer says so."""
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
        ok = store_doc["reachable"] and routes_doc["valid"]
        return JSONResponse({"ready": ok, "state_store": store_doc, "routes": routes_doc},
                            status_code=200 if ok else 503)

    guarded = [Depends(authorised)]

    @app.get("/state", dependencies=guarded)
    def state() -> dict:
        return {"version": store.version(), "services": [r.as_dict() for r in ops().status()]}

    def actor(request: Request) -> str:
        return request.headers.get("x-actor", "admin-api")[:100]

    @app.post("/services/{service}/shift", dependencies=guarded)
    def shift(service: str, body: ShiftBody, request: Request) -> dict:
        return ops().shift(service, body.percent, actor=actor(request), reason=body.reason, force=body.force).model_dump()

    @app.post("/services/{service}/shadow", dependencies=guarded)
    def shadow(service: str, body: ShadowBody, request: Request) -> dict:
        return ops().set_shadow(service, body.percent, actor=actor(request), reason=body.reason).model_dump()

    @app.post("/services/{service}/rollback", dependencies=guarded)
    def rollback(service: str, body: ReasonBody, request: Request) -> dict:
        return ops().rollback(service, actor=actor(request), reason=body.reason).model_dump()

    @app.post("/services/{service}/pins", dependencies=guarded)
    def pin(service: str, body: PinBody, request: Request) -> dict:
        return ops().pin(service, body.account, body.to, actor=actor(request), reason=body.reason).model_dump()

    @app.delete("/services/{service}/pins/{account}", dependencies=guarded)
    def unpin(service: str, account: str, request: Request) -> dict:
        return ops().unpin(service, account, actor=actor(request)).model_dump()

    @app.get("/history", dependencies=guarded)
    def history(service: str | None = None, limit: int = 50) -> list[dict]:
        return [h.model_dump() for h in ops().history(service, limit)]

    @app.get("/metrics", dependencies=guarded)
    def prom() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        else:
            from prometheus_client import REGISTRY as registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def create_admin_app_from_env() -> FastAPI:
    from ..jsonlog import configure_json_logging

    configure_json_logging("chariot-migrate-admin")
    return create_admin_app(os.environ.get("CHARIOT_MIGRATE_ROUTES", "routes.yaml"),
                            open_state_store(os.environ.get("CHARIOT_MIGRATE_STATE")))
