"""Generated traffic for the real Chariot API through the proxy: many accounts, each with its own API key.

Two commands:

``python -m bench.load_real provision --moto URL --accounts N [--prefix load] --out keys.json``
    Creates N users with one API key each, written by legacy's provisioning helper into the legacy
    table (deterministic emails and key ids, so the proxy's cohorts are the same on every run).
    The secrets go to ``--out`` (mode 0600), never to stdout.

``python -m bench.load_real run --api URL/chariot --keys keys.json [-c 4] [-d SECONDS] [--write-every K]``
    Closed-loop load (``-c`` workers): each account exchanges its key for a token (``GET /token``,
    again every ``--token-every`` cycles) and reads its keys and collaborators (``GET /my?key=#key#``,
    ``GET /my?key=#account#``) — the account service's routes; with ``--write-every K`` every K-th
    cycle also creates and deletes an API key (``POST``/``DELETE /key``). Prints a JSON progress line
    every ``--report-s`` seconds and a JSON summary on exit (after ``-d`` seconds, SIGINT or SIGTERM):
    requests per ``side/status``, transport errors, p50/p95 latency.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


def provision(moto: str, accounts: int, prefix: str, out: Path, region: str = "us-east-1") -> list[dict[str, str]]:
    from chariot_migrate.legacy.resources import create_api_key

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    rows = []
    for i in range(accounts):
        email = f"{prefix}-{i:04d}@example.com"
        key_id, secret = create_api_key(email, name="load", endpoint_url=moto, region=region,
                                        key_id=f"{prefix}-key-{i:04d}")
        rows.append({"email": email, "key_id": key_id, "secret": secret})
    out.write_text(json.dumps(rows))
    os.chmod(out, 0o600)
    return rows


@dataclass
class Stats:
    started: float = field(default_factory=time.monotonic)
    by_outcome: dict[str, int] = field(default_factory=dict)  # "GET /token new 200" → count
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)  # "GET /token ReadTimeout" → count
    latencies_ms: list[float] = field(default_factory=list)

    def add(self, label: str, side: str, status: int, ms: float) -> None:
        k = f"{label} {side} {status}"
        self.by_outcome[k] = self.by_outcome.get(k, 0) + 1
        self.latencies_ms.append(ms)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)

        def q(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else None

        sides: dict[str, int] = {}
        statuses: dict[str, int] = {}
        for k, n in self.by_outcome.items():
            *_, side, status = k.split(" ")
            sides[side] = sides.get(side, 0) + n
            statuses[status] = statuses.get(status, 0) + n
        return {"elapsed_s": round(time.monotonic() - self.started, 2), "requests": len(lat), "errors": self.errors,
                "error_kinds": dict(self.error_kinds),
                "sides": sides, "statuses": statuses, "p50_ms": q(0.5), "p95_ms": q(0.95),
                "by_outcome": dict(sorted(self.by_outcome.items()))}


async def run(api: str, keys: list[dict[str, str]], concurrency: int, duration_s: float | None, *,
              token_every: int = 5, write_every: int = 0, report_s: float = 5.0, timeout_s: float = 10.0,
              stop: asyncio.Event | None = None) -> Stats:
    stats = Stats()
    stop = stop or asyncio.Event()
    tokens: dict[str, str] = {}
    order = itertools.cycle(range(len(keys)))
    cycles = itertools.count()

    async with httpx.AsyncClient(base_url=api.rstrip("/"), timeout=timeout_s,
                                 limits=httpx.Limits(max_connections=concurrency)) as http:

        async def call(label: str, method: str, path: str, **kw: Any) -> httpx.Response | None:
            t0 = time.perf_counter()
            try:
                r = await http.request(method, path, **kw)
            except httpx.HTTPError as e:
                stats.errors += 1
                kind = f"{label} {type(e).__name__} after {time.perf_counter() - t0:.2f}s"
                stats.error_kinds[kind] = stats.error_kinds.get(kind, 0) + 1
                return None
            stats.add(label, r.headers.get("x-migrate-side", "?"), r.status_code, (time.perf_counter() - t0) * 1000)
            return r

        async def cycle(row: dict[str, str], n: int) -> None:
            email = row["email"]
            if email not in tokens or n % token_every == 0:
                r = await call("GET /token", "GET", "/token", headers={"X-GUARD-API-KEY-ID": row["key_id"],
                                                                      "X-GUARD-API-KEY-SECRET": row["secret"]})
                if r is None or r.status_code != 200:
                    return
                tokens[email] = r.json()["token"]
            auth = {"authorization": f"Bearer {tokens[email]}"}
            r = await call("GET /my#key", "GET", "/my", params={"key": "#key#"}, headers=auth)
            if r is not None and r.status_code == 401:
                tokens.pop(email, None)
            await call("GET /my#account", "GET", "/my", params={"key": "#account#"}, headers=auth)
            if write_every and n % write_every == 0:
                r = await call("POST /key", "POST", "/key", json={"name": f"load-{n}"}, headers=auth)
                if r is not None and r.status_code == 200:
                    key = r.json().get("key")
                    if key:
                        await call("DELETE /key", "DELETE", "/key", json={"key": key}, headers=auth)

        async def worker() -> None:
            while not stop.is_set():
                await cycle(keys[next(order)], next(cycles))

        async def reporter() -> None:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), report_s)
                except TimeoutError:
                    s = stats.summary()
                    s.pop("by_outcome")
                    print(json.dumps({"event": "load.progress", **s}), flush=True)

        if duration_s:
            asyncio.get_running_loop().call_later(duration_s, stop.set)
        await asyncio.gather(reporter(), *(worker() for _ in range(concurrency)))
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.load_real", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("provision", help="create N users with an API key each (legacy table)")
    p.add_argument("--moto", required=True, help="the stack's AWS endpoint (moto server URL)")
    p.add_argument("--accounts", type=int, default=200)
    p.add_argument("--prefix", default="load")
    p.add_argument("--out", type=Path, required=True, help="where the keys go (JSON, mode 0600)")
    r = sub.add_parser("run", help="drive the API with the provisioned accounts")
    r.add_argument("--api", required=True, help="the proxy's API base, e.g. http://127.0.0.1:8000/chariot")
    r.add_argument("--keys", type=Path, required=True)
    r.add_argument("-c", "--concurrency", type=int, default=4)
    r.add_argument("-d", "--duration", type=float, default=None, help="seconds (default: until SIGINT/SIGTERM)")
    r.add_argument("--token-every", type=int, default=5, help="refresh an account's token every K cycles")
    r.add_argument("--write-every", type=int, default=0, help="create+delete an API key every K cycles (0: reads)")
    r.add_argument("--report-s", type=float, default=5.0)
    a = ap.parse_args(argv)

    if a.cmd == "provision":
        rows = provision(a.moto, a.accounts, a.prefix, a.out)
        print(json.dumps({"event": "load.provisioned", "accounts": len(rows), "keys": str(a.out)}), flush=True)
        return 0

    keys = json.loads(a.keys.read_text())
    if not keys:
        print("no accounts in --keys; run `provision` first", file=sys.stderr)
        return 2

    async def go() -> Stats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(json.dumps({"event": "load.started", "accounts": len(keys), "concurrency": a.concurrency}), flush=True)
        return await run(a.api, keys, a.concurrency, a.duration, token_every=a.token_every,
                         write_every=a.write_every, report_s=a.report_s, stop=stop)

    stats = asyncio.run(go())
    print(json.dumps({"event": "load.summary", **stats.summary()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
