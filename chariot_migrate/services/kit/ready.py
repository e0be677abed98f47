"""Ready-check factories for the usual dependencies (pass them to ``create_service_app``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from anyio import to_thread


def dynamodb_tables_check(client_factory: Callable[[], Any], tables: Sequence[str]) -> Callable[[], Any]:
    """Ready when every table exists and is ACTIVE (boto3 is blocking: run it in a thread)."""

    def check() -> None:
        client = client_factory()
        for table in tables:
            status = client.describe_table(TableName=table)["Table"].get("TableStatus", "ACTIVE")
            if status != "ACTIVE":
                raise RuntimeError(f"table {table} is {status}")

    async def run() -> None:
        await to_thread.run_sync(check)

    return run


def redis_check(redis: Any) -> Callable[[], Any]:
    """Ready when Redis answers PING (``redis.asyncio.Redis``)."""

    async def run() -> None:
        if not await redis.ping():
            raise RuntimeError("PING failed")

    return run


def bus_check(bus: Any) -> Callable[[], Any]:
    """Ready when the event bus reports healthy (``await bus.healthy()``)."""

    async def run() -> None:
        await bus.healthy()

    return run
