"""Service-side tracing: the kit's request span continues the caller's trace, DynamoDB calls and
events are child spans, service-to-service calls propagate the client span, logs carry the id."""

from __future__ import annotations

import io
import json
import logging

import boto3
import httpx
import pytest
from fastapi import APIRouter, Request
from moto import mock_aws
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chariot_migrate.observability import aws, tracing
from chariot_migrate.services.kit.app import create_service_app
from chariot_migrate.services.kit.client import ServiceClient
from chariot_migrate.services.kit.events import Event, InProcessBus
from chariot_migrate.services.kit.logs import JsonFormatter
from chariot_migrate.services.kit.repository import Repository, TableSpec, ensure_tables

TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.setup_tracing("kit-test", exporter=exporter)
    yield exporter
    tracing.shutdown_tracing()


@pytest.fixture
def logs():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("obs-svc"))
    lg = logging.getLogger("chariot.obs-svc")
    lg.addHandler(handler)
    lg.setLevel(logging.INFO)
    yield stream
    lg.removeHandler(handler)


def app_with(router: APIRouter):
    return create_service_app("obs-svc", routers=[router], configure_logging=False)


async def test_request_span_continues_the_callers_trace_and_logs_agree(spans, logs):
    router = APIRouter()

    @router.get("/things/{thing}")
    async def thing(thing: str, request: Request) -> dict:
        return {"current": tracing.current_traceparent()}

    app = app_with(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as c:
        r = await c.get("/things/1", headers={"traceparent": TP, "authorization": "Bearer eyJx.eyJy.sig"})
    (server,) = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    assert server.name == "GET /things/{thing}"
    assert f"{server.context.trace_id:032x}" == TRACE and f"{server.parent.span_id:016x}" == "b7ad6b7169203331"
    # The echoed header, the current span inside the route and the span itself are one hop.
    hop = f"00-{TRACE}-{server.context.span_id:016x}-01"
    assert r.headers["traceparent"] == hop and r.json()["current"] == hop
    assert server.attributes["http.response.status_code"] == 200
    line = next(json.loads(x) for x in logs.getvalue().splitlines() if '"request"' in x)
    assert line["trace_id"] == TRACE and line["status"] == 200 and line["service"] == "obs-svc"
    assert "eyJ" not in logs.getvalue()


async def test_without_tracing_no_span_but_the_trace_id_is_still_propagated(logs):
    router = APIRouter()

    @router.get("/x")
    async def x() -> dict:
        return {"current": tracing.current_traceparent()}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_with(router)), base_url="http://svc") as c:
        r = await c.get("/x", headers={"traceparent": TP})
    assert r.json() == {"current": None} and r.headers["traceparent"].split("-")[1] == TRACE
    assert json.loads(logs.getvalue().splitlines()[-1])["trace_id"] == TRACE


async def test_service_client_sends_its_client_span_as_parent(spans):
    seen: list[str] = []

    def peer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["traceparent"])
        return httpx.Response(200, json={})

    client = ServiceClient("http://peer", peer="risk", transport=httpx.MockTransport(peer))
    with tracing.span("outer") as outer:
        await client.get("/risk")
    await client.aclose()
    (c,) = [s for s in spans.get_finished_spans() if s.kind.name == "CLIENT"]
    assert c.parent.span_id == outer.get_span_context().span_id
    assert seen == [f"00-{c.context.trace_id:032x}-{c.context.span_id:016x}-01"]


def test_dynamodb_calls_are_child_spans_when_tracing_is_on(spans, monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    spec = TableSpec("obs-things")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        ensure_tables(client, [spec])
        repo = Repository(client, spec)
        assert aws.instrument_client(client) is client  # idempotent
        with tracing.span("handler") as parent:
            repo.put({"username": "a@x.com", "key": "#thing#1", "v": 1})
            assert repo.get("a@x.com", "#thing#1")["v"] == 1
            assert repo.get("a@x.com", "#missing") is None
    ddb = [s for s in spans.get_finished_spans() if s.name.startswith("dynamodb.")]
    assert [s.name for s in ddb] == ["dynamodb.PutItem", "dynamodb.GetItem", "dynamodb.GetItem"]
    assert all(s.parent.span_id == parent.get_span_context().span_id for s in ddb)
    assert ddb[0].attributes["aws.dynamodb.table_names"] == ("obs-things",)
    assert ddb[0].kind.name == "CLIENT"


def test_clients_are_not_instrumented_while_tracing_is_off():
    client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    aws.instrument_client(client)
    assert not getattr(client, "_chariot_traced", False)


async def test_events_carry_the_trace_from_publisher_to_consumer(spans):
    bus = InProcessBus()
    handled: list[str | None] = []

    async def handler(event: Event) -> None:
        handled.append(tracing.current_traceparent())

    bus.subscribe("g", ["config.changed"], handler)
    await bus.start()
    with tracing.span("request") as req:
        await bus.publish(Event.new("config.changed", "a@x.com", {"key": "k", "name": "n", "scope": "setting"},
                                    correlation_id="c1"))
    await bus.drain()
    await bus.stop()
    by_kind = {s.kind.name: s for s in spans.get_finished_spans()}
    producer, consumer = by_kind["PRODUCER"], by_kind["CONSUMER"]
    assert producer.parent.span_id == req.get_span_context().span_id
    assert consumer.parent.span_id == producer.context.span_id
    assert consumer.context.trace_id == req.get_span_context().trace_id
    assert handled == [f"00-{consumer.context.trace_id:032x}-{consumer.context.span_id:016x}-01"]
