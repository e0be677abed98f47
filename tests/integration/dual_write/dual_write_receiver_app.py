"""A receiving side for the replay fault tests, run as its own process.

It records every applied write in a JSONL file (so a restart keeps its memory), applies each
Idempotency-Key at most once (a repeat answers 409), and can be told to fail a share of
writes before applying them (503) or after applying them (500: the reply is lost, so the
worker retries and the dedupe must absorb it).

    python dual_write_receiver_app.py --log FILE [--port 0] [--token T]
Prints ``PORT <n>`` once listening on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from pathlib import Path

from aiohttp import web

from chariot_migrate.dual_write.replay_protocol import decode_primary_result


def make_app(log_path: Path, token: str) -> web.Application:
    applied: list[dict] = []
    if log_path.exists():
        applied = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    keys = {a["key"] for a in applied}
    control = {"fail_percent": 0, "fail_after_apply_percent": 0}
    rng = random.Random(7)

    async def set_control(request: web.Request) -> web.Response:
        control.update(await request.json())
        return web.json_response(control)

    async def get_applied(request: web.Request) -> web.Response:
        return web.json_response(applied)

    async def replay(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {token}":
            return web.Response(status=401, text="replay identity required")
        key = request.headers.get("Idempotency-Key")
        if not key:
            return web.Response(status=400, text="Idempotency-Key required")
        if rng.random() * 100 < control["fail_percent"]:
            return web.Response(status=503, text="injected failure")
        if key in keys:
            return web.Response(status=409, text="already applied")
        primary, _ = decode_primary_result(request.headers["X-Migrate-Primary-Result"])
        entry = {
            "key": key,
            "account": request.headers["X-Migrate-Replay-Account"],
            "seq": int(request.headers["X-Migrate-Replay-Seq"]),
            "path": request.path,
            "body": (await request.read()).decode(),
            "adopted_id": json.loads(primary.body)["id"],
        }
        with log_path.open("a") as f:
            f.write(json.dumps(entry) + "\n")
        keys.add(key)
        applied.append(entry)
        if rng.random() * 100 < control["fail_after_apply_percent"]:
            return web.Response(status=500, text="applied, but the reply is lost")
        return web.json_response({"id": entry["adopted_id"]}, status=201)

    app = web.Application()
    app.router.add_post("/_control", set_control)
    app.router.add_get("/_applied", get_applied)
    app.router.add_route("*", "/{tail:.*}", replay)
    return app


async def main(args: argparse.Namespace) -> None:
    runner = web.AppRunner(make_app(Path(args.log), args.token), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, reuse_address=True)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"PORT {port}", flush=True)
    while True:
        await asyncio.sleep(3600)  # why: serve until the test kills the process


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--log", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--token", default="replay-token")
    try:
        asyncio.run(main(p.parse_args()))
    except KeyboardInterrupt:
        sys.exit(0)
