"""Account routes: the same contract as the legacy token, key, account (people) and search
functions, plus JWKS and the internal membership/audit API for peer services."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request

from chariot_migrate.model import apikeys, tokens
from chariot_migrate.model.clock import now_iso
from chariot_migrate.model.keys import account_key, api_key_key
from chariot_migrate.model.requests import AccountLink, ApiKeyAdd, KeyBody, check_role
from chariot_migrate.services.kit import Caller, require_internal
from chariot_migrate.services.kit.auth import caller, chariot_caller
from chariot_migrate.services.kit.openapi import MY_QUERY, openapi_doc
from chariot_migrate.services.kit.partition_cache import cached_my
from chariot_migrate.services.kit.plain_store import parse_my_query, plain
from chariot_migrate.services.kit.replay import adopt, replay_values
from chariot_migrate.services.kit.request import ApiError, bad_request, json_body, not_found, parse_model

from .events import KEY_CREATED, KEY_DELETED, MEMBER_LINKED, MEMBER_UNLINKED, record_action
from .store import AUDIT, KEYS, LEGACY, MEMBERS, AccountStore

router = APIRouter()
TOKEN_TTL_S = tokens.DEFAULT_TTL_S
KEY_LIFETIME = timedelta(days=90)
API_KEY_HEADERS = [{"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
                   for name in ("X-GUARD-API-KEY-ID", "X-GUARD-API-KEY-SECRET")]


def _store(request: Request) -> AccountStore:
    return request.app.state.store


async def _run(fn: Any, *args: Any) -> Any:
    return await to_thread.run_sync(lambda: fn(*args))


# ---- GET /token (public) -------------------------------------------------------------------


@router.get("/token", openapi_extra=openapi_doc(query=API_KEY_HEADERS))
async def token(request: Request) -> dict[str, Any]:
    key_id = (request.headers.get("x-guard-api-key-id") or "").strip()
    secret = request.headers.get("x-guard-api-key-secret") or ""
    if not key_id or not secret:
        raise ApiError(401, "missing X-GUARD-API-KEY-ID or X-GUARD-API-KEY-SECRET header")
    record = await _run(_store(request).get, KEYS, apikeys.LOOKUP_PARTITION, api_key_key(key_id))
    if record is None:
        record = await _adopt_legacy_key(request, api_key_key(key_id))
    if not apikeys.usable(record, secret):
        raise ApiError(401, "invalid API key")
    signing_key = request.app.state.signing_key
    if signing_key is None:
        raise ApiError(503, "token signing is not available: the signing key could not be read")
    assert record is not None
    return {"token": tokens.issue(str(record["owner"]), signing_key, ttl_s=TOKEN_TTL_S), "expires_in": TOKEN_TTL_S}


async def _adopt_legacy_key(request: Request, key: str) -> dict[str, Any] | None:
    """A key only the legacy table knows (provisioned there, not backfilled yet): copy its two
    rows (lookup + owner's) into this service's table, unchanged, and use it."""
    legacy = getattr(request.app.state, "legacy_keys", None)
    if legacy is None or not key.removeprefix("#key#"):
        return None
    try:
        lookup = await _run(legacy.get, LEGACY, apikeys.LOOKUP_PARTITION, key)
        owned = await _run(legacy.get, LEGACY, str(lookup["owner"]), key) if lookup and lookup.get("owner") else None
    except Exception:  # noqa: BLE001 — no legacy table reachable: the key is simply unknown
        return None
    if not lookup or not owned:
        return None
    store = _store(request)
    await _run(store.put, KEYS, owned)
    await _run(store.put, KEYS, lookup)
    return lookup


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> dict[str, Any]:
    key = request.app.state.signing_key
    return tokens.jwks([key.public_pem] if key is not None else [])


# ---- POST/DELETE /key ------------------------------------------------------------------------


def new_key_record(who: Caller, name: str, expires: str | None, replay: dict[str, Any] | None,
                   now: str) -> tuple[dict[str, Any], str | None]:
    """The stored API-key record and the secret to show once (pure apart from randomness).

    A replay adopts the primary's id, timestamps and hash+salt (or the secret it showed), so
    the key verifies on both sides and no second secret is ever minted."""
    key_id = adopt(replay, "id", str(uuid.uuid4()))
    expires = expires or (datetime.now(UTC) + KEY_LIFETIME).strftime(apikeys.EXPIRES_FORMAT)
    salt = adopt(replay, "_salt", None) or adopt(replay, "salt", None)
    digest = adopt(replay, "_hash", None) or adopt(replay, "secret_hash", None)
    secret = None
    if not (salt and digest):
        secret = adopt(replay, "secret", None) or apikeys.new_secret()
        salt = apikeys.new_salt()
        digest = apikeys.hash_secret(secret, salt)
    created = adopt(replay, "created", now)
    record = {"username": who.account, "key": api_key_key(key_id), "id": key_id, "name": name,
              "creator": who.principal, "created": created, "updated": created, "expires": expires,
              "status": "A", "role": who.role, "_salt": salt, "_hash": digest}
    return record, (secret if replay is None else None)


@router.post("/key", openapi_extra=openapi_doc(ApiKeyAdd))
async def add_key(request: Request, who: Caller = Depends(chariot_caller)) -> Any:
    body = await json_body(request)
    m = parse_model(ApiKeyAdd, body)
    record, secret = new_key_record(who, m.name, m.expires, replay_values(request, body), now_iso())
    store = _store(request)
    await _run(store.put, KEYS, record)
    await _run(store.put, KEYS, record | {"username": apikeys.LOOKUP_PARTITION, "owner": who.account})
    await record_action(request.app, who.account, who.principal, KEY_CREATED, record["key"], who.role)
    return plain(record | ({"secret": secret} if secret else {}))


@router.delete("/key", openapi_extra=openapi_doc(KeyBody))
async def delete_key(request: Request, who: Caller = Depends(chariot_caller)) -> Any:
    body = await json_body(request)
    m = parse_model(KeyBody, body)
    store = _store(request)
    record = await _run(store.get, KEYS, who.account, m.key)
    if not record or not m.key.startswith("#key#"):
        raise not_found(f"API key {m.key} not found")
    now = adopt(replay_values(request, body), "updated", now_iso())
    record = record | {"status": "D", "deleted": now, "deleter": who.principal, "updated": now}
    await _run(store.put, KEYS, record)
    lookup = await _run(store.get, KEYS, apikeys.LOOKUP_PARTITION, m.key)
    if lookup:
        await _run(store.put, KEYS, lookup | {"status": "D", "deleted": now})
    await record_action(request.app, who.account, who.principal, KEY_DELETED, m.key)
    return plain(record)


# ---- POST/DELETE /account/{member} (people) --------------------------------------------------


def _member(member: str) -> str:
    if not member or member == "account" or "#" in member:
        raise bad_request("path must be /account/{member} with a member email or integration name")
    if "@" not in member:
        # The proxy sends integrations, the webhook and alerts to integration-hub / notification.
        raise bad_request(f"member {member!r} is not a person (no '@'): integrations are served by integration-hub")
    return member


def collaborator_row(who: Caller, member: str, link: AccountLink, updated: str) -> dict[str, Any]:
    """The ``#account#<owner>#<member>#`` row a collaborator link stores (pure)."""
    if member == who.account:
        raise bad_request("an account cannot add itself as a collaborator")
    return {"username": who.account, "name": who.account, "member": member, "config": link.config,
            "updated": updated, "ttl": 0, "role": check_role(link.role) or "admin",
            "key": account_key(who.account, member, ""), "value": ""}


@router.post("/account/{member}", openapi_extra=openapi_doc(AccountLink, body_required=False))
async def link_member(member: str, request: Request, who: Caller = Depends(chariot_caller)) -> Any:
    member = _member(member)
    body = await json_body(request, {})
    link = parse_model(AccountLink, body)
    row = collaborator_row(who, member, link, adopt(replay_values(request, body), "updated", now_iso()))
    store = _store(request)
    await _run(store.put, MEMBERS, row)
    # Mirror row so the collaborator sees the accounts it may act for.
    await _run(store.put, MEMBERS, row | {"username": member})
    await record_action(request.app, who.account, who.principal, MEMBER_LINKED, member, row["role"])
    return plain(row)


@router.delete("/account/{member}", openapi_extra=openapi_doc(AccountLink, body_required=False))
async def unlink_member(member: str, request: Request, who: Caller = Depends(chariot_caller)) -> Any:
    member = _member(member)
    body = await json_body(request, {})
    link = parse_model(AccountLink, body)
    if link.key:
        key = link.key
        if not key.startswith(account_key(who.account, member)):
            raise bad_request(f"key {key!r} is not a {member} row of this account")
    else:
        key = account_key(who.account, member, "")
    store = _store(request)
    row = await _run(store.get, MEMBERS, who.account, key)
    if not row:
        raise not_found(f"account {member} is not linked")
    await _run(store.delete, MEMBERS, who.account, key)
    await _run(store.delete, MEMBERS, member, key)
    await record_action(request.app, who.account, who.principal, MEMBER_UNLINKED, member)
    return plain(row)


# ---- GET /my?key=#account#… | #key#… -------------------------------------------------------


def my_table(term: str) -> str:
    """The table ``GET /my?key=<term>`` reads (one of :data:`MY_TABLES`)."""
    return KEYS if term.startswith("#key") else MEMBERS


@router.get("/my", openapi_extra=openapi_doc(query=MY_QUERY))
async def my(request: Request, who: Caller = Depends(caller)) -> Any:
    table = my_table(request.query_params.get("key") or "")
    q = parse_my_query(request, who.account)
    return await cached_my(request.app.state.cache, _store(request), table, q,
                           page_size=request.app.state.settings.page_size)


# ---- internal API (service-to-service tokens only) ------------------------------------------


@router.get("/internal/api/membership")
async def membership(
    request: Request,
    account: str = Query(min_length=1),
    principal: str = Query(min_length=1),
    _: Caller = Depends(require_internal),
) -> dict[str, Any]:
    if account == principal:
        return {"account": account, "principal": principal, "role": "admin"}
    role = await _run(_store(request).role_of, account, principal)
    return {"account": account, "principal": principal, "role": role}


@router.get("/internal/api/audit")
async def audit(
    request: Request,
    account: str = Query(min_length=1),
    limit: int = Query(100, ge=1, le=1000),
    _: Caller = Depends(require_internal),
) -> dict[str, Any]:
    """The account's audit trail, newest first."""
    rows = await _run(lambda: _store(request).query_all(AUDIT, account, "#audit#", limit=limit,
                                                        descending=True))
    return {"events": plain(rows)}
