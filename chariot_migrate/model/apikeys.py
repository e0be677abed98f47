"""API-key secrets: minted once, stored only as a salted hash, looked up by key id at ``/token``.

One rule for the legacy ``/key`` and ``/token`` functions and the account service, so keys minted
on either side verify on both."""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# The id → owner lookup partition, so /token can find a key without knowing its account.
LOOKUP_PARTITION = "#apikeys"
EXPIRES_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def new_secret() -> str:
    return _secrets.token_urlsafe(32)


def new_salt() -> str:
    return _secrets.token_hex(16)


def hash_secret(secret: str, salt: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def secret_matches(secret: str, record: Mapping[str, Any]) -> bool:
    salt, digest = record.get("_salt"), record.get("_hash")
    if not salt or not digest or not secret:
        return False
    try:
        return hmac.compare_digest(hash_secret(secret, str(salt)), str(digest))
    except ValueError:  # a malformed salt in the record is a failed match, not a 500
        return False


def expired(expires: str | None, now: datetime | None = None) -> bool:
    """No expiry never expires; an unreadable expiry counts as expired (fail closed)."""
    if not expires:
        return False
    try:
        when = datetime.strptime(expires, EXPIRES_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return True
    return when < (now or datetime.now(UTC))


def usable(record: Mapping[str, Any] | None, secret: str, now: datetime | None = None) -> bool:
    """May this lookup record be exchanged for a token with ``secret``? (pure decision)"""
    return (
        record is not None
        and record.get("status") == "A"
        and not expired(record.get("expires"), now)
        and secret_matches(secret, record)
    )
