"""What the proxy's dual write needs from the Chariot estate: the bearer token of the trusted
replay identity, and the primary's answer as the outbox may keep it.

Both the legacy authorizer and the new services accept replayed writes (and adopt the primary's
generated ids and timestamps) only from this principal, with ``X-Migrate-Replay: 1``.
"""

from __future__ import annotations

import json
import os
import threading
import time

from chariot_migrate.model import apikeys, tokens

from . import aws, signing

_lock = threading.Lock()
_cached: tuple[str, float] | None = None


def replay_token(ttl_s: int = 900) -> str:
    """A cached RS256 token for the replay principal (re-issued a minute before it expires)."""
    global _cached
    with _lock:
        if _cached is None or _cached[1] - 60 < time.time():
            # `up` tells the proxy where moto is; boto3 reads AWS_ENDPOINT_URL.
            endpoint = os.environ.get("CHARIOT_MIGRATE_LEGACY_ENDPOINT_URL")
            if endpoint and not os.environ.get("AWS_ENDPOINT_URL"):
                os.environ["AWS_ENDPOINT_URL"] = endpoint
            token = tokens.issue(aws.replay_principal(), signing.load(), ttl_s=ttl_s)
            _cached = (token, time.time() + ttl_s)
        return _cached[0]


def protect_primary(body: bytes) -> bytes:
    """``dual_write.primary_filter``: an answer that shows a freshly minted API-key secret
    (``POST /key``) keeps, instead of the secret, a salt and the secret's hash under that salt
    (``salt``/``secret_hash``, which both sides adopt on replay). The outbox and the replay's
    ``X-Migrate-Primary-Result`` never carry the plaintext, and the key verifies on both sides."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body
    if not isinstance(doc, dict) or not isinstance(doc.get("secret"), str):
        return body
    salt = apikeys.new_salt()
    kept = {k: v for k, v in doc.items() if k != "secret"}
    return json.dumps(kept | {"salt": salt, "secret_hash": apikeys.hash_secret(doc["secret"], salt)}).encode()
