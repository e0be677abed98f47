"""What `chariot-migrate up` does with the processes it starts: keep them running.

A child that exits (crash, SIGKILL, OOM, a clean exit nobody asked for) is restarted after an
exponential backoff, with one log line each time; the rest of the stack keeps serving meanwhile
(the proxy fails reads over to legacy, and a restarted child gets the same listening socket, so
clients of a dead child wait in its accept queue instead of being refused). A child that keeps
crashing soon after each start is given up on, with one line saying so; the stack still runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO


@dataclass(frozen=True)
class RestartPolicy:
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_crashes: int = 5  # quick crashes in a row before giving up
    stable_s: float = 30.0  # a child that ran this long before exiting starts a new streak


def restart_decision(policy: RestartPolicy, crashes: int, ran_s: float) -> tuple[int, float | None]:
    """(crashes in a row including this exit, delay before the restart or None = give up)."""
    crashes = 1 if ran_s >= policy.stable_s else crashes + 1
    if crashes > policy.max_crashes:
        return crashes, None
    return crashes, min(policy.max_delay_s, policy.base_delay_s * 2 ** (crashes - 1))


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


class Child:
    """A subprocess that announces itself on its first JSON stdout line; restartable."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path,
                 pass_fds: Sequence[int] = ()) -> None:
        self.name, self.args, self.env, self.pass_fds = name, args, env, tuple(pass_fds)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._log: TextIO = open(self.log_path, "w")  # noqa: SIM115 — lives as long as the child
        self.info: dict[str, Any] = {}
        self.popen: subprocess.Popen[str] | None = None
        self.started_at = 0.0
        self.crashes = 0
        self.restart_at: float | None = None
        self.given_up = False
        self._ready = threading.Event()
        self._copier: threading.Thread | None = None

    def start(self) -> None:
        self._ready = ready = threading.Event()
        self.popen = popen = subprocess.Popen(self.args, env=self.env, stdout=subprocess.PIPE, stderr=self._log,
                                              text=True, start_new_session=True, pass_fds=self.pass_fds)
        self.started_at = time.monotonic()
        # Keep draining stdout so the child never blocks on a full pipe; the services log their
        # JSON events to stdout, so what follows the ready line goes to the log file.
        self._copier = threading.Thread(target=self._read_stdout, args=(popen, ready), daemon=True,
                                        name=f"{self.name}-stdout")
        self._copier.start()

    def _read_stdout(self, popen: subprocess.Popen[str], ready: threading.Event) -> None:
        assert popen.stdout is not None
        for line in popen.stdout:
            if not ready.is_set() and line.startswith("{"):
                try:
                    self.info = json.loads(line)
                except ValueError:
                    pass
                else:
                    ready.set()
                    continue
            try:
                self._log.write(line)
                self._log.flush()
            except ValueError:  # the log was closed by stop(): keep draining, drop the rest
                continue

    def wait_ready(self, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if self.popen is None or self.popen.poll() is not None or time.monotonic() > deadline:
                return self._ready.is_set()
        return True

    def log_tail(self, n: int = 15) -> str:
        try:
            return "".join(self.log_path.read_text(errors="replace").splitlines(True)[-n:])
        except OSError:
            return ""

    def poll(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def terminate(self) -> None:
        """Ask it to drain and exit (SIGTERM to its process group); ``stop`` waits for it."""
        self.restart_at, self.given_up = None, True
        p = self.popen
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        p = self.popen
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(5)
        if self._copier is not None:
            self._copier.join(2)  # the last lines a stopping service logged
        self._log.close()


class Supervisor:
    """Restart dead children. ``tick`` is called from the main thread (a child's parent-death
    signal is tied to the thread that started it, so restarts must not happen in a passing thread)."""

    def __init__(self, children: list[Child], say: Callable[[str], None],
                 policy: RestartPolicy | None = None) -> None:
        self.children, self.say, self.policy = children, say, policy or RestartPolicy()

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for c in self.children:
            if c.given_up:
                continue
            if c.restart_at is not None:
                if now >= c.restart_at:
                    c.restart_at = None
                    c.start()
                continue
            code = c.poll()
            if code is None:
                continue
            ran = now - c.started_at
            c.crashes, delay = restart_decision(self.policy, c.crashes, ran)
            if delay is None:
                c.given_up = True
                self.say(f"{c.name} exited ({describe_exit(code)}) after {ran:.1f} s and crashed {c.crashes} times "
                         f"in a row within {self.policy.stable_s:g} s of starting: giving up on it (the rest of the "
                         f"stack keeps running); see {c.log_path}")
            else:
                c.restart_at = now + delay
                self.say(f"{c.name} exited ({describe_exit(code)}) after {ran:.1f} s; restarting it in {delay:g} s "
                         f"(crash {c.crashes} of {self.policy.max_crashes} in a row before up gives up; "
                         f"see {c.log_path})")

    def run(self, stop: threading.Event, interval_s: float = 0.2) -> None:
        while not stop.wait(interval_s):
            self.tick()


def stop_all(children: list[Child]) -> None:
    """The last started first and alone (the proxy: no new requests reach the others), then the
    rest together, so a stack of N services drains in the time of one."""
    if not children:
        return
    *rest, last = children
    last.stop()
    for c in rest:
        c.terminate()
    for c in rest:
        c.stop()
