"""Process lifecycle shared by every command that starts processes: listening sockets that are
bound once and handed down (never "pick a free port, close it, let the child bind it later"),
and children that die with their parent.

A parent that starts children sets ``CHARIOT_MIGRATE_PARENT_PID`` to its own pid in their
environment (:func:`adopt_children`); a child calls :func:`die_with_parent` first thing. On Linux
that is ``prctl(PR_SET_PDEATHSIG, SIGTERM)``; everywhere a watchdog thread also polls the parent
pid, and escalates to a hard exit if a graceful SIGTERM shutdown hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import importlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

PARENT_PID_ENV = "CHARIOT_MIGRATE_PARENT_PID"
CHILD_APP_ENV = "CHARIOT_MIGRATE_CHILD_APP"
_PR_SET_PDEATHSIG = 1
_GRACE_S = 30.0  # after the parent is gone: SIGTERM, then a hard exit if shutdown takes longer


class PortInUse(RuntimeError):
    """A port asked for explicitly is taken; the message is one sentence for the CLI."""


def bind(host: str, port: int, *, backlog: int = 2048) -> socket.socket:
    """A listening, inheritable socket. Port 0 = a free port, chosen and held in one step."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise PortInUse(f"{host}:{port} is already in use; stop what listens there or choose another port "
                            "(0 = any free port)") from None
        raise PortInUse(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def inherited(fd: int) -> socket.socket:
    """The listening socket a parent handed down as file descriptor ``fd``."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as e:
        raise RuntimeError(f"--fd {fd}: not an open socket handed down by the parent ({e.strerror})") from None
    sock.set_inheritable(True)
    return sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def adopt_children(env: dict[str, str] | None = None) -> dict[str, str]:
    """Mark the children this process is about to start (``env``, default ``os.environ``) as ours."""
    target = os.environ if env is None else env
    target[PARENT_PID_ENV] = str(os.getpid())
    return target  # type: ignore[return-value]  # os.environ is a MutableMapping, used as the dict callers pass


def die_with_parent(parent_pid: int | None = None) -> None:
    """End this process when its parent dies (no-op unless a parent pid is known)."""
    if parent_pid is None:
        raw = os.environ.get(PARENT_PID_ENV, "")
        parent_pid = int(raw) if raw.isdigit() else None
    if parent_pid is None or parent_pid == os.getpid():
        return
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="parent-watchdog").start()


def _watch_parent(parent_pid: int, interval_s: float = 1.0) -> None:
    while os.getppid() == parent_pid:
        time.sleep(interval_s)
    with contextlib.suppress(OSError):
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(_GRACE_S)
    os._exit(1)


def child_app() -> Any:
    """uvicorn factory for worker processes: die with the supervising process, then build the app
    named by ``CHARIOT_MIGRATE_CHILD_APP`` (``package.module:factory``)."""
    die_with_parent()
    module, _, attr = os.environ[CHILD_APP_ENV].partition(":")
    return getattr(importlib.import_module(module), attr)()


async def until_stopped(stop: Callable[[], Awaitable[None]], running: asyncio.Future[Any]) -> None:
    """Wait for SIGINT or SIGTERM, then ``await stop()``; if ``running`` ends first, its error is
    raised. Explicit handlers, not KeyboardInterrupt: a process started in the background by a
    non-interactive shell inherits SIGINT *ignored*, and Python then never raises
    KeyboardInterrupt, so Ctrl-C (or a supervisor's SIGINT) would do nothing."""
    loop = asyncio.get_running_loop()
    signalled = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, signalled.set)
    waiting = asyncio.ensure_future(signalled.wait())
    try:
        await asyncio.wait({waiting, running}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if running.done():
        running.result()
        return
    await stop()


def reserve_port(host: str = "127.0.0.1") -> socket.socket:
    """A port held but not listening: connections to it are refused, and nobody else can take it
    while the socket is open (a URL that must lead nowhere, e.g. a service a stack does not run)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    return sock


def hold_port_for_child(host: str = "127.0.0.1", port: int = 0, *, reuse_addr: bool = False) -> socket.socket:
    """A port held (bound, not listening) with SO_REUSEPORT, for a child whose server cannot adopt
    a socket (gRPC binds its own): the child binds the same port with SO_REUSEPORT and listens,
    this process never accepts on it, and while it holds the socket nobody else can take the
    port, even across the child's restarts. Port 0 = a free port.

    ``reuse_addr``: also SO_REUSEADDR, so a fixed port still in TIME_WAIT from the previous run
    (a server that closed its connections first) can be held at once, as ``bind`` allows. The cost:
    until the child listens, another SO_REUSEADDR socket could bind the port too — the child's
    bind then fails and the start fails loudly; the port is never shared silently."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if reuse_addr:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise PortInUse(f"{host}:{port} is already in use; stop what listens there or choose another port "
                        f"(0 = any free port): {e.strerror}") from None
    return sock
