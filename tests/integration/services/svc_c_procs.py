"""Start several `chariot-migrate service run` processes at once (ports picked up front so the
services can be told each other's URLs before any of them is up)."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import graph_procs_kit as kit
from conftest import Proc, cli


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_all(specs: dict[str, dict[str, str]], env: dict[str, str], ports: dict[str, int]) -> dict[str, Proc]:
    """``specs``: service name → extra env. Returns name → Proc (all answering /health)."""

    def one(name: str) -> Proc:
        p = Proc(cli("service", "run", name, "--port", str(ports[name])), cwd=kit.ROOT, env=env | specs[name])
        p.wait_http("/health", timeout=60)
        return p

    with ThreadPoolExecutor(len(specs)) as pool:
        futures = {name: pool.submit(one, name) for name in specs}
    started: dict[str, Proc] = {}
    errors = []
    for name, f in futures.items():
        try:
            started[name] = f.result()
        except Exception as e:  # stop the others before failing
            errors.append(f"{name}: {e}")
    if errors:
        for p in started.values():
            p.stop()
        raise RuntimeError("; ".join(errors))
    return started
