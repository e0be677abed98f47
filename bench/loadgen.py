"""Built-in load generator (aiohttp), used when ``wrk`` is not installed.

``python -m bench.loadgen URL -c CONNECTIONS -d SECONDS`` keeps CONNECTIONS requests in flight
on keep-alive connections (closed loop, like wrk), varies the ``account`` header over 1000 accounts
(so the proxy's bucketing really splits traffic, like bench/wrk_report.lua) and prints the same
one-line JSON summary as the wrk script. It is a Python process, so it saturates sooner than wrk:
its numbers are comparable within one run only.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import aiohttp

from .stats import LoadResult, summarise


async def run_load(url: str, connections: int, duration_s: float, *, write_share: float = 0.0,
                   headers: dict[str, str] | None = None, timeout_s: float = 5.0) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    non2xx = 0
    counter = 0
    writes_every = round(1 / write_share) if write_share > 0 else 0
    extra = dict(headers or {})
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                     skip_auto_headers=("User-Agent",)) as session:
        start = time.perf_counter()
        deadline = start + duration_s

        async def one_connection() -> None:
            nonlocal errors, non2xx, counter
            while True:
                t0 = time.perf_counter()
                if t0 >= deadline:
                    return
                counter += 1
                req_headers = {**extra, "account": f"bench{counter % 1000}@example.com"}
                is_write = writes_every and counter % writes_every == 0
                try:
                    if is_write:
                        req_headers["content-type"] = "application/json"
                        async with session.post(url, data=b'{"bench": true}', headers=req_headers) as r:
                            await r.read()
                            status = r.status
                    else:
                        async with session.get(url, headers=req_headers) as r:
                            await r.read()
                            status = r.status
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                    continue
                latencies.append((time.perf_counter() - t0) * 1e6)
                if status >= 400:
                    non2xx += 1
                    errors += 1

        await asyncio.gather(*(one_connection() for _ in range(connections)))
        elapsed_us = int((time.perf_counter() - start) * 1e6)
    return summarise(latencies, duration_us=elapsed_us, errors=errors, non2xx=non2xx)


def run_load_blocking(url: str, connections: int, duration_s: float, *, write_share: float = 0.0,
                      headers: dict[str, str] | None = None) -> LoadResult:
    """``run_load`` on a fresh event loop (uvloop when installed); safe to call from several threads."""
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # plain asyncio works, only slower
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(run_load(url, connections, duration_s, write_share=write_share, headers=headers))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("-c", "--connections", type=int, default=50)
    p.add_argument("-d", "--duration", type=float, default=5.0, help="seconds")
    p.add_argument("--write-share", type=float, default=0.0, help="fraction of requests sent as POST (0..1)")
    args = p.parse_args(argv)
    if args.connections < 1 or args.duration <= 0 or not 0 <= args.write_share <= 1:
        p.error("connections must be ≥ 1, duration > 0 and write share within 0..1")
    result = run_load_blocking(args.url, args.connections, args.duration, write_share=args.write_share)
    sys.stdout.write(result.model_dump_json() + "\n")


if __name__ == "__main__":
    main()
