"""Configuration service behaviour beyond the legacy contract: config.changed on every change,
FlagCache hot reload in-process, the internal flag read, replay adoption and the data mapping."""

from __future__ import annotations

import legacy_testkit
import pytest
from chariot_parity_kit import make_client, service_settings  # noqa: F401
from fastapi.testclient import TestClient

from chariot_migrate.legacy import signing
from chariot_migrate.model import tokens
from chariot_migrate.services.configuration.app import create_app
from chariot_migrate.services.configuration.migration import ConfigurationMigration
from chariot_migrate.services.kit.flags import FlagCache

stack, _moto_stack = legacy_testkit.stack, legacy_testkit._moto_stack  # fixtures
FLAGS = FlagCache()


@pytest.fixture(scope="module")
def client(make_client) -> TestClient:  # noqa: F811
    app = create_app(service_settings("configuration"))
    c = make_client(app)

    async def subscribe() -> None:  # a peer's FlagCache on the same (in-process) bus
        await app.state.bus.stop()
        app.state.bus.subscribe("flags-test", ["config.changed"], FLAGS.handle)
        await app.state.bus.start()

    c.portal.call(subscribe)
    return c


def _h(principal: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {tokens.issue(principal, signing.load())}", **extra}


def _drain(client: TestClient) -> None:
    client.portal.call(client.app.state.bus.drain)


def test_changes_publish_config_changed_and_flags_hot_reload(client, stack):
    h = _h(stack.user)
    assert client.put("/setting", json={"name": "beta", "value": "on"}, headers=h).status_code == 200
    _drain(client)
    assert FLAGS.snapshot(stack.user) == {"beta": "on"}
    client.put("/setting", json={"name": "beta", "value": False}, headers=h)
    client.put("/configuration", json={"name": "scan", "value": {"a": 1}}, headers=h)  # not a flag scope
    _drain(client)
    assert FLAGS.snapshot(stack.user) == {"beta": False}
    client.request("DELETE", "/setting", json={"name": "beta"}, headers=h)
    _drain(client)
    assert FLAGS.snapshot(stack.user) == {}
    # a failed write publishes nothing
    client.request("DELETE", "/setting", json={"name": "beta"}, headers=h)
    client.put("/setting", json={"name": "x"}, headers=h)
    _drain(client)
    assert FLAGS.snapshot(stack.user) == {}


def test_internal_flags_endpoint(client, stack):
    h = _h(stack.user)
    client.put("/setting", json={"name": "a", "value": "1"}, headers=h)
    client.put("/setting", json={"name": "b", "value": {"x": 2}}, headers=h)
    internal = {"authorization": f"Bearer {client.app.state.service_token()}"}
    r = client.get("/internal/api/flags", params={"account": stack.user}, headers=internal)
    assert r.json() == {"account": stack.user, "flags": {"a": "1", "b": {"x": 2}}}
    assert client.get("/internal/api/flags", params={"account": stack.user}, headers=h).status_code == 403


def test_replay_adopts_updated(client, stack):
    h = _h("replay@chariot-migrate.local", account=stack.user, **{"x-migrate-replay": "1"})
    r = client.put("/setting", json={"name": "a", "value": "1", "updated": "2020-02-02T00:00:00Z"}, headers=h)
    assert r.json()["updated"] == "2020-02-02T00:00:00Z" and r.json()["username"] == stack.user
    r = client.put("/setting", json={"name": "a", "value": "1", "updated": "2020-02-02T00:00:00Z"},
                   headers=_h(stack.user))
    assert r.json()["updated"] != "2020-02-02T00:00:00Z"


def test_migration_mapping():
    m = ConfigurationMigration("p-")
    row = {"username": "a@x.io", "key": "#setting#frozen", "name": "frozen", "value": "false"}
    assert m.to_new(row) == ("p-configuration-settings", row)
    assert m.to_new({"username": "a@x.io", "key": "#configuration#c"})[0] == "p-configuration-settings"
    assert m.to_new({"username": "a@x.io", "key": "#key#k"}) is None
    assert m.to_legacy("p-configuration-settings", row) == row
