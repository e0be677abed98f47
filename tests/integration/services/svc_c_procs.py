"""Start several `chariot-migrate service run` processes at once. Their listening sockets are
bound here up front, so the services can be told each other's URLs before any of them is up, and
handed to them (`service run --fd`): no port is released and bound again later, when another
process could have taken it."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import graph_procs_kit as kit
from conftest import Proc, cli

from chariot_migrate.lifecycle import bind, port_of


def listeners(names: Iterable[str]) -> dict[str, socket.socket]:
    return {name: bind("127.0.0.1", 0) for name in names}


def urls(socks: dict[str, socket.socket]) -> dict[str, str]:
    return {name: f"http://127.0.0.1:{port_of(s)}" for name, s in socks.items()}


def start_all(specs: dict[str, dict[str, str]], env: dict[str, str],
              socks: dict[str, socket.socket]) -> dict[str, Proc]:
    """``specs``: service name → extra env. Returns name → Proc (all answering /health). The
    sockets are the services' now: this process closes its copies."""

    def one(name: str) -> Proc:
        fd = socks[name].fileno()
        try:
            p = Proc(cli("service", "run", name, "--fd", str(fd)), cwd=kit.ROOT, env=env | specs[name], pass_fds=(fd,))
        finally:
            socks[name].close()
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
