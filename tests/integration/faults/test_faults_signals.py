"""A long-running command stops cleanly on SIGINT and SIGTERM even when it was started with SIGINT
ignored — what a non-interactive shell does to every background job (`cmd &`, nohup, many CI
runners). Python then never raises KeyboardInterrupt, so "Ctrl-C stops it" must not rely on it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import eventually

CHARIOT_MIGRATE = Path(sys.executable).with_name("chariot-migrate")


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_dual_write_worker_stops_on_a_signal_though_started_with_sigint_ignored(tmp_path, sig):
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"""\
legacy: {{invoker: http, url: "http://127.0.0.1:9"}}
services:
  account: {{phase: 1, url: "http://127.0.0.1:9", dual_write: "on"}}
routes:
  - {{path: /account, methods: [GET, POST], service: account}}
dual_write: {{outbox: "sqlite:///{tmp_path}/outbox.db", worker: false}}
""")
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen([str(CHARIOT_MIGRATE), "dual-write", "worker", "--routes", str(routes)],
                                  cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_ignore_sigint)
    try:
        def started() -> bool:
            assert worker.poll() is None, log.read_text()  # it must not exit on its own
            return "replay worker running" in log.read_text()

        eventually(started, 30, "the worker to start")
        worker.send_signal(sig)
        assert worker.wait(15) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert "Traceback" not in log.read_text()
