"""Events between the graph services, without their internal APIs: asset-discovery publishes
``asset.discovered``, risk-assessment folds it into its asset read model (and can then accept risks
on those assets) and publishes ``risk.assessed``, which asset-discovery folds into its risk read
model for relationship queries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import graph_svc_testkit as kit
import pytest
from fastapi.testclient import TestClient
from graph_svc_testkit import Stack, call_service

from chariot_migrate.services.asset_discovery.app import create_app as create_asset_app
from chariot_migrate.services.kit import Event
from chariot_migrate.services.risk_assessment.app import RiskAssessmentSettings
from chariot_migrate.services.risk_assessment.app import create_app as create_risk_app

stack, _moto_stack = kit.stack, kit._moto_stack  # fixtures


class Wire:
    """Records what each app publishes; ``deliver`` hands it to the other app's bus (another loop)."""

    def __init__(self, assets: TestClient, risks: TestClient) -> None:
        self.assets, self.risks = assets, risks
        self.sent: dict[str, list[Event]] = {"assets": [], "risks": []}
        self.inbound: dict[str, Any] = {}  # the un-spied publish: forwarded events are not "sent"
        for name, client in (("assets", assets), ("risks", risks)):
            bus = client.app.state.bus
            original = bus.publish
            self.inbound[name] = original

            async def spy(event: Event, _orig: Any = original, _name: str = name) -> str:
                self.sent[_name].append(event)
                return await _orig(event)

            bus.publish = spy

    def deliver(self, source: str) -> list[Event]:
        name = "risks" if source == "assets" else "assets"
        target = self.risks if source == "assets" else self.assets
        events, self.sent[source] = self.sent[source], []
        for e in events:
            target.portal.call(self.inbound[name], e)
        target.portal.call(target.app.state.bus.drain)
        return events


@pytest.fixture(scope="module")
def wire(_moto_stack: None) -> Iterator[Wire]:
    with TestClient(create_asset_app(kit.asset_settings(table_prefix="ev-")), raise_server_exceptions=False) as a, \
            TestClient(create_risk_app(RiskAssessmentSettings.from_env("risk-assessment", table_prefix="ev-")),
                       raise_server_exceptions=False) as r:
        yield Wire(a, r)


def test_events_build_read_models_both_ways(wire: Wire, stack: Stack):
    # risk-assessment has not heard of the asset yet: 404, as legacy for an unknown asset
    st, body = call_service(wire.assets, stack, "PUT", "/asset", {"group": "ev.com", "identifier": "1.2.3.4"})
    assert st == 200
    st, body = call_service(wire.risks, stack, "PUT", "/risk", {"key": "#asset#ev.com#1.2.3.4", "name": "r",
                                                                "status": "TH"})
    assert st == 404
    events = wire.deliver("assets")
    assert [e.type for e in events] == ["asset.discovered"] and events[0].account == stack.user
    assert events[0].data["key"] == "#asset#ev.com#1.2.3.4" and events[0].data["entity"]["class"] == "ipv4"
    st, body = call_service(wire.risks, stack, "PUT", "/risk", {"key": "#asset#ev.com#1.2.3.4", "name": "r",
                                                                "status": "TH"})
    assert st == 200
    [ev] = wire.deliver("risks")
    assert ev.type == "risk.assessed" and ev.data["status"] == "TH" and ev.data["previous_status"] is None
    assert ev.data["asset_key"] == "#asset#ev.com#1.2.3.4"
    q = {"node": {"labels": ["Asset"], "relationships": [{"label": "HAS_VULNERABILITY", "target": {"labels": ["Risk"]}}]}}
    st, body = call_service(wire.assets, stack, "POST", "/my", q)
    assert st == 200 and [a["key"] for a in body["assets"]] == ["#asset#ev.com#1.2.3.4"]
    # a status change travels too; an older copy arriving late does not win
    call_service(wire.risks, stack, "PUT", "/risk", {"key": "#risk#ev.com#r", "status": "RH"})
    [change] = wire.deliver("risks")
    assert change.data["previous_status"] == "TH"
    # the first version again, even stamped in the same second as the change, loses (shorter history)
    entity = change.data["entity"] | {"status": "TH", "history": change.data["entity"]["history"][:1]}
    stale = Event.new("risk.assessed", stack.user, ev.data | {"entity": entity})
    wire.assets.portal.call(wire.inbound["assets"], stale)
    wire.assets.portal.call(wire.assets.app.state.bus.drain)
    view = wire.assets.app.state.asset_discovery.store.risk_view
    assert view.get(stack.user, "#risk#ev.com#r")["status"] == "RH"
    # deleting the asset (status D) reaches the read model as well
    call_service(wire.assets, stack, "DELETE", "/asset", {"key": "#asset#ev.com#1.2.3.4"})
    wire.deliver("assets")
    assert wire.risks.app.state.risk_assessment.store.asset_view.get(stack.user, "#asset#ev.com#1.2.3.4")["status"] == "D"


def test_internal_api_refuses_user_tokens(wire: Wire, stack: Stack):
    for client in (wire.assets, wire.risks):
        st, body = call_service(client, stack, "GET", "/internal/api/entities", query={"prefix": "#risk#"})
        assert st == 403
        st, _ = call_service(client, stack, "GET", "/internal/api/entities", token=None)
        assert st == 401
    token = wire.assets.app.state.service_token()
    st, body = call_service(wire.risks, stack, "GET", "/internal/api/entities", query={"prefix": "#risk#"},
                            token=token, account=stack.user)
    assert st == 200 and body == {"items": []}
    st, body = call_service(wire.risks, stack, "GET", "/internal/api/entities", query={"prefix": "bad"},
                            token=token, account=stack.user)
    assert st == 400
