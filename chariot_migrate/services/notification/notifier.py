"""Turns ``risk.assessed`` / ``job.completed`` events into webhook deliveries, logged per alert."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from chariot_migrate.model.clock import now_iso
from chariot_migrate.model.keys import account_key

from ..kit.events import Event
from ..kit.tables import LegacyShapedTable
from . import delivery

log = logging.getLogger("chariot.notification")
CONSUMES = ["risk.assessed", "job.completed"]


def delivery_key(event_id: str, alert_key: str) -> str:
    return f"#delivery#{event_id}{alert_key}"


class Notifier:
    def __init__(self, accounts: LegacyShapedTable, deliveries: LegacyShapedTable, sender: delivery.WebhookSender,
                 clock: Callable[[], str] = now_iso) -> None:
        self.accounts, self.deliveries, self.sender, self.clock = accounts, deliveries, sender, clock

    async def handle(self, event: Event) -> list[dict[str, Any]]:
        alerts = await self.accounts.aquery_all(event.account, account_key(event.account, "alert"))
        doc = delivery.event_document(event)
        logged = []
        for alert in alerts:
            if not delivery.matches(alert, event.type, event.data):
                continue
            key = delivery_key(event.id, alert["key"])
            previous = await self.deliveries.aget(event.account, key)
            if previous and previous.get("status") in ("delivered", "refused"):
                continue  # at-least-once bus: a redelivered event is not sent twice
            url = str(alert["config"]["url"])
            try:
                outcome = await self.sender.send(url, delivery.render(alert, doc))
            except delivery.DeliveryRefused as e:
                outcome = delivery.Outcome("refused", 0, error=str(e))
            row = {"username": event.account, "key": key, "event_id": event.id, "event_type": event.type,
                   "alert": alert["key"], "url": delivery.redact_url(url), "status": outcome.status,
                   "attempts": outcome.attempts + int((previous or {}).get("attempts", 0)),
                   "http_status": outcome.http_status, "error": outcome.error, "updated": self.clock()}
            await self.deliveries.aput({k: v for k, v in row.items() if v is not None})
            log.info("alert delivery", extra={"status": outcome.status, "event_type": event.type,
                                              "attempts": outcome.attempts})
            logged.append(row)
        return logged
