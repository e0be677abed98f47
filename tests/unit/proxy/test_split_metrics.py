"""The admin /metrics exports the target split (intent) next to the observed traffic:
migration_target_percent{service}, migration_shadow_percent{service}, migration_stage{service,stage}."""

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from chariot_migrate.proxy.admin import create_admin_app
from chariot_migrate.rollout import state as st
from chariot_migrate.rollout.store import open_state_store

ROUTES = """\
version: 1
legacy: {invoker: http, url: "http://127.0.0.1:9"}
services:
  account: {phase: 1, dual_write: "on"}
  reporting: {phase: 2}
"""


def samples(text: str) -> dict[tuple, float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.startswith("migration_"):
                out[(s.name, *sorted(s.labels.items()))] = s.value
    return out


def test_admin_metrics_export_the_target_split_and_stage_per_service(tmp_path):
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    store = open_state_store(f"sqlite:///{tmp_path}/s.db")
    store.update("account", lambda s: st.shift(st.set_shadow(s, 100), 25), default=st.ServiceState(service="account"),
                 actor="t", action="shift", reason="t")
    c = TestClient(create_admin_app(routes, store, token="t"))
    assert c.get("/metrics").status_code == 401
    got = samples(c.get("/metrics", headers={"authorization": "Bearer t"}).text)
    assert got[("migration_target_percent", ("service", "account"))] == 25.0
    assert got[("migration_shadow_percent", ("service", "account"))] == 100.0
    assert got[("migration_stage", ("service", "account"), ("stage", "canary"))] == 1.0
    assert got[("migration_stage", ("service", "account"), ("stage", "legacy"))] == 0.0
    # a service the store has never seen: its routes.yaml defaults
    assert got[("migration_target_percent", ("service", "reporting"))] == 0.0
    assert got[("migration_stage", ("service", "reporting"), ("stage", "legacy"))] == 1.0
    assert sum(v for k, v in got.items() if k[0] == "migration_stage" and k[1] == ("service", "account")) == 1.0


def test_an_unreadable_state_store_leaves_the_other_metrics_up(tmp_path):
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    c = TestClient(create_admin_app(routes, open_state_store("redis://127.0.0.1:1/0"), token="t"))
    r = c.get("/metrics", headers={"authorization": "Bearer t"})
    assert r.status_code == 200 and not samples(r.text)
