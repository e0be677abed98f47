"""The configuration service as a real process next to the account service (membership over real
HTTP with a service token), on a moto server and Redis; feature flags hot-reload in another
process's FlagCache through config.changed on Redis Streams."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
import redis.asyncio as aioredis
from chariot_services_procs import REDIS_URL, ROOT, bearer, clean_redis, moto_estate, service_env
from conftest import Proc, cli

from chariot_migrate.services.kit import RedisStreamsBus
from chariot_migrate.services.kit.flags import FlagCache

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def estate():
    with moto_estate() as e:
        yield e


@pytest.fixture
def services(estate):
    prefix = f"it{uuid.uuid4().hex[:8]}-"
    routes = str(ROOT / "routes.yaml")
    started = []
    try:
        account = Proc(cli("service", "run", "account", "--port", "0", "--routes", routes),
                       env=service_env(estate, prefix))
        started.append(account)
        config = Proc(cli("service", "run", "configuration", "--port", "0", "--routes", routes),
                      env=service_env(estate, prefix, ACCOUNT_URL=account.url))
        started.append(config)
        account.wait_http("/health")
        config.wait_http("/health")
        yield account, config, prefix
    finally:
        for p in reversed(started):
            p.stop()
        clean_redis(prefix)


async def test_settings_membership_and_flag_hot_reload(estate, services):
    account, config, prefix = services
    key = estate["key"]
    owner, reader = f"o{uuid.uuid4().hex[:6]}@example.com", f"r{uuid.uuid4().hex[:6]}@example.com"
    flags = FlagCache()
    redis = aioredis.from_url(REDIS_URL)
    bus = RedisStreamsBus(redis, prefix=f"{prefix}chariot:", block=0.1)
    bus.subscribe(f"flags-{uuid.uuid4().hex[:6]}", ["config.changed"], flags.handle)
    await bus.start()
    try:
        async with httpx.AsyncClient(base_url=config.url, timeout=10) as http:
            assert (await http.get("/ready")).status_code == 200
            put = await http.put("/setting", json={"name": "beta", "value": "true"}, headers=bearer(key, owner))
            assert put.status_code == 200 and put.json()["key"] == "#setting#beta"
            for _ in range(100):  # hot reload: the other process's cache sees the change
                if await flags.enabled(owner, "beta"):
                    break
                await asyncio.sleep(0.05)  # why: an async poll's interval (conftest.eventually is sync)
            assert await flags.enabled(owner, "beta")
            # assume-role: the configuration service asks the account service over HTTP
            async with httpx.AsyncClient(base_url=account.url, timeout=10) as acc:
                linked = await acc.post(f"/account/{reader}", json={"role": "readonly"}, headers=bearer(key, owner))
                assert linked.status_code == 200
            read = await http.get("/my", params={"key": "#setting#"}, headers=bearer(key, reader, account=owner))
            assert read.status_code == 200 and [s["name"] for s in read.json()["settings"]] == ["beta"]
            write = await http.put("/setting", json={"name": "beta", "value": "false"},
                                   headers=bearer(key, reader, account=owner))
            assert (write.status_code, write.json()) == (403, {"message": "Forbidden: the readonly role cannot write"})
            eve = await http.get("/my", params={"key": "#setting#"}, headers=bearer(key, "eve@example.com", account=owner))
            assert eve.status_code == 403
            gone = await http.request("DELETE", "/setting", json={"name": "beta"}, headers=bearer(key, owner))
            assert gone.status_code == 200
            for _ in range(100):
                if not await flags.enabled(owner, "beta"):
                    break
                await asyncio.sleep(0.05)  # why: an async poll's interval (conftest.eventually is sync)
            assert await flags.get(owner, "beta") is None
            schema = await http.get("/schema", headers=bearer(key, owner))
            assert schema.status_code == 200 and "setting" in schema.json()
    finally:
        await bus.stop()
        await redis.aclose()
