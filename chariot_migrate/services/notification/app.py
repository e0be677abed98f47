"""The notification service (phase 6): webhook/alert rows and outbound alert delivery."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from chariot_migrate.model.clock import now_iso

from ..kit.chariot import create_chariot_app
from ..kit.events import Event
from ..kit.settings import ChariotSettings
from ..kit.tables import GSI_FIELDS, LegacyShapedTable
from .delivery import WebhookSender, parse_allowlist
from .notifier import CONSUMES, Notifier
from .routes import router
from .store import ACCOUNTS_TABLE, DELIVERIES_TABLE, table_specs


class NotificationSettings(ChariotSettings):
    notify_allowed_hosts: str = ""  # comma-separated host or host:port; empty = deliver nowhere
    notify_timeout_s: float = 5.0
    notify_attempts: int = 4
    notify_backoff_s: float = 0.2


def create_app(settings: NotificationSettings | None = None, *,
               transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    settings = settings or NotificationSettings.from_env("notification")

    async def startup(app: FastAPI) -> None:
        app.state.clock = now_iso
        app.state.tables = {n: LegacyShapedTable(app.state.repos[n].sync, GSI_FIELDS)
                            for n in (ACCOUNTS_TABLE, DELIVERIES_TABLE)}
        app.state.sender = WebhookSender(parse_allowlist(settings.notify_allowed_hosts),
                                         timeout=settings.notify_timeout_s, attempts=settings.notify_attempts,
                                         base_delay=settings.notify_backoff_s, transport=transport)
        app.state.notifier = Notifier(app.state.tables[ACCOUNTS_TABLE], app.state.tables[DELIVERIES_TABLE],
                                      app.state.sender)

    async def shutdown(app: FastAPI) -> None:
        if getattr(app.state, "sender", None) is not None:
            await app.state.sender.aclose()

    async def on_event(event: Event, app: FastAPI) -> None:
        await app.state.notifier.handle(event)

    return create_chariot_app("notification", routers=[router], tables=table_specs(), settings=settings,
                              subscriptions=[("notification", list(CONSUMES), on_event)],
                              on_startup=[startup], on_shutdown=[shutdown])
