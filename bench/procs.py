"""Child processes for the benchmark: started in their own session, ports read from the first JSON
line they print, output kept in files (never a pipe nobody reads), and always stopped — also on
Ctrl-C and errors — by signalling their process group (uvicorn workers, the proxy's admin process).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any


class StartError(RuntimeError):
    """A child did not announce itself; the message carries the tail of its stderr."""


class Child:
    def __init__(self, name: str, args: list[str], *, logdir: Path, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.args = args
        self.stdout_path = logdir / f"{name}.stdout"
        self.stderr_path = logdir / f"{name}.stderr"
        self._out = open(self.stdout_path, "wb")  # closed in stop()
        self._err = open(self.stderr_path, "wb")
        self.popen = subprocess.Popen(args, cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
                                      stdout=self._out, stderr=self._err, start_new_session=True)
        self.info: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_announced(self, timeout: float = 30.0) -> dict[str, Any]:
        """Block until the first stdout line parses as JSON (the process's ports)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.stdout_path.read_text(errors="replace")
            for line in text.splitlines():
                with contextlib.suppress(ValueError):
                    doc = json.loads(line)
                    if isinstance(doc, dict) and "port" in doc:
                        self.info = doc
                        return doc
            if self.popen.poll() is not None:
                raise StartError(f"{self.name} exited with {self.popen.returncode} before listening: "
                                 f"{self.stderr_tail()}")
            time.sleep(0.05)
        raise StartError(f"{self.name} did not announce its port within {timeout:g}s: {self.stderr_tail()}")

    def stderr_tail(self, n: int = 5) -> str:
        try:
            lines = self.stderr_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-n:])

    def terminate(self) -> None:
        """Ask the whole process group to stop, as Ctrl-C would.

        SIGINT, not SIGTERM: uvicorn re-raises the signal it caught after its graceful shutdown, and
        a re-raised SIGTERM ends the process before ``chariot-migrate proxy`` runs its clean-up
        (its Prometheus multiprocess dir would stay behind in /tmp); SIGINT unwinds normally.
        """
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGINT)

    def stop(self, grace_s: float = 5.0) -> None:
        self.terminate()
        try:
            self.popen.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
        # Whatever is left of the group (a slow supervisor, lingering workers) is killed; the group
        # id is ours alone (start_new_session).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(grace_s)
        self._out.close()
        self._err.close()


class Children:
    """Owns every process the run starts; ``with Children(...) as kids`` stops them all on exit."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.started: list[Child] = []

    def launch(self, name: str, args: list[str], *, cwd: Path | None = None,
               env: dict[str, str] | None = None) -> Child:
        """Start without waiting (several children boot in parallel); call ``wait_announced`` later."""
        child = Child(name, args, logdir=self.logdir, cwd=cwd, env=env)
        self.started.append(child)
        return child

    def start(self, name: str, args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
              timeout: float = 30.0) -> Child:
        child = self.launch(name, args, cwd=cwd, env=env)
        child.wait_announced(timeout)
        return child

    def stop_all(self, grace_s: float = 5.0) -> None:
        """SIGTERM every group at once, then give them one shared grace period, then SIGKILL."""
        for child in self.started:
            child.terminate()
        deadline = time.monotonic() + grace_s
        for child in reversed(self.started):
            child.stop(grace_s=max(0.1, deadline - time.monotonic()))
        self.started.clear()

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in a process group (Linux /proc).

    Server CPU per request is far steadier than requests/s on a shared, noisy machine: other
    load slows a server down, but barely changes how much CPU one request costs it.
    """
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # exited meanwhile
            continue
        rest = stat[stat.rfind(b")") + 2:].split()
        # rest[0] is field 3 (state): pgrp is field 5, utime 14, stime 15.
        if int(rest[2]) == pgid:
            total += int(rest[11]) + int(rest[12])
    return total / tick
