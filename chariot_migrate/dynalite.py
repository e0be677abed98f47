"""dynalite: a DynamoDB-compatible server (npm package, LevelDB in memory) as the local stack's
DynamoDB engine instead of moto's, chosen by `up --dynamodb dynalite` and the data bench.

Installed by ``make .dynalite`` (``.ci/install-dynalite``) into the git-ignored ``.dynalite/``
folder (or ``CHARIOT_DYNALITE_DIR``). Whoever starts it binds the listening socket first and hands
it over as a file descriptor (the launcher below listens on it), so no port is picked, released and
bound again, and a restarted dynalite keeps its port. Only DynamoDB goes there: everything else
stays on moto, and clients are pointed at it by ``AWS_ENDPOINT_URL_DYNAMODB`` (see
:func:`dynamodb_endpoint`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]

# Listens on the inherited fd, announces itself with one JSON line (what up's supervisor waits
# for), and exits when its parent is gone: a node child cannot use lifecycle.die_with_parent.
# Table state changes are instant (dynalite's default of 500 ms CREATING only slows tests down).
LAUNCHER = r"""
const [modulePath, fd, parent] = process.argv.slice(1);
const dynalite = require(modulePath);
const server = dynalite({createTableMs: 0, deleteTableMs: 0, updateTableMs: 0});
server.listen({fd: Number(fd)}, () => {
  console.log(JSON.stringify({event: "dynalite.ready", port: server.address().port}));
});
if (Number(parent) > 0) setInterval(() => { if (process.ppid !== Number(parent)) process.exit(0); }, 1000).unref();
process.on("SIGTERM", () => process.exit(0));
"""


def gaps() -> str:
    """What moto serves and dynalite 4.0.0 does not (checked against it; README "Local DynamoDB engine")."""
    return ("no TransactWriteItems (reporting's read model and `data backfill --write-mode transact` fail), "
            "no UpdateTimeToLive, StreamSpecification accepted but no stream; table names need 3+ characters")


def install_dir() -> Path:
    return Path(os.environ.get("CHARIOT_DYNALITE_DIR") or ROOT / ".dynalite")


def module_path() -> Path | None:
    """The installed dynalite package, or None (not installed, or no node to run it)."""
    path = install_dir() / "node_modules" / "dynalite"
    return path if (path / "index.js").is_file() and shutil.which("node") else None


def missing_reason() -> str:
    if not shutil.which("node"):
        return "node is not on PATH (dynalite is a Node.js server)"
    return f"dynalite is not installed in {install_dir()}: run `make .dynalite`"


def command(fd: int, parent_pid: int) -> list[str]:
    """The argv of a dynalite listening on the inherited socket ``fd``."""
    path = module_path()
    if path is None:
        raise RuntimeError(missing_reason())
    return ["node", "-e", LAUNCHER, str(path), str(fd), str(parent_pid)]


class Dynalite:
    """A dynalite process of our own on 127.0.0.1 (for benches and tests); a context manager."""

    def __init__(self, *, log: IO[Any] | int = subprocess.DEVNULL, timeout: float = 30) -> None:
        from .lifecycle import bind

        sock = bind("127.0.0.1", 0)
        try:
            self.port = sock.getsockname()[1]
            self.endpoint_url = f"http://127.0.0.1:{self.port}"
            self.proc = subprocess.Popen(command(sock.fileno(), os.getpid()), stdout=subprocess.PIPE, stderr=log,
                                         text=True, pass_fds=[sock.fileno()], start_new_session=True)
        finally:
            sock.close()  # the child holds its own copy
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        import selectors

        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                self.stop()
                raise RuntimeError(f"dynalite did not start in {timeout:.0f} s")
        line = self.proc.stdout.readline()
        if not line.startswith("{") or json.loads(line).get("event") != "dynalite.ready":
            self.stop()
            raise RuntimeError(f"dynalite did not start (exit status {self.proc.poll()}): {line.strip()!r}")

    def rss_mb(self) -> float:
        return rss_mb(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> Dynalite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()



def rss_mb(pid: int) -> float:
    """A process's resident memory now (Linux /proc), MB; 0 where it cannot be read."""
    try:
        for row in Path(f"/proc/{pid}/status").read_text().splitlines():
            if row.startswith("VmRSS:"):
                return round(int(row.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0
