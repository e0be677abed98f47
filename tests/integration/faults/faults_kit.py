"""Helpers for the fault suite: a light `up --free-ports` stack (moto, one echo "service", the
proxy; legacy is an echo upstream), the process tree under a pid, and bad routes.yaml edits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from conftest import cli
from conftest import eventually as wait_for  # noqa: F401  (the fault tests import it from here)

# Every kind of broken edit an operator can save; each must leave the old table serving.
BAD_EDITS = {
    "not YAML": "routes: [ {path: /x\n",
    "empty": "",
    "a list": "- path: /x\n- path: /y\n",
    "invalid schema": "version: 1\nlegacy: {invoker: http, url: 'http://127.0.0.1:9'}\nservices:\n  svc: {phase: one}\n",
}
BAD_LINES = {"not YAML": ":2:", "empty": ":1:", "a list": ":1:", "invalid schema": ":4:"}

UP_ROUTES = """\
version: 1
bucket_by: [header:account]
legacy: {{invoker: http, url: "{legacy}"}}
defaults: {{failover: true, timeout_s: 2, side_header: {side_header}}}
services:
  svc: {{phase: 1, url: "http://127.0.0.1:9", app: "chariot_migrate.examples.echo:create_echo_app", percent: 100}}
routes:
  - {{path: /r, methods: [GET, PUT], service: svc}}
"""


def children_of(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parents[int(entry)] = int(fields[1])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        todo += kids
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class UpStack:
    """`chariot-migrate up --free-ports` in ``workdir``; its stdout's up.ready line is ``info``."""

    def __init__(self, workdir: Path, routes: Path, env: dict[str, str] | None = None, timeout: float = 90) -> None:
        self.workdir, self.routes = workdir, routes
        self.state_dir = workdir / "state"
        self.log = workdir / "up.log"
        args = cli("up", "--routes", str(routes), "--state", f"sqlite:///{self.state_dir}/state.db", "--port", "0",
                   "--admin-port", "0", "--free-ports", "--state-dir", str(self.state_dir))
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(args, cwd=workdir, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                                         stderr=err, text=True, start_new_session=True)
        self.info: dict[str, Any] = {}
        self.lines: list[str] = []  # what `up` printed (its address lines)
        ready = threading.Event()

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                if line.startswith('{"event": "up.ready"'):
                    self.info = json.loads(line)
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"up did not start: {self.log.read_text()[-3000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.info['port']}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.info['admin_port']}"

    def child_pid(self, needle: str) -> int:
        for pid in children_of(self.proc.pid):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if needle in cmd:
                return pid
        raise LookupError(needle)

    def log_text(self, name: str | None = None) -> str:
        path = self.log if name is None else self.state_dir / "logs" / f"{name}.log"
        return path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
