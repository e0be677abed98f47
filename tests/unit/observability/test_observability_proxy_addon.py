"""The proxy's tracing add-on in the real ProxyApp with in-memory sides: trace id on the access
log line, in-flight gauges, and spans (only when tracing is on) that the upstream's parent names."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import textwrap

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from chariot_migrate.jsonlog import JsonFormatter
from chariot_migrate.observability import tracing
from chariot_migrate.proxy.accesslog import AccessLog
from chariot_migrate.proxy.app import ProxyApp
from chariot_migrate.proxy.tracing import TracingAddon
from chariot_migrate.rollout.evidence import StaticDataEvidence
from chariot_migrate.rollout.operations import Operations
from chariot_migrate.rollout.store import open_state_store
from chariot_migrate.routes.loader import load_table
from chariot_migrate.transport import HttpRequest, HttpResponse, UpstreamError

ROUTES = textwrap.dedent("""\
    version: 1
    bucket_by: [header:account]
    legacy: {invoker: http, url: "http://127.0.0.1:9"}
    services:
      obsvc: {phase: 1, url: "http://127.0.0.1:9", dual_write: "on"}
    routes:
      - {path: /thing, methods: [GET, PUT], service: obsvc}
    """)
CLIENT_TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


ADDON: list[TracingAddon] = []


def gauge(service: str, ctype: str) -> float:
    # In-flight counts are kept in memory and published to the gauge by sample() (once a
    # second in a running proxy); sample now so the test sees the current value.
    for a in ADDON:
        a.sample()
    return REGISTRY.get_sample_value("active_connections_total", {"service": service, "connection_type": ctype}) or 0


class Side:
    def __init__(self, name: str, fail: str | None = None) -> None:
        self.name, self.fail, self.seen, self.inflight = name, fail, [], []

    async def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        self.seen.append(request)
        self.inflight.append((gauge("obsvc", "client"), gauge("obsvc", f"upstream_{self.name}"),
                              tracing.current_traceparent()))
        if self.fail:
            raise UpstreamError(self.fail, "down")
        return HttpResponse(200, [("content-type", "application/json")], b'{"ok": true}')

    async def aclose(self) -> None:
        pass


@pytest.fixture
async def proxy(tmp_path):
    p = tmp_path / "routes.yaml"
    p.write_text(ROUTES)
    store = open_state_store(f"sqlite:///{tmp_path}/s.db")
    app = ProxyApp(p, store, access_log_enabled=True)
    addon = TracingAddon(setup_tracing=False)
    ADDON[:] = [addon]
    app.addons.append(addon)
    await app.startup()
    log_file = open(tmp_path / "access.log", "w+")  # noqa: SIM115 — closed below
    app.access = AccessLog(fd=log_file.fileno())
    app.transports.legacy = legacy = Side("legacy")
    app.transports.services["obsvc"] = new = Side("new")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("proxy"))
    access = logging.getLogger("chariot_migrate.access")
    access.addHandler(handler)
    old_level = access.level
    access.setLevel(logging.INFO)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://proxy")
    yield app, client, legacy, new, (app, log_file, stream), Operations(store, load_table(p).config, data_evidence=StaticDataEvidence())
    log_file.close()
    access.removeHandler(handler)
    access.setLevel(old_level)
    await client.aclose()
    await app.shutdown()


def log_text(sink) -> str:
    """Everything logged: the batched access log (flushed now) and the proxy's other loggers."""
    app, log_file, stream = sink
    app.access.flush()
    log_file.seek(0)
    return log_file.read() + stream.getvalue()


def log_lines(sink) -> list[dict]:
    return [json.loads(line) for line in log_text(sink).splitlines() if line.strip()]


async def test_access_log_carries_the_forwarded_trace_id_and_no_secrets(proxy):
    app, client, legacy, _, stream, _ = proxy
    r = await client.get("/thing", headers={"traceparent": CLIENT_TP, "account": "a@x.com",
                                            "authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"})
    assert r.status_code == 200
    forwarded = legacy.seen[0].header("traceparent")
    assert forwarded.split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    (line,) = [x for x in log_lines(stream) if x["message"] == "request"]
    assert line["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert line["correlation_id"] and line["side"] == "legacy" and line["status"] == 200
    assert "eyJ" not in log_text(stream)


async def test_a_request_without_traceparent_logs_the_trace_id_the_proxy_started(proxy):
    _, client, legacy, _, stream, _ = proxy
    await client.get("/thing")
    tid = legacy.seen[0].header("traceparent").split("-")[1]
    assert [x["trace_id"] for x in log_lines(stream) if x["message"] == "request"] == [tid]


async def test_in_flight_gauges_count_client_and_upstream_requests_while_they_run(proxy):
    app, client, legacy, new, _, ops = proxy
    base_client, base_legacy = gauge("obsvc", "client"), gauge("obsvc", "upstream_legacy")
    await client.get("/thing")
    assert legacy.inflight[0][:2] == (base_client + 1, base_legacy + 1)
    assert (gauge("obsvc", "client"), gauge("obsvc", "upstream_legacy")) == (base_client, base_legacy)
    ops.shift("obsvc", 100)
    await app.state.poll()
    base_new = gauge("obsvc", "upstream_new")
    await client.get("/thing", headers={"account": "b@x.com"})
    assert new.inflight[0][1] == base_new + 1 and gauge("obsvc", "upstream_new") == base_new


async def test_gauges_are_closed_when_the_request_task_dies_midway(proxy):
    app, client, legacy, _, _, _ = proxy
    base = gauge("obsvc", "client")
    started = asyncio.Event()

    class Hang(Side):
        async def send(self, request, timeout):
            started.set()
            await asyncio.sleep(30)  # why: a side that hangs until cancelled

    app.transports.legacy = Hang("legacy")
    task = asyncio.create_task(client.get("/thing"))
    await started.wait()
    assert gauge("obsvc", "client") == base + 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)  # why: one loop step for the cancelled request's cleanup callbacks
    assert gauge("obsvc", "client") == base


async def test_no_spans_while_tracing_is_off(proxy):
    _, client, legacy, _, _, _ = proxy
    assert not tracing.tracing_enabled()
    await client.get("/thing", headers={"traceparent": CLIENT_TP})
    assert legacy.inflight[0][2] is None


async def test_span_adopts_the_forwarded_ids_and_records_the_upstream_answer(proxy):
    _, client, legacy, _, _, _ = proxy
    exporter = InMemorySpanExporter()
    tracing.setup_tracing("proxy-test", exporter=exporter)
    try:
        await client.get("/thing", headers={"traceparent": CLIENT_TP})
        legacy.fail = "timeout"
        r = await client.get("/thing", headers={"traceparent": CLIENT_TP})
        assert r.status_code == 504
    finally:
        tracing.shutdown_tracing()
    ok, failed = exporter.get_finished_spans()
    forwarded = legacy.seen[0].header("traceparent")
    # The upstream got a traceparent that names the proxy span: parent/child links up.
    assert f"00-{ok.context.trace_id:032x}-{ok.context.span_id:016x}-01" == forwarded
    assert legacy.inflight[0][2] == forwarded  # the span is current during the upstream call
    assert ok.name == "GET /thing" and ok.kind.name == "SERVER"
    assert ok.attributes["http.response.status_code"] == 200 and ok.attributes["migrate.side"] == "legacy"
    assert [e.name for e in ok.events] == ["upstream.response"]
    assert ok.events[0].attributes["upstream.status_code"] == 200
    assert failed.status.status_code.name == "ERROR"
    assert failed.events[0].attributes["upstream.error"] == "timeout"
