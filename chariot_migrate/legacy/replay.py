"""The bearer token of the trusted replay identity, for the proxy's dual-write worker.

Both the legacy authorizer and the new services accept replayed writes (and adopt the primary's
generated ids and timestamps) only from this principal, with ``X-Migrate-Replay: 1``.
"""

from __future__ import annotations

import os
import threading
import time

from chariot_migrate.model import tokens

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
