"""A tiny echo upstream (raw ASGI) for demos, tests and benchmarks — a stand-in for either side.

It answers JSON describing what it received and which side it is. Test controls, by header:
``x-echo-delay-ms`` (sleep first), ``x-echo-status`` (answer this status), ``x-echo-bytes``
(stream a body of this many bytes instead). ``GET /__echo/count`` tells how many requests it saw;
env ``ECHO_DELAY_MS`` delays every answer (a slow side). By file, to change a running side:
``ECHO_FAIL_FLAG=/path`` — while that file exists, answer 500; ``ECHO_EXTRA_FLAG=/path`` — while
it exists, add ``"extra": <file text>`` to the JSON.
"""

from __future__ import annotations

import asyncio
import json
import os


class EchoApp:
    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.delay_ms = int(os.environ.get("ECHO_DELAY_MS", "0") or 0)  # a slow upstream, for tests
        self.fail_flag = os.environ.get("ECHO_FAIL_FLAG")  # a side that starts failing, for tests
        self.extra_flag = os.environ.get("ECHO_EXTRA_FLAG")  # a side whose answers change, for tests

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                await send({"type": msg["type"] + ".complete"})
                if msg["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        if scope["path"] == "/__echo/count":  # how many requests reached this upstream (not counted)
            out = json.dumps({"count": self.count}).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": out})
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.count += 1
        delay = int(headers.get("x-echo-delay-ms", "0") or 0) or self.delay_ms
        if delay:
            await asyncio.sleep(delay / 1000)
        status = int(headers.get("x-echo-status", "200") or 200)
        if self.fail_flag and os.path.exists(self.fail_flag):
            status = 500
        size = int(headers.get("x-echo-bytes", "0") or 0)
        if size:
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/octet-stream"), (b"x-side", self.name.encode())]})
            chunk = b"x" * 65536
            left = size
            while left > 0:
                n = min(left, len(chunk))
                left -= n
                await send({"type": "http.response.body", "body": chunk[:n], "more_body": left > 0})
            return
        doc = {"side": self.name, "method": scope["method"], "path": scope["path"],
               "raw_path": (scope.get("raw_path") or b"").decode("latin-1"),
               "query": scope["query_string"].decode("latin-1"), "headers": headers,
               "body": body.decode("utf-8", "replace"), "pid": os.getpid()}
        if self.extra_flag and os.path.exists(self.extra_flag):
            try:
                with open(self.extra_flag) as f:
                    doc["extra"] = f.read()
            except OSError:  # removed meanwhile
                pass
        out = json.dumps(doc).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"x-side", self.name.encode()),
                                (b"content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out})


def create_echo_app() -> EchoApp:
    return EchoApp(os.environ.get("ECHO_NAME", "echo"))


def serve_echo(name: str, host: str = "127.0.0.1", port: int = 0, workers: int = 1) -> None:
    import uvicorn

    from ..proxy.server import bind

    os.environ["ECHO_NAME"] = name
    sock = bind(host, port)
    print(json.dumps({"event": "echo.listening", "name": name, "host": host, "port": sock.getsockname()[1]}),
          flush=True)
    config = uvicorn.Config("chariot_migrate.examples.echo:create_echo_app", factory=True, workers=workers,
                            loop="uvloop", http="httptools", access_log=False, log_level="warning", lifespan="on")
    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run(sockets=[sock])
