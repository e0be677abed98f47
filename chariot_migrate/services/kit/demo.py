"""A tiny service built with the kit: the pattern the eight services follow.

Run: ``uvicorn --factory chariot_migrate.services.kit.demo:create_demo_app`` with the env of
:class:`DemoSettings` (``CHARIOT_DEMO_*`` or the common ``AWS_ENDPOINT_URL``, ``REDIS_URL``,
``JWKS_URL``…). Routes: ``POST /asset``, ``GET /asset?key=``, ``GET /my?key=&offset=``,
``DELETE /asset?key=`` (admin), ``GET /whoami``, ``GET /boom`` (an unhandled error, for tests).
"""

from __future__ import annotations

from typing import Any

import boto3
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, Field

from chariot_migrate.aws_resources import dynamodb_endpoint
from chariot_migrate.redis_conn import async_redis

from .app import create_service_app
from .auth import Caller, caller, require_role
from .cache import ReadThroughCache
from .events import Event, InProcessBus, RedisStreamsBus
from .ready import bus_check, dynamodb_tables_check, redis_check
from .repository import AsyncRepository, InvalidCursorError, Repository, TableSpec, ensure_tables
from .settings import ServiceSettings


class DemoSettings(ServiceSettings):
    table: str = "demo-assets"
    # {"<account>": {"<principal>": "<role>"}}: collaborators, as the account service would answer.
    members: dict[str, dict[str, str]] = Field(default_factory=dict)


class AssetIn(BaseModel):
    dns: str = Field(min_length=1, max_length=255)
    name: str = Field(min_length=1, max_length=255)


router = APIRouter()


def _state(request: Request) -> Any:
    return request.app.state


@router.post("/asset", status_code=200)
async def add_asset(body: AssetIn, request: Request, who: Caller = Depends(require_role("analyst"))) -> dict:
    st = _state(request)
    item = {
        "username": who.account,
        "key": f"#asset#{body.dns}#{body.name}",
        "dns": body.dns,
        "name": body.name,
    }
    stored = await st.repo.put(item)
    await st.cache.invalidate(f"{who.account}|{item['key']}")
    await st.bus.publish(
        Event.new("asset.discovered", who.account, {"key": item["key"], "dns": body.dns, "name": body.name})
    )
    return stored


@router.get("/asset")
async def get_asset(request: Request, key: str = Query(min_length=1), who: Caller = Depends(caller)) -> dict:
    st = _state(request)

    async def load() -> dict | None:
        return await st.repo.get(who.account, key)

    item = await st.cache.get_or_load(f"{who.account}|{key}", load)
    if item is None:
        raise HTTPException(404, f"{key} not found")
    return item


@router.delete("/asset")
async def delete_asset(
    request: Request, key: str = Query(min_length=1), who: Caller = Depends(require_role("admin"))
) -> dict:
    st = _state(request)
    old = await st.repo.delete(who.account, key)
    await st.cache.invalidate(f"{who.account}|{key}")
    if old is None:
        raise HTTPException(404, f"{key} not found")
    return old


@router.get("/my")
async def my(
    request: Request,
    key: str = Query("#", min_length=1),
    offset: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    who: Caller = Depends(caller),
) -> dict:
    try:
        page = await _state(request).repo.query(who.account, key, limit=limit, cursor=offset)
    except InvalidCursorError as exc:
        raise HTTPException(400, str(exc)) from None
    out: dict[str, Any] = {"items": page.items}
    if page.cursor:
        out["offset"] = page.cursor
    return out


@router.get("/whoami")
async def whoami(who: Caller = Depends(caller)) -> dict:
    return {"principal": who.principal, "account": who.account, "role": who.role, "internal": who.internal}


@router.get("/boom")
async def boom() -> dict:
    raise RuntimeError("demo failure with Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")


def create_demo_app(settings: DemoSettings | None = None) -> FastAPI:
    settings = settings or DemoSettings.from_env("demo")
    spec = TableSpec(settings.table_prefix + settings.table)

    def ddb() -> Any:
        return boto3.client(
            "dynamodb", endpoint_url=dynamodb_endpoint(settings.aws_endpoint_url), region_name=settings.aws_region
        )

    def membership(account: str, principal: str) -> str | None:
        return settings.members.get(account, {}).get(principal)

    async def startup(app: FastAPI) -> None:
        client = ddb()
        ensure_tables(client, [spec])
        app.state.repo = AsyncRepository(Repository(client, spec))
        app.state.redis = async_redis(settings.redis_url) if settings.redis_url else None
        if settings.event_bus == "redis" and app.state.redis is not None:
            app.state.bus = RedisStreamsBus(app.state.redis, prefix=f"{settings.redis_prefix}demo:")
        else:
            app.state.bus = InProcessBus()
        await app.state.bus.start()
        app.state.cache = ReadThroughCache(app.state.redis, namespace=f"{settings.redis_prefix}demo:cache")
        await app.state.cache.start()
        app.state.ready_checks["dynamodb"] = dynamodb_tables_check(ddb, [spec.name])
        if app.state.redis is not None:
            app.state.ready_checks["redis"] = redis_check(app.state.redis)
        app.state.ready_checks["bus"] = bus_check(app.state.bus)

    async def shutdown(app: FastAPI) -> None:
        await app.state.cache.stop()
        await app.state.bus.stop()
        if app.state.redis is not None:
            await app.state.redis.aclose()

    return create_service_app(
        "demo",
        settings=settings,
        routers=[router],
        on_startup=[startup],
        on_shutdown=[shutdown],
        membership=membership,
    )
