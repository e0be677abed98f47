"""Baseline for the proxy benchmark: the least a raw-ASGI + aiohttp forwarder can do.

No routing, no bucketing, no metrics, no logs: read request, forward, stream back. The proxy's
throughput is reported as a ratio of this one's, measured in the same run. ``--client pyreqwest``
swaps the upstream client (the same code otherwise) to measure what the client alone buys.
"""

from __future__ import annotations

import os

import aiohttp

UPSTREAM = os.environ.get("BARE_UPSTREAM", "http://127.0.0.1:9000")
HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"host", b"content-length", b"te", b"upgrade"}


async def _lifespan(receive, send, startup, shutdown) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            startup()
        elif msg["type"] == "lifespan.shutdown":
            await shutdown()
        await send({"type": msg["type"] + ".complete"})
        if msg["type"] == "lifespan.shutdown":
            return


async def _request(scope, receive) -> tuple[str, list[tuple[str, str]], bytes]:
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k not in HOP]
    url = UPSTREAM + scope["path"] + ("?" + scope["query_string"].decode() if scope["query_string"] else "")
    return url, headers, body


async def _respond(send, status: int, headers: list[tuple[bytes, bytes]], data: bytes) -> None:
    out = [(k, v) for k, v in headers if k.lower() not in HOP]
    out.append((b"content-length", str(len(data)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": data})


class BareForwarder:
    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None

    def _open(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=200), auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"))

    async def _close(self) -> None:
        if self.session:
            await self.session.close()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send, self._open, self._close)
        url, headers, body = await _request(scope, receive)
        async with self.session.request(scope["method"], url, headers=headers, data=body or None) as r:
            await _respond(send, r.status, r.raw_headers, await r.read())


class BareReqwestForwarder:
    """The same forwarder on pyreqwest (whole-body reads, as above)."""

    def __init__(self) -> None:
        self.client = None

    def _open(self) -> None:
        from pyreqwest.client import ClientBuilder

        self.client = (ClientBuilder().max_connections(200).follow_redirects(False)
                       .gzip(False).brotli(False).zstd(False).deflate(False).build())

    async def _close(self) -> None:
        if self.client:
            await self.client.close()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send, self._open, self._close)
        url, headers, body = await _request(scope, receive)
        builder = self.client.request(scope["method"], url).headers(headers)
        if body:
            builder = builder.body_bytes(body)
        r = await builder.build().send()
        data = bytes(await r.bytes())
        await _respond(send, r.status, [(k.encode(), v.encode()) for k, v in r.headers.items()], data)


class BareRsgiForwarder:
    """The aiohttp forwarder on granian's RSGI interface (``--server granian-rsgi``): what RSGI
    saves over granian's ASGI bridge, before porting anything of the proxy to it."""

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None

    async def __rsgi__(self, scope, protocol) -> None:
        if self.session is None:  # created on the serving loop (granian's init hook runs outside it)
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=200), auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"))
        body = await protocol()
        headers = [(k, v) for k, v in scope.headers.items() if k.encode() not in HOP]
        url = UPSTREAM + scope.path + ("?" + scope.query_string if scope.query_string else "")
        async with self.session.request(scope.method, url, headers=headers, data=body or None) as r:
            data = await r.read()
            out = [(k.decode(), v.decode()) for k, v in r.raw_headers if k.lower() not in HOP]
        out.append(("content-length", str(len(data))))
        protocol.response_bytes(r.status, out, data)


def create_app() -> BareForwarder | BareReqwestForwarder | BareRsgiForwarder:
    if os.environ.get("BARE_SERVER") == "granian-rsgi":
        return BareRsgiForwarder()
    return BareReqwestForwarder() if os.environ.get("BARE_CLIENT") == "pyreqwest" else BareForwarder()


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.bare_forwarder --upstream URL --port 0 --workers N``.

    The same as ``uvicorn bench.bare_forwarder:create_app --factory --loop uvloop --http httptools
    --no-access-log`` (and no Server/Date headers, like the proxy), except that the socket is bound
    here so port 0 works with several workers and the real port is announced on one JSON line.
    """
    import argparse
    import json

    import uvicorn

    from chariot_migrate.lifecycle import hold_port_for_child
    from chariot_migrate.proxy.server import bind

    p = argparse.ArgumentParser(prog="python -m bench.bare_forwarder")
    p.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:9000")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--client", choices=("aiohttp", "pyreqwest"), default="aiohttp")
    p.add_argument("--server", choices=("uvicorn", "granian", "granian-rsgi"), default="uvicorn")
    args = p.parse_args(argv)
    os.environ["BARE_UPSTREAM"] = args.upstream.rstrip("/")
    os.environ["BARE_CLIENT"] = args.client
    os.environ["BARE_SERVER"] = args.server
    # granian's workers bind the port themselves (SO_REUSEPORT): hold it for them, as the proxy does
    # (chariot_migrate/proxy/granian_server.py), instead of freeing it for them to race for.
    sock = hold_port_for_child(args.host, args.port) if args.server.startswith("granian") else bind(args.host, args.port)
    port = sock.getsockname()[1]
    print(json.dumps({"event": "bare.listening", "port": port, "workers": args.workers,
                      "client": args.client, "server": args.server, "pid": os.getpid()}), flush=True)
    if args.server.startswith("granian"):
        from granian import Granian

        Granian("bench.bare_forwarder:create_app", address=args.host, port=port,
                interface="rsgi" if args.server == "granian-rsgi" else "asgi",
                workers=args.workers, loop="uvloop", factory=True, log_enabled=False).serve()
        return
    config = uvicorn.Config("bench.bare_forwarder:create_app", factory=True, workers=args.workers, loop="uvloop",
                            http="httptools", lifespan="on", access_log=False, log_level="warning",
                            server_header=False, date_header=False)
    if args.workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
