"""The proxy's workers under granian (``chariot-migrate proxy --server granian``) instead of uvicorn.

granian cannot adopt a listening socket: on Linux every worker binds and listens on the port itself,
with SO_REUSEPORT (granian/net.rs, ``ListenerSpec.as_socket``; its main process only binds once to
learn the port of port 0, then closes that socket — a pick-then-bind race of its own). So
``serve`` holds the port first, bound with SO_REUSEPORT but never listening
(``lifecycle.hold_port_for_child``): the workers' sockets join it, nobody else can take the port
while this process lives, and the kernel hands connections only to listening sockets, so the
holder never gets one. The ready line is printed once every worker listens (read from
/proc/net/tcp), so a client that connects after reading it is not refused — as under uvicorn,
where the socket listens before the line.

What differs from uvicorn: the header timeout is granian's ``header_read_timeout`` (the connection
is closed, no 408 body), and ``--fd`` (a socket handed down by `up`) cannot be served.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .http_protocol import header_timeout_s

GRACEFUL_S = 30  # as uvicorn's timeout_graceful_shutdown: in-flight requests get this long on SIGTERM
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


def listeners_on(port: int) -> int:
    """How many sockets listen on ``port`` (IPv4 and IPv6), from /proc/net/tcp{,6}."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        n += 1
        except OSError:
            continue
    return n


def announce_when_listening(port: int, workers: int, announce: Callable[[], None], *,
                            alive: Callable[[], bool], interval_s: float = 0.02) -> threading.Thread:
    """Call ``announce`` (from a thread) once ``workers`` sockets listen on ``port``; give up when
    ``alive`` turns false (the server ended before its workers came up: it reports why itself)."""

    def wait() -> None:
        if not os.path.exists("/proc/net/tcp"):
            announce()  # no /proc (not Linux): granian's main process listens itself there, before its workers
            return
        while alive():
            if listeners_on(port) >= workers:
                announce()
                return
            time.sleep(interval_s)

    t = threading.Thread(target=wait, daemon=True, name="granian-ready")
    t.start()
    return t


def _http1_settings() -> Any:
    from granian.http import HTTP1Settings

    timeout_s = header_timeout_s()
    # 0 turns the bound off under uvicorn; granian always has one, so "off" becomes a day.
    return HTTP1Settings(header_read_timeout=int((timeout_s or 86_400) * 1000))


def run(host: str, holder: socket.socket, workers: int, announce: Callable[[], None]) -> int:
    """Serve ``chariot_migrate.lifecycle:child_app`` on the held port until SIGTERM/SIGINT; the exit code."""
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.log import LogLevels
    from granian.server import Server

    port = int(holder.getsockname()[1])
    server = Server(
        "chariot_migrate.lifecycle:child_app", factory=True, address=host, port=port, interface=Interfaces.ASGI,
        workers=workers, loop=Loops.uvloop, http=HTTPModes.http1, websockets=False, backlog=2048,
        http1_settings=_http1_settings(), workers_kill_timeout=GRACEFUL_S,
        log_enabled=True, log_level=LogLevels.warning, log_access=False,  # the proxy writes its own access log
    )
    stopping = threading.Event()
    interrupt = server.signal_handler_interrupt

    def on_signal(*args: Any, **kwargs: Any) -> None:
        stopping.set()
        interrupt(*args, **kwargs)

    # granian installs its handlers in serve(); the bound method it installs is this one.
    server.signal_handler_interrupt = on_signal  # type: ignore[method-assign]  # wrapping granian's handler
    done = threading.Event()
    announce_when_listening(port, workers, announce, alive=lambda: not done.is_set())
    try:
        server.serve()
    except SystemExit as e:
        # A signal sent to the whole process group (systemd, `kill -- -PGID`) reaches idle workers
        # too; one that has drained and exited before granian's main loop noticed the signal counts
        # as an "unexpected exit" there, and granian exits 1. Asked to stop, it is a clean stop.
        code = e.code if isinstance(e.code, int) else 1
        return 0 if stopping.is_set() else code
    finally:
        done.set()
    return 0
