"""The Lambda-authorizer-like check every handler but token and hook runs first.

Bearer JWT verified with the public signing key → principal; an ``account`` header is an
assume-role, honoured only for collaborators of that account (their role applies) → the
effective username partitions all data. The trusted replay identity (dual writes) may act for
any account and, with ``X-Migrate-Replay: 1``, writes adopt ids/timestamps from the primary's
answer (``X-Migrate-Primary-Result``) and the body.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chariot_migrate.model import tokens
from chariot_migrate.model.clock import now_iso
from chariot_migrate.model.keys import account_key
from chariot_migrate.model.replay import HEADER as REPLAY_HEADER
from chariot_migrate.model.replay import author
from chariot_migrate.model.replay import primary_entity as replay_entity

from . import aws, signing, store
from .http import ApiError, Request, api

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(slots=True)
class Caller:
    principal: str  # who the token says is calling
    username: str  # whose data this request reads and writes
    role: str  # admin | analyst | readonly
    replay: bool = False  # a dual-write replay from the trusted identity
    now: str = ""
    primary: dict[str, Any] = field(default_factory=dict)  # a replay's primary answer (generated values)

    def adopt(self, body: dict[str, Any] | None, name: str, default: Any) -> Any:
        """Replays keep the primary's generated value (key, created, ids…) — from the primary's
        answer first, then the body; others mint theirs."""
        if self.replay:
            for source in (self.primary, body):
                if source and source.get(name) not in (None, ""):
                    return source[name]
        return default

    def stamp(self, body: dict[str, Any] | None = None, field: str = "updated") -> str:
        return self.adopt(body, field, self.now)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized")


def authenticate(req: Request) -> Caller:
    header = req.header("authorization") or ""
    scheme, _, token = header.partition(" ")
    if not token:
        token, scheme = scheme, "bearer"
    if scheme.lower() != "bearer" or not token:
        raise unauthorized()
    try:
        claims = tokens.verify(token.strip(), signing.load().public_pem)
    except tokens.TokenError:
        raise unauthorized() from None
    principal = str(claims.get("email") or claims["sub"])
    is_replay_identity = principal == aws.replay_principal()
    replay = is_replay_identity and req.header("x-migrate-replay") == "1"
    account = (req.header("account") or "").strip()
    if not account or account == principal:
        return Caller(principal, principal, "admin", replay, now_iso())
    if is_replay_identity:
        primary = replay_entity(req.header(REPLAY_HEADER)) if replay else {}
        return Caller(author(primary) or principal, account, "admin", replay, now_iso(), primary)
    row = store.get(account, account_key(account, principal, ""))
    if not row or not row.get("role"):
        raise ApiError(403, f"Forbidden: {principal} is not a collaborator of {account}")
    return Caller(principal, account, str(row["role"]), replay, now_iso())


def secured(fn: Callable[[Request, Caller], Any] | None = None, *,
            read_routes: frozenset[tuple[str, str]] = frozenset()) -> Any:
    """``@secured`` handler ``fn(req, caller)``; readonly callers may only read."""

    def wrap(f: Callable[[Request, Caller], Any]) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        @functools.wraps(f)
        def inner(req: Request) -> Any:
            caller = authenticate(req)
            is_read = req.method in READ_METHODS or (req.method, req.resource) in read_routes
            if caller.role == "readonly" and not is_read:
                raise ApiError(403, "Forbidden: the readonly role cannot write")
            return f(req, caller)

        return api(inner)

    return wrap(fn) if fn is not None else wrap
