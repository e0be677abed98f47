"""Baseline for the proxy benchmark: the least a raw-ASGI + aiohttp forwarder can do.

No routing, no bucketing, no metrics, no logs: read request, forward, stream back. The proxy's
throughput is reported as a ratio of this one's, measured in the same run.
"""

from __future__ import annotations

import os

import aiohttp

UPSTREAM = os.environ.get("BARE_UPSTREAM", "http://127.0.0.1:9000")
HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"host", b"content-length", b"te", b"upgrade"}


class BareForwarder:
    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    self.session = aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(limit=200), auto_decompress=False,
                        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"))
                elif msg["type"] == "lifespan.shutdown" and self.session:
                    await self.session.close()
                await send({"type": msg["type"] + ".complete"})
                if msg["type"] == "lifespan.shutdown":
                    return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k not in HOP]
        url = UPSTREAM + scope["path"] + ("?" + scope["query_string"].decode() if scope["query_string"] else "")
        async with self.session.request(scope["method"], url, headers=headers, data=body or None) as r:
            data = await r.read()
            out = [(k, v) for k, v in r.raw_headers if k.lower() not in HOP]
            out.append((b"content-length", str(len(data)).encode()))
            await send({"type": "http.response.start", "status": r.status, "headers": out})
            await send({"type": "http.response.body", "body": data})


def create_app() -> BareForwarder:
    return BareForwarder()


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.bare_forwarder --upstream URL --port 0 --workers N``.

    The same as ``uvicorn bench.bare_forwarder:create_app --factory --loop uvloop --http httptools
    --no-access-log`` (and no Server/Date headers, like the proxy), except that the socket is bound
    here so port 0 works with several workers and the real port is announced on one JSON line.
    """
    import argparse
    import json

    import uvicorn

    from chariot_migrate.proxy.server import bind

    p = argparse.ArgumentParser(prog="python -m bench.bare_forwarder")
    p.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:9000")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    os.environ["BARE_UPSTREAM"] = args.upstream.rstrip("/")
    sock = bind(args.host, args.port)
    print(json.dumps({"event": "bare.listening", "port": sock.getsockname()[1], "workers": args.workers,
                      "pid": os.getpid()}), flush=True)
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
