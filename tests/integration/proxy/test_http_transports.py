"""The HTTP transport contract, for every client behind ``Transport`` (aiohttp and pyreqwest).

A real aiohttp server on 127.0.0.1 plays the upstream; each test sends through the transport as
the proxy does and checks what a proxy must guarantee: bytes forwarded unchanged (no redirects
followed, nothing decompressed, repeated headers kept, bodies on DELETE), large and chunked
bodies streamed, timeouts on a slow head and on a stalled body, connection errors as
``UpstreamError`` kinds, and the pool limit honoured.
"""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest
from aiohttp import web

from chariot_migrate.proxy.upstream import HTTP_CLIENTS, SMALL_BODY, http_transport
from chariot_migrate.transport import HttpRequest, UpstreamError

pytestmark = pytest.mark.integration

BIG = 5 * 1024 * 1024


class Upstream:
    """Counts concurrent requests so the pool limit can be observed from the server side."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({"method": request.method, "raw_path": request.raw_path,
                                  "body": body.decode(), "headers": [[k.lower(), v] for k, v in request.headers.items()]})

    async def big(self, request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.query["n"]), content_type="application/octet-stream")

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(5):
            await resp.write(f"part{i};".encode())
        await resp.write_eof()
        return resp

    async def slow(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(float(request.query["s"]))  # why: the fake slow upstream itself
        finally:
            self.in_flight -= 1
        return web.Response(text="late")

    async def stall(self, request: web.Request) -> web.StreamResponse:
        # Headers and a first chunk, then nothing: the body read must time out, not hang.
        resp = web.StreamResponse()
        resp.content_length = SMALL_BODY * 4
        await resp.prepare(request)
        await resp.write(b"y" * 1024)
        await asyncio.sleep(3)  # why: the stall under test (past the proxy's body timeout)
        return resp

    async def redirect(self, request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/echo"})

    async def gzipped(self, request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(b"hello"), headers={"Content-Encoding": "gzip"})

    async def cookies(self, request: web.Request) -> web.Response:
        resp = web.Response(text="ok")
        resp.headers.add("Set-Cookie", "a=1")
        resp.headers.add("Set-Cookie", "b=2")
        return resp

    async def reset(self, request: web.Request) -> web.Response:
        request.transport.close()  # the connection dies before any answer
        await asyncio.sleep(1)  # why: the handler must not answer on the closed connection
        return web.Response(text="never")


@pytest.fixture
async def upstream():
    u = Upstream()
    app = web.Application()
    for path, handler in [("/echo", u.echo), ("/big", u.big), ("/chunked", u.chunked), ("/slow", u.slow),
                          ("/stall", u.stall), ("/redirect", u.redirect), ("/gzip", u.gzipped),
                          ("/cookies", u.cookies), ("/reset", u.reset), ("/echo/{rest:.*}", u.echo)]:
        app.router.add_route("*", path, handler)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield u, f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture(params=HTTP_CLIENTS)
async def transport_for(request):
    made = []

    def make(url: str, **kw):
        t = http_transport(url, client=request.param, **kw)
        made.append(t)
        return t

    yield make
    for t in made:
        await t.aclose()


async def test_forwards_method_path_query_headers_and_delete_body(upstream, transport_for):
    _, url = upstream
    t = transport_for(url)
    r = await t.send(HttpRequest("DELETE", "/echo", query="key=%23asset%23a&x=1",
                                 headers=[("authorization", "Bearer t"), ("x-a", "1"), ("x-a", "2"),
                                          ("content-type", "application/json")],
                                 body=b'{"key": "#asset#a"}'), timeout=5)
    assert r.status == 200 and r.stream is None
    seen = json.loads(r.body)
    assert seen["method"] == "DELETE" and seen["raw_path"] == "/echo?key=%23asset%23a&x=1"
    assert seen["body"] == '{"key": "#asset#a"}'
    names = [k for k, _ in seen["headers"]]
    assert ("authorization", "Bearer t") in map(tuple, seen["headers"])
    assert names.count("x-a") == 2 or ("x-a", "1, 2") in map(tuple, seen["headers"])
    # The client adds nothing that changes what the upstream answers (no Accept-Encoding of its own).
    assert "accept-encoding" not in names and "cookie" not in names


async def test_small_body_is_read_whole_large_and_chunked_bodies_stream(upstream, transport_for):
    _, url = upstream
    t = transport_for(url)
    small = await t.send(HttpRequest("GET", "/big", query=f"n={SMALL_BODY}"), timeout=5)
    assert small.stream is None and len(small.body) == SMALL_BODY
    large = await t.send(HttpRequest("GET", "/big", query=f"n={BIG}"), timeout=5)
    assert large.stream is not None and large.header("content-length") == str(BIG)
    chunks = [c async for c in large.stream]
    assert sum(map(len, chunks)) == BIG and len(chunks) > 1
    chunked = await t.send(HttpRequest("GET", "/chunked"), timeout=5)
    assert chunked.stream is not None
    assert await chunked.read() == b"".join(f"part{i};".encode() for i in range(5))


async def test_redirects_compression_and_repeated_headers_pass_through_unchanged(upstream, transport_for):
    _, url = upstream
    t = transport_for(url)
    r = await t.send(HttpRequest("GET", "/redirect"), timeout=5)
    assert r.status == 302 and r.header("location") == "/echo"
    g = await t.send(HttpRequest("GET", "/gzip"), timeout=5)
    assert g.header("content-encoding") == "gzip" and gzip.decompress(await g.read()) == b"hello"
    c = await t.send(HttpRequest("GET", "/cookies"), timeout=5)
    assert [v for k, v in c.headers if k == "set-cookie"] == ["a=1", "b=2"]


async def test_slow_head_times_out_and_the_connection_is_usable_after(upstream, transport_for):
    _, url = upstream
    t = transport_for(url)
    with pytest.raises(UpstreamError) as e:
        await t.send(HttpRequest("GET", "/slow", query="s=2"), timeout=0.3)
    assert e.value.kind == "timeout"
    ok = await t.send(HttpRequest("GET", "/slow", query="s=0"), timeout=5)
    assert ok.status == 200 and await ok.read() == b"late"


async def test_stalled_body_times_out_per_chunk(upstream, transport_for):
    _, url = upstream
    t = transport_for(url)
    r = await t.send(HttpRequest("GET", "/stall"), timeout=0.5)
    assert r.stream is not None
    with pytest.raises(UpstreamError) as e:
        await r.read()
    assert e.value.kind == "timeout"


async def test_refused_and_reset_connections_are_upstream_errors(upstream, transport_for):
    _, url = upstream
    with pytest.raises(UpstreamError) as refused:
        await transport_for("http://127.0.0.1:1").send(HttpRequest("GET", "/"), timeout=2)
    assert refused.value.kind == "connect" and "127.0.0.1:1" in refused.value.message
    with pytest.raises(UpstreamError) as reset:
        await transport_for(url).send(HttpRequest("GET", "/reset"), timeout=2)
    assert reset.value.kind in {"connect", "protocol"}


async def test_pool_limit_caps_concurrent_upstream_requests(upstream, transport_for):
    u, url = upstream
    t = transport_for(url, pool_limit=2)
    results = await asyncio.gather(*[t.send(HttpRequest("GET", "/slow", query="s=0.2"), timeout=5) for _ in range(6)])
    assert all(r.status == 200 for r in results)
    assert u.max_in_flight == 2


async def test_round_robin_over_instances(upstream, transport_for):
    _, url = upstream
    t = transport_for([url, url + "/"])
    assert t.base_urls == [url, url]
    for _ in range(3):
        assert (await t.send(HttpRequest("GET", "/cookies"), timeout=5)).status == 200


def test_unknown_client_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown HTTP client 'curl'"):
        http_transport("http://127.0.0.1:1", client="curl")  # type: ignore[arg-type]


@pytest.mark.parametrize(("raw_path", "path"), [
    ("/echo/x%3F@y", "/echo/x?@y"), ("/echo/pin%23zz", "/echo/pin#zz"), ("/echo/a%7Eb%7e", "/echo/a~b~"),
    ("/echo/%E2%82%AC%20%25", "/echo/€ %"),
])
async def test_the_raw_path_goes_out_byte_for_byte_and_a_decoded_one_is_encoded(upstream, transport_for, raw_path,
                                                                                 path):
    """Issue 15 item 7: '?', '#', '%' inside a segment stay data; nothing is re-quoted or decoded."""
    _, url = upstream
    t = transport_for(url)
    r = await t.send(HttpRequest("GET", path, query="a=%23b", raw_path=raw_path), timeout=5)
    assert json.loads(r.body)["raw_path"] == raw_path + "?a=%23b"
    r = await t.send(HttpRequest("GET", path), timeout=5)  # e.g. a dual-write replay: no raw form kept
    assert json.loads(r.body)["raw_path"].lower() == raw_path.lower().replace("%7e", "~")
