"""Shared fixtures: real processes on 127.0.0.1 that announce their ports on a JSON line."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


class Proc:
    """A child process whose first stdout line is JSON with its ports; stderr is collected."""

    def __init__(self, args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
                 ready_timeout: float = 30, pass_fds: tuple[int, ...] = ()) -> None:
        full_env = {**os.environ, **(env or {})}
        self.popen = subprocess.Popen(args, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, start_new_session=True, pass_fds=pass_fds)
        self.stderr_lines: list[str] = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self.info = self._wait_ready(ready_timeout)

    def _drain_stderr(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.stderr_lines.append(line)

    def _wait_ready(self, timeout: float) -> dict:
        assert self.popen.stdout is not None
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.popen.stdout.readline()
            if line:
                try:
                    info = json.loads(line)
                except ValueError:
                    continue
                threading.Thread(target=lambda: [None for _ in self.popen.stdout], daemon=True).start()
                return info
            if self.popen.poll() is not None:
                raise RuntimeError(f"process exited {self.popen.returncode}: {''.join(self.stderr_lines)[-2000:]}")
        raise RuntimeError(f"process not ready in {timeout}s: {''.join(self.stderr_lines)[-2000:]}")

    @property
    def port(self) -> int:
        return int(self.info["port"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_http(self, path: str = "/", port: int | None = None, timeout: float = 20) -> None:
        import httpx

        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port or self.port}{path}", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"no HTTP on port {port or self.port}: {''.join(self.stderr_lines)[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        return self.popen.returncode


def eventually(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition",
               interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy (returned) or ``timeout`` seconds pass
    (AssertionError naming ``what``): the one way tests wait for a condition, never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def deep_merge(base: Any, extra: Any) -> Any:
    """``extra`` over ``base``: mappings merged key by key, anything else replaced (a copy)."""
    if isinstance(base, dict) and isinstance(extra, dict):
        out = dict(base)
        for k, v in extra.items():
            out[k] = deep_merge(base.get(k), v)
        return out
    return copy.deepcopy(extra)


def cli(*args: str) -> list[str]:
    return [str(BIN / "chariot-migrate"), *args]


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in reversed(started):
        p.stop()


@pytest.fixture
def start_echo(procs):
    def _start(name: str) -> Proc:
        p = Proc(cli("example-upstream", name, "--port", "0"))
        procs.append(p)
        p.wait_http()
        return p

    return _start


@pytest.fixture
def start_proxy(procs, tmp_path):
    def _start(routes: Path, *, state: str | None = None, workers: int = 1, env: dict | None = None) -> Proc:
        state = state or f"sqlite:///{tmp_path}/state.db"
        p = Proc(cli("proxy", "--routes", str(routes), "--state", state, "--port", "0", "--admin-port", "0",
                     "--workers", str(workers)),
                 cwd=tmp_path, env={"CHARIOT_MIGRATE_ADMIN_TOKEN": "test-admin-token", **(env or {})})
        procs.append(p)
        p.wait_http("/__ready_probe")
        p.wait_http("/health", port=p.info["admin_port"])
        return p

    return _start


def prometheus_tool(name: str) -> str:
    """``prometheus`` or ``promtool``: installed by .ci/install-prometheus (the Debian package) when
    missing; the test skips, saying so, only when it cannot be installed."""
    import shutil

    if not shutil.which(name):
        subprocess.run([str(ROOT / ".ci" / "install-prometheus")], capture_output=True, timeout=600)
    path = shutil.which(name)
    if not path:
        pytest.skip(f"{name} is not installed and .ci/install-prometheus could not install the Debian package")
    return path


class Receiver:
    """A webhook receiver: a real HTTP server on 127.0.0.1:0 recording every POST; ``script`` answers per path."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict, dict, bytes]] = []
        self.script: dict[str, list[int]] = {}
        self.delay: dict[str, float] = {}
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.got.append((self.path, dict(self.headers), json.loads(body), body))
                time.sleep(outer.delay.get(self.path, 0))
                codes = outer.script.get(self.path) or [200]
                code = codes.pop(0) if len(codes) > 1 else codes[0]
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *a) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, path: str = "/chat") -> list[dict]:
        return [doc for p, _, doc, _ in self.got if p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
