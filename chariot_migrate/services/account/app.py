"""``create_app()``: the account service (uvicorn --factory chariot_migrate.services.account.app:create_app)."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import FastAPI

from chariot_migrate.services.common import ChariotSettings, create_chariot_app

from .events import SUBSCRIPTIONS
from .routes import router
from .store import TABLES, AccountStore

SERVICE = "account"


def create_app(settings: ChariotSettings | None = None) -> FastAPI:
    settings = settings or ChariotSettings.from_env(SERVICE)
    holder: dict[str, Any] = {}

    async def membership(account: str, principal: str) -> str | None:
        # The account service answers assume-role from its own table (no network hop).
        store: AccountStore = holder["app"].state.store
        return await to_thread.run_sync(lambda: store.role_of(account, principal))

    def startup(app: FastAPI) -> None:
        app.state.store = AccountStore.from_app(app)

    app = create_chariot_app(
        SERVICE,
        routers=[router],
        tables=TABLES,
        settings=settings,
        subscriptions=SUBSCRIPTIONS,
        on_startup=[startup],
        membership=membership,
    )
    holder["app"] = app
    return app
