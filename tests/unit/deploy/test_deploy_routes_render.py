"""The cluster and compose copies of routes.yaml: in sync, valid, and pointing at real objects."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from chariot_migrate.routes.loader import load_table

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "deploy" / "render_routes.py"


def _render_module():
    spec = importlib.util.spec_from_file_location("deploy_render_routes", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render_routes = _render_module()


def test_generated_copies_are_in_sync_with_routes_yaml() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{out.stderr.strip()} (routes.yaml changed: regenerate the copies)"


def test_check_mode_detects_a_stale_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "routes.yaml"
    stale.write_text("# old\n")
    monkeypatch.setattr(render_routes, "OUTPUTS", {"k8s": stale})
    monkeypatch.setattr(render_routes, "REPO", tmp_path)
    assert render_routes.main(["--check"]) == 1
    assert render_routes.main([]) == 0
    assert render_routes.main(["--check"]) == 0


@pytest.mark.parametrize("target", ["k8s", "compose"])
def test_rendered_table_loads_with_the_real_loader(target: str) -> None:
    table = load_table(render_routes.OUTPUTS[target])
    source = load_table(REPO / "routes.yaml")
    assert [r.id for r in table.routes] == [r.id for r in source.routes]
    assert set(table.config.services) == set(source.config.services)


def test_k8s_copy_uses_cluster_dns_and_real_lambda() -> None:
    cfg = load_table(render_routes.OUTPUTS["k8s"]).config
    assert cfg.legacy.invoker == "lambda"
    assert cfg.legacy.endpoint_url is None, "real AWS: no emulator endpoint"
    assert cfg.legacy.functions is None
    k8s = REPO / "deploy" / "k8s" / "base"
    services = {}
    for f in (k8s / "services").glob("*.yaml"):
        for doc in yaml.safe_load_all(f.read_text()):
            if doc and doc["kind"] == "Service":
                services[doc["metadata"]["name"]] = doc["spec"]["ports"][0]["port"]
    for name, svc in cfg.services.items():
        u = urlsplit(svc.url)
        assert (u.hostname, u.port) == (name, services[name]), f"{name}: {svc.url} is not its k8s Service"


@pytest.mark.parametrize("target", ["k8s", "compose"])
def test_shared_stores_point_at_redis(target: str) -> None:
    doc = yaml.safe_load(render_routes.OUTPUTS[target].read_text())
    source = yaml.safe_load((REPO / "routes.yaml").read_text())
    if "store" in (source.get("shadow") or {}):
        assert doc["shadow"]["store"] == "redis://redis:6379/0"
    if "metrics_store" in (source.get("plan") or {}):
        assert doc["plan"]["metrics_store"] == "redis://redis:6379/0"


def test_compose_copy_uses_compose_service_names_and_moto() -> None:
    cfg = load_table(render_routes.OUTPUTS["compose"]).config
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())["services"]
    assert cfg.legacy.endpoint_url == "http://moto:5000" and "moto" in compose
    for name, svc in cfg.services.items():
        u = urlsplit(svc.url)
        assert u.hostname == name and name in compose
        assert compose[name]["command"] == ["service", name]


def test_render_is_pure_and_keeps_ports() -> None:
    doc = {"legacy": {"invoker": "local", "functions": "m:f", "concurrency": 2, "stage": "s", "provision": "m:p"},
           "services": {"svc": {"phase": 1, "url": "http://127.0.0.1:9999/"}},
           "shadow": {"store": "sqlite:///x.db"}, "plan": {"metrics_store": "sqlite:///m.db", "interval_s": 5}}
    before = yaml.safe_dump(doc)
    k8s = render_routes.render(doc, "k8s")
    assert yaml.safe_dump(doc) == before, "input must not be mutated"
    assert k8s["services"]["svc"]["url"] == "http://svc:9999"
    assert k8s["legacy"] == {"invoker": "lambda", "stage": "s"}
    assert k8s["shadow"] == {"store": "redis://redis:6379/0"}
    assert k8s["plan"] == {"metrics_store": "redis://redis:6379/0", "interval_s": 5}
    assert render_routes.render(doc, "compose")["legacy"]["endpoint_url"] == "http://moto:5000"
    with pytest.raises(ValueError, match="explicit port"):
        render_routes.render({"legacy": {}, "services": {"x": {"url": "http://h"}}}, "k8s")
    with pytest.raises(ValueError, match="unknown target"):
        render_routes.render(doc, "helm")  # type: ignore[arg-type]
