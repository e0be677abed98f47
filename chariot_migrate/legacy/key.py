"""``POST /key`` (mint an API key; the secret is shown once) and ``DELETE /key``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from chariot_migrate.model.apikeys import LOOKUP_PARTITION, hash_secret, new_salt, new_secret
from chariot_migrate.model.keys import api_key_key
from chariot_migrate.model.requests import ApiKeyAdd, KeyBody

from . import store
from .auth import Caller, secured
from .http import Request, dispatch, not_found

DEFAULT_LIFETIME = timedelta(days=90)


def create(caller: Caller, name: str, expires: str | None, body: dict[str, Any] | None = None,
           role: str | None = None) -> dict[str, Any]:
    key_id = caller.adopt(body, "id", str(uuid.uuid4()))
    expires = expires or (datetime.now(UTC) + DEFAULT_LIFETIME).strftime("%Y-%m-%dT%H:%M:%SZ")
    # A replay carries either the primary's hash+salt or the secret it showed; never mint anew.
    salt = caller.adopt(body, "_salt", None) or caller.adopt(body, "salt", None)
    digest = caller.adopt(body, "_hash", None) or caller.adopt(body, "secret_hash", None)
    secret = None
    if not (salt and digest):
        secret = caller.adopt(body, "secret", None) or new_secret()
        salt = new_salt()
        digest = hash_secret(secret, salt)
    now = caller.stamp(body, "created")
    record = {"username": caller.username, "key": api_key_key(key_id), "id": key_id, "name": name,
              "creator": caller.principal, "created": now, "updated": now, "expires": expires,
              "status": "A", "role": role or caller.role, "_salt": salt, "_hash": digest}
    store.put(record)
    store.put(record | {"username": LOOKUP_PARTITION, "owner": caller.username})
    return record | ({"secret": secret} if secret and not caller.replay else {})


def _add(req: Request, caller: Caller) -> Any:
    body = req.body_dict()
    m = req.model(ApiKeyAdd, body)
    return create(caller, m.name, m.expires, body)


def _delete(req: Request, caller: Caller) -> Any:
    body = req.body_dict()
    m = req.model(KeyBody, body)
    record = store.get(caller.username, m.key)
    if not record or not m.key.startswith("#key#"):
        raise not_found(f"API key {m.key} not found")
    now = caller.stamp(body)
    record = dict(record) | {"status": "D", "deleted": now, "deleter": caller.principal, "updated": now}
    store.put(record)
    lookup = store.get(LOOKUP_PARTITION, m.key)
    if lookup:
        store.put(dict(lookup) | {"status": "D", "deleted": now})
    return record


ROUTES = {("POST", "/key"): _add, ("DELETE", "/key"): _delete}


@secured
def handler(req: Request, caller: Caller) -> Any:
    return dispatch(req, ROUTES, caller)
