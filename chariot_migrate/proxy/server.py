"""Process layout of a running proxy: uvicorn (or granian: ``--server``) workers on the public port, the admin API in its
own process on the admin port, Prometheus multiprocess files shared between them.

Both sockets are bound here first (port 0 allowed) — or handed down already bound by a supervisor
(`--fd`, `--admin-fd`: `chariot-migrate up` keeps them across restarts) — so the real ports can be
announced on one JSON line on stdout before serving; tests and scripts read it instead of guessing.
Everything that can refuse a start (routes.yaml, the state store, a port in use) is checked before
that line, as one sentence. The admin process and the workers die with this process.
Under granian the public port is held rather than bound and listening (granian_server.py says why).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..lifecycle import (
    CHILD_APP_ENV,
    adopt_children,
    bind,
    die_with_parent,
    hold_port_for_child,
    inherited,
    port_of,
)
from .upstream import HTTP_CLIENT_ENV, HTTP_CLIENTS  # aiohttp only: nothing here imports prometheus_client

__all__ = ["SERVERS", "SERVER_ENV", "ProxyOptions", "bind", "resolve_server", "serve"]

SERVER_ENV = "CHARIOT_MIGRATE_SERVER"
SERVERS = ("uvicorn", "granian")


@dataclass
class ProxyOptions:
    routes: str = "routes.yaml"
    state: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    admin_host: str = "127.0.0.1"
    admin_port: int = 8001
    workers: int = 1
    access_log: bool = True
    ready_file: str | None = None
    capture: str | None = None  # JSONL file for sampled request/response pairs
    capture_sample: float = 1.0
    http_client: str | None = None  # "aiohttp" or "pyreqwest"; None: $CHARIOT_MIGRATE_HTTP_CLIENT or aiohttp
    fd: int | None = None  # public socket already bound by the parent (instead of host/port)
    admin_fd: int | None = None
    server: str | None = None  # "uvicorn" or "granian"; None: $CHARIOT_MIGRATE_SERVER or uvicorn


def resolve_server(opts: ProxyOptions) -> str:
    """The ASGI server for the workers, or a one-sentence error for what it cannot do."""
    name = opts.server or os.environ.get(SERVER_ENV) or "uvicorn"
    if name not in SERVERS:
        raise RuntimeError(f"--server: unknown server {name!r} (choose from {', '.join(SERVERS)})")
    if name == "granian" and opts.fd is not None:
        raise RuntimeError("--server granian binds its own listening sockets and cannot serve on --fd; "
                           "use --server uvicorn under a supervisor that hands the socket down")
    return name


def _listener(host: str, port: int, fd: int | None) -> socket.socket:
    return inherited(fd) if fd is not None else bind(host, port)


def _public_socket(opts: ProxyOptions, server: str) -> socket.socket:
    # granian's workers bind the port themselves (SO_REUSEPORT): hold it for them, not listening;
    # SO_REUSEADDR as for uvicorn's socket, so a restart on a fixed port is not refused by TIME_WAIT.
    if server == "granian":
        return hold_port_for_child(opts.host, opts.port, reuse_addr=True)
    return _listener(opts.host, opts.port, opts.fd)


def _run_admin(sock: socket.socket, env: dict[str, str]) -> None:
    os.environ.update(env)
    die_with_parent()
    import uvicorn

    config = uvicorn.Config("chariot_migrate.proxy.admin:create_admin_app_from_env", factory=True,
                            log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


def serve(opts: ProxyOptions) -> None:
    if opts.http_client and opts.http_client not in HTTP_CLIENTS:
        raise RuntimeError(f"--http-client: unknown client {opts.http_client!r} (choose from {', '.join(HTTP_CLIENTS)})")
    server = resolve_server(opts)
    # Metrics go to files shared by every worker and the admin process; this must be set before
    # anything imports prometheus_client (loading routes.yaml does, through its section models).
    mp_dir = tempfile.mkdtemp(prefix="chariot-migrate-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = mp_dir
    die_with_parent()  # under a supervisor (`up`): this process ends with it
    # Validate up front: a broken routes.yaml or an unusable state store at start-up is a
    # one-line error before anything listens, not a traceback after.
    from ..rollout.store import open_state_store
    from ..routes.loader import load_table
    from .live import save_last_good

    try:
        table = load_table(opts.routes)
        open_state_store(opts.state).close()
        public = _public_socket(opts, server)
        try:
            admin = _listener(opts.admin_host, opts.admin_port, opts.admin_fd)
        except Exception:
            public.close()
            raise
    except Exception:
        shutil.rmtree(mp_dir, ignore_errors=True)
        raise
    # A worker (re)started while routes.yaml is broken starts from the last table that loaded.
    last_good = save_last_good(table, mp_dir)
    env = {
        "CHARIOT_MIGRATE_ROUTES": str(Path(opts.routes).resolve()),
        "PROMETHEUS_MULTIPROC_DIR": mp_dir,
        "CHARIOT_MIGRATE_ACCESS_LOG": "1" if opts.access_log else "0",
        "CHARIOT_MIGRATE_ROUTES_LAST_GOOD": str(last_good),
        CHILD_APP_ENV: "chariot_migrate.proxy.app:create_app",
    }
    if opts.state:
        env["CHARIOT_MIGRATE_STATE"] = opts.state
    if opts.http_client:
        env[HTTP_CLIENT_ENV] = opts.http_client
    if opts.capture:
        env["CHARIOT_MIGRATE_CAPTURE"] = str(Path(opts.capture).resolve())
        env["CHARIOT_MIGRATE_CAPTURE_SAMPLE"] = str(opts.capture_sample)
    os.environ.update(adopt_children(env))
    # The admin token is resolved once here, so every process agrees on it.
    from .admin import resolve_admin_token

    os.environ["CHARIOT_MIGRATE_ADMIN_TOKEN"] = resolve_admin_token()
    env["CHARIOT_MIGRATE_ADMIN_TOKEN"] = os.environ["CHARIOT_MIGRATE_ADMIN_TOKEN"]

    admin_port = port_of(admin)
    ctx = multiprocessing.get_context("spawn")
    admin_proc = ctx.Process(target=_run_admin, args=(admin, env), daemon=True, name="chariot-admin")
    admin_proc.start()
    admin.close()

    ready = {"event": "proxy.listening", "host": opts.host, "port": port_of(public),
             "admin_port": admin_port,
             "workers": opts.workers, "pid": os.getpid()}

    def announce() -> None:
        print(json.dumps(ready), flush=True)
        if opts.ready_file:
            Path(opts.ready_file).write_text(json.dumps(ready))

    try:
        if server == "granian":
            from . import granian_server

            code = granian_server.run(opts.host, public, opts.workers, announce)
        else:
            announce()
            _run_uvicorn(public, opts.workers)
            code = 0
    finally:
        public.close()
        if admin_proc.is_alive():
            admin_proc.terminate()
            admin_proc.join(5)
        shutil.rmtree(mp_dir, ignore_errors=True)
    if code:
        sys.exit(code)


def _run_uvicorn(public: socket.socket, workers: int) -> None:
    import uvicorn

    # uvicorn re-raises SIGTERM after its graceful shutdown; turn it into SystemExit so the
    # clean-up in serve (admin process, metrics directory) runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    config = uvicorn.Config(
        "chariot_migrate.lifecycle:child_app", factory=True, fd=public.fileno(), workers=workers,
        # httptools plus a bound on each request's header block (uvicorn has none): http_protocol.py
        loop="uvloop", http="chariot_migrate.proxy.http_protocol:HeaderTimeoutProtocol", lifespan="on",
        access_log=False, log_level="warning",
        timeout_graceful_shutdown=30, server_header=False, date_header=False, proxy_headers=False,
    )
    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[public]).run()
    else:
        uvicorn.Server(config).run(sockets=[public])


def main() -> None:  # pragma: no cover - convenience entry
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(ProxyOptions())
