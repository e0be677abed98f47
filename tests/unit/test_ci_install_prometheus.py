""".ci/install-prometheus: idempotent (nothing to do when prometheus and promtool are there), and
run by .ci/run before the tests."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "install-prometheus"


def test_nothing_is_installed_when_both_tools_are_present(tmp_path):
    for tool in ("prometheus", "promtool"):
        (tmp_path / tool).write_text("#!/bin/sh\nexit 0\n")
        (tmp_path / tool).chmod(0o755)
    # apt-get / sudo that would fail loudly if called
    for tool in ("apt-get", "sudo"):
        (tmp_path / tool).write_text("#!/bin/sh\necho called >&2\nexit 9\n")
        (tmp_path / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:/usr/bin:/bin"}
    r = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "called" not in r.stderr


def test_ci_run_installs_prometheus_before_the_tests():
    text = (ROOT / ".ci" / "run").read_text()
    assert text.index(".ci/install-prometheus") < text.index("make test")
    assert os.access(SCRIPT, os.X_OK)
