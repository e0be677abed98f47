"""The reporting service (phase 7): counts, statistics, files, exports; read models from events."""

from __future__ import annotations

import os

from anyio import to_thread
from fastapi import FastAPI

from chariot_migrate.model.clock import now_iso

from ..kit.chariot import create_chariot_app
from ..kit.events import Event
from ..kit.peer_env import UP_NAMES, peer_url_overrides
from ..kit.settings import ChariotSettings
from ..kit.tables import GSI_FIELDS, LegacyShapedTable
from .blobs import Blobs
from .owners import OwnerRows
from .readmodel import CONSUMES, ReadModel
from .routes import router
from .store import ENTITIES_TABLE, EXPORTS_TABLE, FILES_TABLE, STATISTICS_TABLE, table_specs


class ReportingSettings(ChariotSettings):
    # Blobs stay in the legacy bucket during the migration (see blobs.py); legacy's CHARIOT_BUCKET
    # is the fallback name.
    files_bucket: str = "chariot-files"
    # The owners of the counted entities (see owners.py); all three, or the event-fed read model answers.
    asset_url: str | None = None
    risk_url: str | None = None
    capabilities_url: str | None = None
    peer_timeout_s: float = 5.0

    @classmethod
    def from_env(cls, service: str = "reporting", env=None, **overrides):
        env = os.environ if env is None else env
        overrides = peer_url_overrides(service, env, overrides, {**UP_NAMES, "capabilities_url": "CAPABILITIES_URL"})
        if "files_bucket" not in overrides and not any(
                v in env for v in ("CHARIOT_REPORTING_FILES_BUCKET", "FILES_BUCKET")) and "CHARIOT_BUCKET" in env:
            overrides["files_bucket"] = env["CHARIOT_BUCKET"]
        return super().from_env(service, env, **overrides)


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings.from_env("reporting")

    async def startup(app: FastAPI) -> None:
        app.state.clock = now_iso
        app.state.tables = {n: LegacyShapedTable(app.state.repos[n].sync, GSI_FIELDS)
                            for n in (FILES_TABLE, STATISTICS_TABLE, ENTITIES_TABLE, EXPORTS_TABLE)}
        app.state.blobs = Blobs(settings.files_bucket, endpoint_url=settings.aws_endpoint_url,
                                region=settings.aws_region)
        app.state.readmodel = ReadModel(app.state.tables[ENTITIES_TABLE], app.state.tables[STATISTICS_TABLE])
        app.state.owners = OwnerRows.connect(
            {"asset-discovery": settings.asset_url, "risk-assessment": settings.risk_url,
             "capabilities": settings.capabilities_url},
            app.state.service_token, timeout=settings.peer_timeout_s) if app.state.service_token else None

        async def apply(event: Event) -> None:  # exactly once: the read model marks it in the same transaction
            await to_thread.run_sync(lambda: app.state.readmodel.apply(event))

        app.state.apply_event = apply

    async def on_event(event: Event, app: FastAPI) -> None:
        await app.state.apply_event(event)

    async def shutdown(app: FastAPI) -> None:
        if getattr(app.state, "owners", None) is not None:
            await app.state.owners.aclose()

    return create_chariot_app("reporting", routers=[router], tables=table_specs(), settings=settings,
                              subscriptions=[("reporting", list(CONSUMES), on_event)],
                              on_startup=[startup], on_shutdown=[shutdown])
