"""``create_app()``: the account service (uvicorn --factory chariot_migrate.services.account.app:create_app)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import boto3
from anyio import to_thread
from fastapi import FastAPI

from chariot_migrate.services.kit.aws import DYNAMODB_ENV
from chariot_migrate.services.kit.chariot import create_chariot_app
from chariot_migrate.services.kit.partition_cache import invalidate_partitions
from chariot_migrate.services.kit.plain_store import PlainStore
from chariot_migrate.services.kit.settings import ChariotSettings

from .events import SUBSCRIPTIONS
from .routes import router
from .store import LEGACY, MY_TABLES, TABLES, AccountStore

SERVICE = "account"


def legacy_keys_store(env: Mapping[str, str], region: str) -> PlainStore | None:
    """The legacy table, read for API keys this service has not seen yet (lazy migration).

    On only inside a migration (``CHARIOT_MIGRATE_LEGACY_ENDPOINT_URL`` set, as ``up`` does) or
    with ``LEGACY_TABLE``: keys provisioned straight into the legacy table keep working for
    ``/token`` after the shift, and are adopted on first use."""
    endpoint = env.get("CHARIOT_MIGRATE_LEGACY_ENDPOINT_URL")
    table = env.get("CHARIOT_ACCOUNT_LEGACY_TABLE") or env.get("LEGACY_TABLE")
    if not table and not endpoint:
        return None
    client = boto3.client("dynamodb", endpoint_url=env.get(DYNAMODB_ENV) or endpoint or env.get("AWS_ENDPOINT_URL"),
                          region_name=region)
    return PlainStore(client, {LEGACY: table or env.get("CHARIOT_TABLE", "chariot")})


def create_app(settings: ChariotSettings | None = None) -> FastAPI:
    settings = settings or ChariotSettings.from_env(SERVICE)
    holder: dict[str, Any] = {}

    async def membership(account: str, principal: str) -> str | None:
        # The account service answers assume-role from its own table (no network hop).
        store: AccountStore = holder["app"].state.store
        return await to_thread.run_sync(lambda: store.role_of(account, principal))

    def startup(app: FastAPI) -> None:
        app.state.store = AccountStore.from_app(app)
        # Every put/delete (routes, replays, the integration.linked handler, lazy key adoption)
        # goes through this store, so this one hook keeps GET /my's cached partitions current.
        app.state.store.after_write = invalidate_partitions(app.state.cache, MY_TABLES)
        app.state.legacy_keys = legacy_keys_store(os.environ, settings.aws_region)

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
