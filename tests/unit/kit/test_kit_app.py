import asyncio
import io
import json
import logging

from fastapi import APIRouter, HTTPException
from fastapi.testclient import TestClient
from pydantic import BaseModel

from chariot_migrate.services.kit.app import create_service_app, run_ready_checks, validation_message
from chariot_migrate.services.kit.logs import JsonFormatter
from chariot_migrate.services.kit.settings import ServiceSettings


class Item(BaseModel):
    name: str
    count: int


def make_app(ready_checks=None, started=None):
    router = APIRouter()

    @router.post("/asset/{key}")
    async def post(key: str, item: Item):
        return {"key": key, **item.model_dump()}

    @router.get("/missing")
    async def missing():
        raise HTTPException(404, "nothing here")

    @router.get("/boom")
    def boom():
        raise RuntimeError("database password=hunter2 exploded")

    hooks = []

    async def on_start(app):
        hooks.append("start")

    def on_stop(app):
        hooks.append("stop")

    app = create_service_app(
        "unit",
        settings=ServiceSettings(),
        routers=[router],
        ready_checks=ready_checks or {},
        on_startup=[on_start],
        on_shutdown=[on_stop],
        configure_logging=False,
    )
    return app, hooks


def capture_logs():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("unit"))
    logger = logging.getLogger("chariot.unit")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return stream, lambda: logger.removeHandler(handler)


def test_health_openapi_and_lifespan_hooks():
    app, hooks = make_app()
    with TestClient(app) as c:
        assert c.get("/health").json() == {"status": "ok", "service": "unit"}
        assert "/asset/{key}" in c.get("/openapi.json").json()["paths"]
        assert hooks == ["start"]
    assert hooks == ["start", "stop"]


def test_validation_errors_are_400_with_a_legacy_style_message():
    app, _ = make_app()
    c = TestClient(app)
    r = c.post("/asset/k", json={"name": "x"})
    assert r.status_code == 400 and r.json() == {"message": "count: Field required"}
    r = c.post("/asset/k", json={"name": "x", "count": "many"})
    assert r.status_code == 400 and r.json()["message"].startswith("count: ")
    r = c.post("/asset/k", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json() == {"message": "body: invalid JSON"}
    assert c.get("/missing").json() == {"message": "nothing here"}


def test_validation_message_is_pure_and_joins_fields():
    errs = [{"loc": ("body", "node", "labels"), "msg": "bad"}, {"loc": ("query", "limit"), "msg": "too big"}]
    assert validation_message(errs) == "node.labels: bad; limit: too big"


def test_unhandled_error_is_500_without_traceback_and_logged_server_side():
    stream, done = capture_logs()
    app, _ = make_app()
    try:
        r = TestClient(app, raise_server_exceptions=False).get(
            "/boom", headers={"X-Correlation-ID": "corr-1"}
        )
    finally:
        done()
    assert r.status_code == 500 and r.json() == {"message": "Internal server error"}
    assert "hunter2" not in r.text and "Traceback" not in r.text
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    error = next(e for e in events if e["message"] == "unhandled error")
    assert "RuntimeError" in error["exception"] and error["correlation_id"] == "corr-1"
    access = next(e for e in events if e["message"] == "request")
    assert access["status"] == 500 and access["route"] == "/boom"


def test_correlation_and_traceparent_are_taken_or_created_and_echoed():
    stream, done = capture_logs()
    app, _ = make_app()
    c = TestClient(app)
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    try:
        r = c.get("/health", headers={"X-Correlation-ID": "abc-1", "traceparent": incoming})
        r2 = c.get("/health")
    finally:
        done()
    assert r.headers["x-correlation-id"] == "abc-1"
    tp = r.headers["traceparent"].split("-")
    assert tp[1] == "0af7651916cd43dd8448eb211c80319c" and tp[2] != "b7ad6b7169203331"
    assert len(r2.headers["x-correlation-id"]) == 36 and len(r2.headers["traceparent"]) == 55
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    ev = events[0]
    assert ev["correlation_id"] == "abc-1" and ev["trace_id"] == tp[1]
    for field in ("timestamp", "level", "service", "method", "route", "status", "duration_ms"):
        assert field in ev


def test_access_log_never_contains_authorization():
    stream, done = capture_logs()
    app, _ = make_app()
    try:
        TestClient(app).post(
            "/asset/k", json={"name": "a", "count": 1}, headers={"Authorization": "Bearer s3cr3t"}
        )
    finally:
        done()
    assert "s3cr3t" not in stream.getvalue()


def test_metrics_use_route_templates_and_buckets():
    app, _ = make_app()
    c = TestClient(app)
    c.post("/asset/one", json={"name": "a", "count": 1})
    c.post("/asset/two", json={"name": "a", "count": 1})
    c.get("/no/such/path")
    text = c.get("/metrics").text
    line = 'http_request_duration_seconds_count{endpoint="/asset/{key}",method="POST",service="unit",status_code="200"} 2.0'
    assert line in text
    assert "/asset/one" not in text
    assert 'endpoint="<unmatched>"' in text
    assert 'le="0.001"' in text and 'le="0.0025"' in text and 'le="0.005"' in text and 'le="10.0"' in text
    assert 'active_connections_total{connection_type="http",service="unit"}' in text


def test_ready_reports_which_dependency_failed():
    async def redis_ok():
        return None

    async def slow():
        await asyncio.sleep(5)  # why: a check that hangs past its timeout

    def table_missing():
        raise RuntimeError("table demo-assets not found")

    app, _ = make_app({"redis": redis_ok, "dynamodb": table_missing})
    c = TestClient(app)
    r = c.get("/ready")
    assert r.status_code == 503
    assert r.json()["failed"] == {"dynamodb": "RuntimeError: table demo-assets not found"}
    assert r.json()["checks"]["redis"] == "ok"
    app.state.ready_checks.pop("dynamodb")
    assert c.get("/ready").status_code == 200
    results = asyncio.run(run_ready_checks({"slow": slow, "false": lambda: False}, timeout=0.05))
    assert results == {"slow": "timed out after 0.05s", "false": "check returned false"}
