"""Harness for the end-to-end suite: the whole local stack (`chariot-migrate up`) and the real
`guard` CLI (praetorian-cli 2.6.2) run as subprocesses, each identity with its own HOME.

Kept apart from the test module so a later suite (e.g. services at 100 %) can reuse it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GUARD = BIN / "guard"
CHARIOT_MIGRATE = BIN / "chariot-migrate"
ROUTES = ROOT / "routes.yaml"

# The CLI prints new secrets once; never let them reach an assertion message or a log.
_SECRET_LINE = re.compile(r"(Secret \(save this, it will not be shown again\): )\S+")


@dataclass(frozen=True)
class StackMode:
    """How the stack runs: `services` also starts the new services; `commands` are
    chariot-migrate argument lists run after start (e.g. ["shift", "account", "100", "--force"]);
    `--routes` and `--state` are appended so they reach this stack's store."""

    name: str
    services: bool = False
    commands: tuple[tuple[str, ...], ...] = ()
    free_ports: bool = True  # `up --free-ports`: several stacks can run on one machine
    env: tuple[tuple[str, str], ...] = ()  # extra environment for `up` (and so for the services)


@dataclass
class Stack:
    proc: subprocess.Popen
    info: dict[str, Any]
    state_dir: Path
    state_url: str
    env: dict[str, str]  # PRAETORIAN_CLI_* from demo.env
    log: Path
    process_env: dict[str, str] = field(default_factory=dict)  # what `up` (and its children) got
    stdout: list[str] = field(default_factory=list)  # `up`'s stdout so far (kept for the secret scan)

    @property
    def api(self) -> str:
        return self.env["PRAETORIAN_CLI_API"]

    @property
    def moto(self) -> str:
        return str(self.info["moto"])

    @property
    def workdir(self) -> Path:
        """The cwd of `up` and of every process it starts: relative stores live here."""
        return self.state_dir.parent

    @property
    def routes(self) -> Path:
        """The routes file the proxy reads (the `--free-ports` copy when there is one)."""
        effective = self.state_dir / "routes.effective.yaml"
        return effective if effective.exists() else ROUTES

    def log_tail(self, n: int = 40) -> str:
        try:
            return "".join(self.log.read_text(errors="replace").splitlines(True)[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)


def _read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export "):]
        if "=" in line:
            k, _, v = line.partition("=")
            env[k] = v
    return env


def start_stack(workdir: Path, mode: StackMode, timeout: float = 90, routes: Path = ROUTES) -> Stack:
    """`routes`: a test-local copy of routes.yaml (e.g. short plan windows) instead of the repo's."""
    state_dir = workdir / "state"
    state_url = f"sqlite:///{state_dir}/state.db"
    state_dir.mkdir(parents=True, exist_ok=True)
    args = [str(CHARIOT_MIGRATE), "up", "--routes", str(routes), "--state", state_url, "--port", "0",
            "--admin-port", "0", "--state-dir", str(state_dir)]
    if not mode.services:
        args.append("--no-services")
    if mode.free_ports:
        args.append("--free-ports")
    log = workdir / "up.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRAETORIAN_CLI_", "AWS_", "CHARIOT_"))}
    env.update(dict(mode.env))
    with open(log, "w") as err:
        proc = subprocess.Popen(args, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
                                start_new_session=True)
    lines: list[str] = []
    ready: dict[str, Any] = {}
    reader_done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:  # keep draining for the life of the stack
            lines.append(line)
            if not ready and line.startswith("{"):
                try:
                    info = json.loads(line)
                except ValueError:
                    continue
                if info.get("event") == "up.ready":
                    ready.update(info)
        reader_done.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.time() + timeout
    while not ready and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    stack = Stack(proc, dict(ready), state_dir, state_url, {}, log, env, lines)
    if not ready:
        stack.stop()
        raise RuntimeError(f"chariot-migrate up did not become ready (rc={proc.poll()}):\n"
                           + "".join(lines[-20:]) + stack.log_tail())
    stack.env = _read_env_file(Path(ready["env_file"]))
    # Commands such as `data backfill` reach this stack's moto like the services do.
    command_env = {**env, "AWS_ENDPOINT_URL": stack.moto, "CHARIOT_MIGRATE_LEGACY_ENDPOINT_URL": stack.moto,
                   "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"}
    for command in mode.commands:
        out = subprocess.run([str(CHARIOT_MIGRATE), *command, "--routes", str(stack.routes), "--state", state_url],
                             cwd=workdir, env=command_env, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            stack.stop()
            raise RuntimeError(f"chariot-migrate {' '.join(command)} failed: {out.stdout}{out.stderr}")
    return stack


@dataclass
class Result:
    args: tuple[str, ...]
    rc: int
    out: str
    err: str
    secrets: Sequence[str] = ()

    def _clean(self, text: str) -> str:
        text = _SECRET_LINE.sub(r"\1<redacted>", text)
        for s in self.secrets:
            if s:
                text = text.replace(s, "<redacted>")
        return text

    def __str__(self) -> str:
        return (f"guard {' '.join(self.args)} → rc={self.rc}\nstdout:\n{self._clean(self.out)[-3000:]}"
                f"\nstderr:\n{self._clean(self.err)[-3000:]}")

    @property
    def json(self) -> Any:
        text = self.out.strip()
        # list --details may be followed by "There are more results…" lines
        end = text.rfind("\n}") + 2 if text.startswith("{") else text.rfind("\n]") + 2
        return json.loads(text[:end] if end > 1 else text)

    @property
    def lines(self) -> list[str]:
        return [line for line in self.out.splitlines() if line.strip()]


@dataclass
class Guard:
    """The real `guard` binary for one identity (API key) with its own HOME (keychain + token cache)."""

    stack: Stack
    home: Path
    overrides: dict[str, str] = field(default_factory=dict)
    timeout: float = 120

    def environment(self) -> dict[str, str]:
        env = {"HOME": str(self.home), "PATH": f"{BIN}:/usr/bin:/bin", "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1", **self.stack.env, **self.overrides}
        env["PRAETORIAN_CLI_DISABLE_UPDATE_CHECK"] = "1"
        env["PRAETORIAN_CLI_ALLOW_HTTP_LOOPBACK"] = "1"
        return env

    def sdk(self) -> Any:
        """The same identity through the client's SDK in this process: cheap reads to check what a
        CLI command did, without paying for another CLI start."""
        os.environ["PRAETORIAN_CLI_ALLOW_HTTP_LOOPBACK"] = "1"
        from praetorian_cli.sdk.guard import Guard as GuardSDK
        from praetorian_cli.sdk.keychain import Keychain

        env = self.environment()
        data = (f"[United States]\napi = {env['PRAETORIAN_CLI_API']}\nclient_id = local\n"
                f"api_key_id = {env['PRAETORIAN_CLI_API_KEY_ID']}\n"
                f"api_key_secret = {env['PRAETORIAN_CLI_API_KEY_SECRET']}\n"
                f"username = {env.get('PRAETORIAN_CLI_USERNAME', '')}\n")
        return GuardSDK(Keychain(data=data))

    def secrets(self) -> list[str]:
        env = self.environment()
        return [env.get("PRAETORIAN_CLI_API_KEY_SECRET", "")]

    def run(self, *args: str, ok: bool | None = True, cwd: Path | None = None) -> Result:
        """Run `guard ARGS`; ok=True asserts rc 0, ok=False asserts rc != 0, None checks nothing."""
        self.home.mkdir(parents=True, exist_ok=True)
        p = subprocess.run([str(GUARD), *args], env=self.environment(), capture_output=True, text=True,
                           timeout=self.timeout, cwd=cwd or self.home, stdin=subprocess.DEVNULL)
        res = Result(tuple(args), p.returncode, p.stdout, p.stderr, self.secrets())
        if ok is True:
            assert res.rc == 0, str(res)
        elif ok is False:
            assert res.rc != 0, str(res)
        return res

    def json(self, *args: str) -> Any:
        res = self.run(*args)
        try:
            return res.json
        except ValueError as e:
            raise AssertionError(f"not JSON ({e}): {res}") from None

    def many(self, *calls: Sequence[str], ok: bool | None = True) -> list[Result]:
        """Independent commands at once (each CLI start costs ~1.5 s of imports)."""
        return parallel(*[(lambda c=c: self.run(*c, ok=ok)) for c in calls])


def parallel(*fns: Callable[[], Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=min(4, len(fns)) or 1) as pool:
        futures = [pool.submit(fn) for fn in fns]
        return [f.result() for f in futures]


def keys_of(rows: Iterable[dict[str, Any]]) -> set[str]:
    return {r["key"] for r in rows}


def wait_for(fn: Callable[[], Any], *, timeout: float, interval: float = 0.5, what: str = "condition") -> Any:
    deadline = time.time() + timeout
    last: Any = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not reached in {timeout}s; last value: {last!r}")
