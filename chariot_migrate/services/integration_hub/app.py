"""integration-hub (phase 5): integrations on ``/account/{member}`` and the inbound webhook."""

from __future__ import annotations

import os

import httpx
from fastapi import FastAPI

from chariot_migrate.model.clock import now_iso

from ..kit.breaker import BreakerConfig
from ..kit.chariot import create_chariot_app
from ..kit.peer_env import peer_url_overrides
from ..kit.settings import ChariotSettings
from ..kit.tables import GSI_FIELDS, LegacyShapedTable
from .peers import HttpHookPeers, MissingHookPeers
from .routes import router
from .store import INTEGRATIONS_TABLE, table_specs


class IntegrationHubSettings(ChariotSettings):
    notification_url: str | None = None
    asset_url: str | None = None
    risk_url: str | None = None
    peer_timeout_s: float = 5.0
    breaker_failures: int = 5  # consecutive failures that open a peer's circuit
    breaker_cooldown_s: float = 10.0

    @classmethod
    def from_env(cls, service: str = "integration-hub", env=None, **overrides):
        env = os.environ if env is None else env
        return super().from_env(service, env, **peer_url_overrides(service, env, overrides))


def health_check(base_url: str):
    """Ready only when the peer answers its /health (the webhook cannot work without it)."""

    async def check() -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:
            (await client.get(f"{base_url}/health")).raise_for_status()

    return check


def create_app(settings: IntegrationHubSettings | None = None, *, peers: object | None = None) -> FastAPI:
    settings = settings or IntegrationHubSettings.from_env("integration-hub")

    async def startup(app: FastAPI) -> None:
        app.state.clock = now_iso
        app.state.tables = {INTEGRATIONS_TABLE: LegacyShapedTable(app.state.repos[INTEGRATIONS_TABLE].sync, GSI_FIELDS)}
        chosen = peers
        notification_url, asset_url, risk_url = settings.notification_url, settings.asset_url, settings.risk_url
        urls = (notification_url, asset_url, risk_url)
        if chosen is None and notification_url and asset_url and risk_url and app.state.service_token:
            chosen = HttpHookPeers(notification_url, asset_url, risk_url, app.state.service_token,
                                   timeout=settings.peer_timeout_s,
                                   breaker=BreakerConfig(failure_threshold=settings.breaker_failures,
                                                         cooldown=settings.breaker_cooldown_s))
        app.state.peers = chosen or MissingHookPeers()
        if isinstance(chosen, HttpHookPeers):
            for peer, url in zip(("notification", "asset-discovery", "risk-assessment"), urls, strict=True):
                app.state.ready_checks[peer] = health_check(url or "")  # all three set: chosen above

    async def shutdown(app: FastAPI) -> None:
        if isinstance(getattr(app.state, "peers", None), HttpHookPeers):
            await app.state.peers.aclose()

    return create_chariot_app("integration-hub", routers=[router], tables=table_specs(), settings=settings,
                              on_startup=[startup], on_shutdown=[shutdown])
