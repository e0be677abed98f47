"""``create_app()``: the configuration service
(uvicorn --factory chariot_migrate.services.configuration.app:create_app)."""

from __future__ import annotations

from fastapi import FastAPI

from chariot_migrate.services.kit.chariot import create_chariot_app
from chariot_migrate.services.kit.settings import ChariotSettings

from .routes import router
from .store import TABLES, ConfigurationStore

SERVICE = "configuration"


def create_app(settings: ChariotSettings | None = None) -> FastAPI:
    settings = settings or ChariotSettings.from_env(SERVICE)

    def startup(app: FastAPI) -> None:
        app.state.store = ConfigurationStore.from_app(app)

    return create_chariot_app(SERVICE, routers=[router], tables=TABLES, settings=settings, on_startup=[startup])
