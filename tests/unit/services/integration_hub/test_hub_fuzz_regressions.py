"""Regression from the schemathesis run: a webhook whose data a peer refuses (e.g. a dns with '#')
answered 503 "unavailable"; it is the caller's 400, with the peer's reason."""

from __future__ import annotations

import base64

import httpx
import pytest
import svc_c_testkit as kit
from svc_c_testkit import Stack, call_service

from chariot_migrate.services.integration_hub.app import IntegrationHubSettings, create_app
from chariot_migrate.services.integration_hub.peers import HttpHookPeers

stack, _moto_stack = kit.stack, kit._moto_stack


def _peers(asset_status: int, asset_body: dict) -> HttpHookPeers:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/internal/api/hook":
            return httpx.Response(200, json={"valid": True})
        return httpx.Response(asset_status, json=asset_body)

    return HttpHookPeers("http://notification", "http://assets", "http://risks", lambda: "service-token",
                         transport=httpx.MockTransport(handle))


def _hook(svc, stack: Stack, body: dict) -> tuple[int, dict]:
    principal = base64.b64encode(stack.user.encode()).decode()
    return call_service(svc, stack, "POST", f"/hook/{principal}/pin1", body, token=None)


@pytest.mark.parametrize("status", [400, 404, 422])
def test_a_peer_refusing_the_hook_data_is_a_400_with_its_reason(stack: Stack, status: int) -> None:
    peers = _peers(status, {"message": "dns must not contain '#'"})
    with kit.service(create_app, settings=IntegrationHubSettings.from_env("integration-hub"), peers=peers) as svc:
        assert _hook(svc, stack, {"dns": "a#b", "name": "x"}) == (
            400, {"message": "webhook rejected: dns must not contain '#'"})


def test_a_failing_peer_is_still_a_503(stack: Stack) -> None:
    peers = _peers(500, {"message": "boom"})
    with kit.service(create_app, settings=IntegrationHubSettings.from_env("integration-hub"), peers=peers) as svc:
        status, body = _hook(svc, stack, {"dns": "example.com", "name": "example.com"})
    assert status == 503 and "unavailable" in body["message"]
