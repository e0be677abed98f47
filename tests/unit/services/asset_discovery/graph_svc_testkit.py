"""Test helpers for asset-discovery and risk-assessment: one in-process moto per module with the
legacy stack provisioned (legacy_testkit), both service apps under ``TestClient`` (lifespans run),
wired to each other's internal API, and a parity helper (same request → legacy handler and service).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import legacy_testkit
import pytest
from fastapi.testclient import TestClient
from legacy_testkit import Stack

from chariot_migrate.legacy import asset, attribute, preseed, risk, search, seed
from chariot_migrate.services.asset_discovery.app import AssetDiscoverySettings
from chariot_migrate.services.asset_discovery.app import create_app as create_asset_app
from chariot_migrate.services.kit.graph.peers import HttpPeerSource

stack, _moto_stack = legacy_testkit.stack, legacy_testkit._moto_stack  # fixtures, re-exported

TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
GENERATED = {"ttl"}

# (method, path) → legacy handler
LEGACY = {
    ("PUT", "/asset"): asset.handler, ("DELETE", "/asset"): asset.handler, ("POST", "/bulk/asset"): asset.handler,
    ("PUT", "/seed"): seed.handler,
    ("POST", "/preseed"): preseed.handler, ("PUT", "/preseed"): preseed.handler,
    ("DELETE", "/preseed"): preseed.handler,
    ("PUT", "/attribute"): attribute.handler, ("DELETE", "/attribute"): attribute.handler,
    ("POST", "/bulk/attribute"): attribute.handler,
    ("PUT", "/risk"): risk.handler, ("DELETE", "/risk"): risk.handler, ("POST", "/bulk/risk"): risk.handler,
    ("POST", "/my"): search.handler, ("GET", "/my"): search.handler,
}
RISK_ROUTES = {("PUT", "/risk"), ("DELETE", "/risk"), ("POST", "/bulk/risk")}


def normalize(value: Any) -> Any:
    """Generated timestamps, uuids and ttl replaced/dropped: parity ignores only those."""
    if isinstance(value, str):
        return UUID.sub("<uuid>", TS.sub("<ts>", value))
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items() if k not in GENERATED}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


@dataclass
class Services:
    assets: TestClient
    risks: TestClient | None

    def client_for(self, method: str, path: str, body: Any, query: dict[str, Any] | None = None) -> TestClient:
        if (method, path) == ("GET", "/my") and str((query or {}).get("key", "")).startswith("#risk#"):
            assert self.risks is not None
            return self.risks
        if (method, path) in RISK_ROUTES:
            assert self.risks is not None
            return self.risks
        if (method, path) == ("POST", "/my") and isinstance(body, dict):
            node = body.get("node")
            labels = (node.get("labels") or []) if isinstance(node, dict) else []
            if labels[:1] == ["Risk"] and self.risks is not None:
                return self.risks
        return self.assets


def call_service(client: TestClient, s: Stack, method: str, path: str, body: Any = None, *,
                 principal: str | None = None, account: str | None = None, query: dict[str, Any] | None = None,
                 token: str | None = "", headers: dict[str, str] | None = None,
                 raw: bytes | None = None) -> tuple[int, Any]:
    h = dict(headers or {})
    if token == "":
        token = s.token(principal)
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    if account:
        h["account"] = account
    content = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    resp = client.request(method, path, content=content, params=query, headers=h)
    return resp.status_code, resp.json() if resp.content else None


def both(svc: Services, s: Stack, method: str, path: str, body: Any = None, **kw: Any
         ) -> tuple[tuple[int, Any], tuple[int, Any]]:
    """(legacy status, body), (service status, body) for the same request."""
    raw = kw.pop("raw", None)
    legacy = s.call(LEGACY[(method, path)], method, path, raw.decode() if raw is not None else body, **kw)
    new = call_service(svc.client_for(method, path, body, kw.get("query")), s, method, path, body, raw=raw, **kw)
    return legacy, new


def same(svc: Services, s: Stack, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
    """Send to both sides and assert the same status and JSON (modulo generated values)."""
    (ls, lb), (ns, nb) = both(svc, s, method, path, body, **kw)
    assert (ls, normalize(lb)) == (ns, normalize(nb)), f"\nlegacy  {ls} {lb!r}\nservice {ns} {nb!r}"
    return ns, nb


def asset_settings(**overrides: Any) -> AssetDiscoverySettings:
    return AssetDiscoverySettings.from_env("asset-discovery", **overrides)


@contextmanager
def graph_services(table_prefix: str = "", *, wired: bool = True) -> Iterator[Services]:
    """Both graph services; ``wired``: each reads the other's entities through its internal API."""
    from chariot_migrate.services.risk_assessment.app import RiskAssessmentSettings
    from chariot_migrate.services.risk_assessment.app import create_app as create_risk_app

    holder: dict[str, TestClient] = {}

    class LazyPeer(HttpPeerSource):
        """The peer app's TestClient as the HTTP client, its own service token as credentials."""

        def __init__(self, target: str, caller: str) -> None:
            self.target, self.base_url = target, "http://testserver"
            self.token = lambda: holder[caller].app.state.service_token()

        @property
        def client(self) -> Any:  # type: ignore[override]
            return holder[self.target]

    asset_app = create_asset_app(asset_settings(table_prefix=table_prefix),
                                 risk_peer=LazyPeer("risks", "assets") if wired else None)
    risk_app = create_risk_app(RiskAssessmentSettings.from_env("risk-assessment", table_prefix=table_prefix),
                               asset_peer=LazyPeer("assets", "risks") if wired else None)
    with TestClient(asset_app, raise_server_exceptions=False) as assets, \
            TestClient(risk_app, raise_server_exceptions=False) as risks:
        holder.update(assets=assets, risks=risks)
        yield Services(assets, risks)


@pytest.fixture(scope="module")
def services(_moto_stack: None) -> Iterator[Services]:
    with graph_services() as svc:
        yield svc

def public_plain(item: dict[str, Any]) -> Any:
    """A legacy table row as the service renders it (Decimals → numbers, ``_`` attributes dropped)."""
    from chariot_migrate.legacy.http import plain

    return plain(item)
