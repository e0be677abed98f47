"""``/account/hook`` and ``/account/alert`` rows, byte-compatible with legacy/account.py (pure)."""

from __future__ import annotations

from typing import Any

from chariot_migrate.model.keys import account_key
from chariot_migrate.model.requests import AccountLink

from ..kit.request import bad_request


def link_row(account: str, member: str, m: AccountLink, now: str) -> dict[str, Any]:
    row: dict[str, Any] = {"username": account, "name": account, "member": member, "config": m.config,
                           "updated": now, "ttl": 0}
    if member == "hook":
        if not m.value:
            raise bad_request("the webhook needs a pin in 'value'")
        row["role"] = m.role or "readonly"
    elif m.role:
        row["role"] = m.role
    row["key"] = account_key(account, member, m.value)
    row["value"] = m.value
    return row


def unlink_key(account: str, member: str, m: AccountLink) -> str:
    if m.key:
        if not m.key.startswith(account_key(account, member)):
            raise bad_request(f"key {m.key!r} is not a {member} row of this account")
        return m.key
    return account_key(account, member, m.value)
