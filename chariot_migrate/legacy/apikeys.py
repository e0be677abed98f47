"""API-key secrets: minted once, stored only as a salted hash, looked up by key id at /token."""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets
from typing import Any

# A lookup partition (id → owner) so /token can find a key without knowing its account.
LOOKUP_PARTITION = "#apikeys"


def new_secret() -> str:
    return _secrets.token_urlsafe(32)


def new_salt() -> str:
    return _secrets.token_hex(16)


def hash_secret(secret: str, salt: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def secret_matches(secret: str, record: dict[str, Any]) -> bool:
    salt, digest = record.get("_salt"), record.get("_hash")
    if not salt or not digest or not secret:
        return False
    return hmac.compare_digest(hash_secret(secret, str(salt)), str(digest))
