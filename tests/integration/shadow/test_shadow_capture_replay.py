"""Capture pairs from a live 'legacy' server, replay them against a live 'new' server, diff."""

import asyncio
import json
import threading

import httpx
import pytest
from aiohttp import web

from chariot_migrate.shadow.capture import CaptureWriter, read_capture, replay, replay_async
from chariot_migrate.shadow.normalise import NormaliseRules
from chariot_migrate.transport import HttpRequest, HttpResponse

pytestmark = pytest.mark.integration
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2JAZXhhbXBsZS5jb20ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"


def app_for(side: str, seen: list) -> web.Application:
    async def item(request: web.Request) -> web.Response:
        seen.append({k.lower(): v for k, v in request.headers.items()})
        n = int(request.query.get("id", "0"))
        return web.json_response({
            "id": n, "name": "x" if side == "legacy" or n % 2 else "y", "tags": [1, 2] if side == "legacy" else [2, 1],
            "secret": f"{side}-S3CR3T",
        })

    app = web.Application()
    app.add_routes([web.get("/item", item)])
    return app


async def start(app):
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"


async def capture_from(url, path, n=10, sample=1.0):
    with CaptureWriter(path, sample=sample, seed=1) as w:
        async with httpx.AsyncClient(base_url=url) as c:
            for i in range(n):
                hs = [("authorization", f"Bearer {JWT}"), ("accept", "application/json")]
                r = await c.get("/item", params={"id": i, "api_key": "Q-S3CR3T"}, headers=dict(hs))
                w.write(service="catalog", route="GET /item", side="legacy",
                        request=HttpRequest("GET", "/item", str(r.request.url.query, "ascii"), hs),
                        response=HttpResponse(r.status_code, list(r.headers.items()), r.content), latency_s=0.005)
        return w.written


async def test_capture_is_redacted_and_replay_reports_differences(tmp_path):
    seen_legacy, seen_new = [], []
    legacy_runner, legacy_url = await start(app_for("legacy", seen_legacy))
    new_runner, new_url = await start(app_for("new", seen_new))
    try:
        cap = tmp_path / "capture.jsonl"
        assert await capture_from(legacy_url, cap) == 10
        text = cap.read_text()
        for secret in (JWT, "Q-S3CR3T", "legacy-S3CR3T"):
            assert secret not in text
        recs = list(read_capture(cap))
        assert len(recs) == 10 and recs[0].side == "legacy" and recs[0].route == "GET /item"

        report = await replay_async(cap, new_url, headers={"authorization": "Bearer fresh"},
                                    rules=lambda route: NormaliseRules(unordered=["$.tags"]))
        r = report.route("catalog", "GET /item")
        assert r.pairs == 10 and r.exact_matches == 5  # odd ids match; even ids differ in "name"
        assert {(s.path, s.kind) for s in r.signatures} == {("$.name", "value")}
        assert seen_new[0]["authorization"] == "Bearer fresh" and seen_new[0]["x-migrate-shadow"] == "1"
        # Without the route's rule, the reordered tags are a real difference too.
        plain = await replay_async(cap, new_url)
        assert {s.path for s in plain.route("catalog", "GET /item").signatures} == {"$.name", "$.tags"}
    finally:
        await legacy_runner.cleanup()
        await new_runner.cleanup()


async def test_sampling_and_bad_capture_lines(tmp_path):
    seen = []
    runner, url = await start(app_for("legacy", seen))
    try:
        assert 0 < await capture_from(url, tmp_path / "c.jsonl", n=100, sample=0.2) < 40
    finally:
        await runner.cleanup()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"nope": 1}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        list(read_capture(bad))


def test_sync_replay_against_a_server_in_another_thread(tmp_path):
    ready = threading.Event()
    box = {}

    def serve():
        loop = asyncio.new_event_loop()
        runner, url = loop.run_until_complete(start(app_for("new", [])))
        box.update(url=url, loop=loop, runner=runner)
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert ready.wait(5)
    try:
        cap = tmp_path / "c.jsonl"
        with CaptureWriter(cap) as w:
            w.write(service="catalog", route="GET /item", side="legacy",
                    request=HttpRequest("GET", "/item", "id=1"),
                    response=HttpResponse(200, [("content-type", "application/json; charset=utf-8")],
                                          json.dumps({"id": 1, "name": "x", "tags": [1, 2], "secret": "z"}).encode()))
        rep = replay(cap, box["url"], rules=NormaliseRules(unordered=["$.tags"], ignore=["$.secret"]))
        assert rep.route("catalog", "GET /item").exact_matches == 1
    finally:
        box["loop"].call_soon_threadsafe(box["loop"].stop)
        t.join(5)
