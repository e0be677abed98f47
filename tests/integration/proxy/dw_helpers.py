"""Helpers for the edge dual-write test, importable by the proxy process via PYTHONPATH."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import uuid
from pathlib import Path

from aiohttp import web


def token() -> str:
    """The replay identity's bearer token (the test receiver expects this one)."""
    return "replay-token"


def make_primary(log: Path) -> web.Application:
    """A 'legacy' side that applies writes, logs them and returns a server-generated id."""
    counter = itertools.count(1)

    async def write(request: web.Request) -> web.Response:
        body = await request.read()
        doc = {"id": str(uuid.uuid4()), "n": next(counter), "body": body.decode()}
        with log.open("a") as f:
            f.write(json.dumps(doc) + "\n")
        return web.json_response(doc)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", write)
    return app


async def _main(args: argparse.Namespace) -> None:
    runner = web.AppRunner(make_primary(Path(args.log)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(json.dumps({"port": site._server.sockets[0].getsockname()[1]}), flush=True)  # type: ignore[union-attr]
    while True:
        await asyncio.sleep(3600)  # why: the server runs until the test kills the process


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--log", required=True)
    asyncio.run(_main(p.parse_args()))
