"""What the account service publishes and consumes.

Publishes ``user.action`` for every account change (key created/deleted, collaborator
linked/unlinked) after appending it to its audit trail; consumes ``integration.linked`` (from
integration-hub) into the integration rows of its ``#account#`` read model, so ``GET
/my?key=#account#`` lists people and integrations together like the legacy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from anyio import to_thread
from fastapi import FastAPI

from chariot_migrate.model.keys import account_key
from chariot_migrate.services.kit import Event

from .store import AUDIT, MEMBERS, AccountStore

log = logging.getLogger("chariot.account.events")
CONSUMER_GROUP = "account"

# Audit actions (the ``action`` of user.action events).
KEY_CREATED = "key.created"
KEY_DELETED = "key.deleted"
MEMBER_LINKED = "member.linked"
MEMBER_UNLINKED = "member.unlinked"


def audit_row(event: Event) -> dict[str, Any]:
    """The audit-trail row for one user.action event (pure)."""
    return {
        "username": event.account,
        "key": f"#audit#{event.occurred_at}#{event.id}",
        "event_id": event.id,
        "occurred_at": event.occurred_at,
        "correlation_id": event.correlation_id,
        **{k: v for k, v in event.data.items() if k in ("actor", "action", "target", "role")},
    }


async def record_action(app: FastAPI, account: str, actor: str, action: str, target: str,
                        role: str | None = None) -> Event:
    """Append to the audit trail (durable) and publish ``user.action`` (best effort after that)."""
    data: dict[str, Any] = {"actor": actor, "action": action, "target": target}
    if role in ("admin", "analyst", "readonly"):
        data["role"] = role
    event = Event.new("user.action", account, data)
    store: AccountStore = app.state.store
    await to_thread.run_sync(lambda: store.put(AUDIT, audit_row(event)))
    try:
        await app.state.bus.publish(event)
    except Exception as exc:  # the audit row is written; a bus outage must not fail the change
        log.warning("user.action publish failed", extra={"error": type(exc).__name__, "action": action})
    return event


def integration_row(event: Event) -> dict[str, Any] | None:
    """The ``#account#`` row an ``integration.linked`` event describes (pure); None for people,
    which the account service owns itself.

    ``data``: ``member``, ``linked`` and optionally ``value``, ``config``, ``role``, ``key``,
    ``updated`` (the legacy row's fields; ``key`` defaults to ``#account#<account>#<member>#<value>``).
    """
    data: Mapping[str, Any] = event.data
    member = str(data["member"])
    if "@" in member:
        return None
    value = str(data.get("value") or "")
    key = data.get("key") or account_key(event.account, member, value)
    row: dict[str, Any] = {
        "username": event.account,
        "name": event.account,
        "member": member,
        "config": dict(data.get("config") or {}),
        "updated": data.get("updated") or event.occurred_at[:19] + "Z",
        "ttl": 0,
        "key": key,
        "value": value,
    }
    if data.get("role"):
        row["role"] = data["role"]
    return row


async def on_integration_linked(event: Event, app: FastAPI) -> None:
    row = integration_row(event)
    if row is None:
        return
    store: AccountStore = app.state.store
    if event.data.get("linked"):
        await to_thread.run_sync(lambda: store.put(MEMBERS, row))
    else:
        await to_thread.run_sync(lambda: store.delete(MEMBERS, event.account, row["key"]))


SUBSCRIPTIONS = [(CONSUMER_GROUP, ["integration.linked"], on_integration_linked)]
