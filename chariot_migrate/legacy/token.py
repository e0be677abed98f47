"""``GET /token``: exchange an API key (X-GUARD-API-KEY-ID / -SECRET) for a Chariot JWT."""

from __future__ import annotations

from typing import Any

from chariot_migrate.model import tokens
from chariot_migrate.model.apikeys import LOOKUP_PARTITION, expired, secret_matches
from chariot_migrate.model.keys import api_key_key

from . import signing, store
from .http import ApiError, Request, api

EXPIRES_IN = tokens.DEFAULT_TTL_S


@api
def handler(req: Request) -> Any:
    if req.method != "GET":
        raise ApiError(405, f"method {req.method} is not allowed on /token")
    key_id = (req.header("x-guard-api-key-id") or "").strip()
    secret = req.header("x-guard-api-key-secret") or ""
    if not key_id or not secret:
        raise ApiError(401, "missing X-GUARD-API-KEY-ID or X-GUARD-API-KEY-SECRET header")
    record = store.get(LOOKUP_PARTITION, api_key_key(key_id))
    if not record or record.get("status") != "A" or expired(record.get("expires")):
        raise ApiError(401, "invalid API key")
    if not secret_matches(secret, record):
        raise ApiError(401, "invalid API key")
    token = tokens.issue(str(record["owner"]), signing.load(), ttl_s=EXPIRES_IN)
    return {"token": token, "expires_in": EXPIRES_IN}
