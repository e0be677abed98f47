"""The configuration service publishes ``config.changed`` on every change, so other services
hot-reload settings and feature flags (see :class:`chariot_migrate.services.kit.flags.FlagCache`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI

from chariot_migrate.services.kit import Event

log = logging.getLogger("chariot.configuration.events")


def change_event(account: str, scope: str, row: Mapping[str, Any], *, deleted: bool = False) -> Event:
    """The ``config.changed`` event for a stored or deleted row (pure)."""
    data: dict[str, Any] = {"key": row["key"], "name": row["name"], "scope": scope}
    if deleted:
        data["deleted"] = True
    else:
        data["value"] = row.get("value")
    return Event.new("config.changed", account, data)


async def publish_change(app: FastAPI, account: str, scope: str, row: Mapping[str, Any], *,
                         deleted: bool = False) -> None:
    try:
        await app.state.bus.publish(change_event(account, scope, row, deleted=deleted))
    except Exception as exc:  # the write is stored; readers fall back to their loader / TTL
        log.warning("config.changed publish failed", extra={"error": type(exc).__name__})
