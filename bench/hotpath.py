"""The proxy's own cost per request, in process: no sockets, no server, no HTTP client.

``python -m bench.hotpath [--requests N] [--profile]`` drives ``ProxyApp`` (the default add-ons,
the bench's routes.yaml, 50 % shifted, 1000 accounts) with ASGI calls against an in-memory
upstream and prints µs per request (CPU time of the process, the best of 5 runs: the machine is shared); ``--profile`` adds the top functions
by own time (cProfile). What ``make bench`` cannot separate — the server and the client — is
absent here, so a change to the hot path shows up without the shared machine's noise.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path

from chariot_migrate.transport import HttpRequest, HttpResponse

from .run import SERVICE, ProxyProfile, routes_yaml, setup_proxy_state

ANSWER = HttpResponse(200, [("content-type", "application/json"), ("content-length", "11")], b'{"ok":true}')


class Upstream:
    async def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        return ANSWER

    async def aclose(self) -> None:
        return None


def _scope(i: int) -> dict:
    return {"type": "http", "method": "GET", "path": f"/bench/{i}", "raw_path": f"/bench/{i}".encode(),
            "query_string": b"", "scheme": "http", "client": ("127.0.0.1", 5000),
            "headers": [(b"host", b"127.0.0.1:8080"), (b"user-agent", b"wrk"), (b"accept", b"*/*"),
                        (b"account", f"user{i % 1000}@example.com".encode())]}


async def _receive() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict) -> None:
    return None


async def run(requests: int, profile: bool) -> float:
    from chariot_migrate.proxy.app import ProxyApp, default_addons

    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        (work / "routes.yaml").write_text(routes_yaml(9))
        setup_proxy_state(work, ProxyProfile("routing", percent_new=50))
        state = f"sqlite:///{work / 'state.db'}"
        os.environ["CHARIOT_MIGRATE_STATE"] = state  # as `chariot-migrate proxy` passes it to a worker
        app = ProxyApp(work / "routes.yaml", state)
        app.addons.extend(default_addons(app))
        log = open(work / "access.log", "wb")  # noqa: SIM115 — closed below
        try:
            await app.startup()
            app.access.fd = log.fileno()
            app.transports.legacy = Upstream()  # type: ignore[assignment]
            app.transports.services[SERVICE] = Upstream()  # type: ignore[assignment]
            scopes = [_scope(i) for i in range(1000)]
            for s in scopes:  # warm caches (bucket lru, plans)
                await app(s, _receive, _send)
            best = float("inf")
            prof = cProfile.Profile() if profile else None
            for _ in range(5):
                if prof:
                    prof.enable()
                t0 = time.process_time()
                for i in range(requests):
                    await app(scopes[i % 1000], _receive, _send)
                best = min(best, (time.process_time() - t0) / requests)
                if prof:
                    prof.disable()
            if prof:
                pstats.Stats(prof).sort_stats("tottime").print_stats(25)
            await app.shutdown()
        finally:
            log.close()
    return best * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    us = asyncio.run(run(args.requests, args.profile))
    print(f"proxy hot path (in process, default add-ons, access log on): {us:.1f} µs/request")


if __name__ == "__main__":
    main()
