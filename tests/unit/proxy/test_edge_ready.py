"""Admin /ready: probes the state store and routes.yaml itself and says what the proxy serves from."""

from fastapi.testclient import TestClient

from chariot_migrate.proxy.admin import create_admin_app
from chariot_migrate.rollout.store import open_state_store

ROUTES = 'version: 1\nlegacy: {invoker: http, url: "http://127.0.0.1:9"}\n'


def test_ready_reports_store_and_routes(tmp_path):
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    ok = TestClient(create_admin_app(routes, open_state_store(f"sqlite:///{tmp_path}/s.db"), token="t"))
    r = ok.get("/ready")
    assert r.status_code == 200 and r.json()["ready"] is True and r.json()["state_store"]["reachable"]

    down = TestClient(create_admin_app(routes, open_state_store("redis://127.0.0.1:1/0"), token="t"))
    r = down.get("/ready")
    assert r.status_code == 503 and r.json()["state_store"]["reachable"] is False
    assert "last state" in r.json()["state_store"]["serving"]

    routes.write_text(ROUTES + "bogus: 1\n")
    r = ok.get("/ready")
    doc = r.json()
    # Still ready: every replica reads the same file, and each keeps serving its last valid table.
    assert r.status_code == 200 and doc["ready"] is True and doc["degraded"] == ["routes"]
    assert doc["routes"]["valid"] is False and "unknown key 'bogus'" in doc["routes"]["error"]
    assert "last valid route table" in doc["routes"]["serving"]
