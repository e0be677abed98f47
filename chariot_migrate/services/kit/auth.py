"""RS256 JWT verification (JWKS or static key), the ``caller`` dependency and role checks.

Zero trust: every service verifies the caller's token itself. Only RS256 is accepted (``none``
and HMAC algorithms are refused before any key is looked at). The ``account`` header
(assume-role) is honoured only when the pluggable :data:`MembershipLookup` says the principal
is a collaborator of that account; service-to-service tokens carry a separate audience.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Request
from jwt.algorithms import RSAAlgorithm

from .cache import TTLCache
from .settings import ServiceSettings

Role = Literal["admin", "analyst", "readonly"]
ROLE_RANK: dict[str, int] = {"readonly": 0, "analyst": 1, "admin": 2}
ALGORITHMS = ["RS256"]
# A membership lookup answers "which role does `principal` have in `account`?" (None = none).
MembershipLookup = Callable[[str, str], "str | None | Awaitable[str | None]"]


class AuthError(Exception):
    """Authentication or authorisation failed; ``status`` is 401 or 403, ``reason`` is for the client."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Caller:
    principal: str  # the verified identity (email claim, else sub)
    account: str  # the account acted upon (assumed via the `account` header, else the principal)
    role: str  # admin | analyst | readonly
    internal: bool = False  # a service-to-service token
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


class KeySource:
    """Resolves a ``kid`` to an RSA public key. Static (dict/PEM) or fetched from a JWKS URL."""

    def __init__(
        self,
        *,
        jwks_url: str | None = None,
        jwks: Mapping[str, Any] | None = None,
        public_key_pem: str | None = None,
        cache_seconds: float = 300.0,
        min_refresh_seconds: float = 5.0,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (jwks_url or jwks or public_key_pem):
            raise ValueError("a KeySource needs jwks_url, jwks or public_key_pem")
        self.jwks_url = jwks_url
        self.cache_seconds = cache_seconds
        self.min_refresh_seconds = min_refresh_seconds
        self._http = http
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._pem_key: Any = None
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        if jwks:
            self._keys = _parse_jwks(jwks)
        if public_key_pem:
            self._pem_key = load_pem_public_key(public_key_pem.encode())

    async def key_for(self, kid: str | None) -> Any:
        if kid and kid in self._keys and not self._stale():
            return self._keys[kid]
        if self.jwks_url and (kid not in self._keys or self._stale()):
            await self._refresh(force=kid not in self._keys)
        if kid and kid in self._keys:
            return self._keys[kid]
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        if self._pem_key is not None:
            return self._pem_key
        raise AuthError(401, "token signed with an unknown key")

    def _stale(self) -> bool:
        return bool(self.jwks_url) and (
            self._fetched_at is None or self._clock() - self._fetched_at > self.cache_seconds
        )

    async def _refresh(self, force: bool) -> None:
        if self.jwks_url is None:  # static keys only: nothing to fetch
            return
        jwks_url = self.jwks_url
        async with self._lock:
            now = self._clock()
            # An unknown kid forces a refresh (key rotation), but not more often than
            # min_refresh_seconds, so garbage kids cannot hammer the JWKS endpoint.
            if self._fetched_at is not None:
                age = now - self._fetched_at
                if age < self.min_refresh_seconds or (not force and age <= self.cache_seconds):
                    return
            client = self._http or httpx.AsyncClient(timeout=5.0)
            try:
                resp = await client.get(jwks_url)
                resp.raise_for_status()
                self._keys = _parse_jwks(resp.json())
                self._fetched_at = now
            except (httpx.HTTPError, ValueError) as exc:
                if not self._keys:
                    raise AuthError(401, f"cannot fetch signing keys: {type(exc).__name__}") from None
                self._fetched_at = now  # keep serving the cached keys; retry after min_refresh
            finally:
                if self._http is None:
                    await client.aclose()


def _parse_jwks(jwks: Mapping[str, Any]) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for i, jwk in enumerate(jwks.get("keys", [])):
        if jwk.get("kty") != "RSA":
            continue
        keys[jwk.get("kid") or f"key-{i}"] = RSAAlgorithm.from_jwk(json.dumps(jwk))
    return keys


class TokenVerifier:
    """Verifies RS256 JWTs: signature, exp, nbf, iss and aud (one of ``audiences``).

    A token that verified is remembered for ``cache_seconds`` (never past its ``exp``): clients
    send the same token on every call, and the RSA check was ~0.1–0.2 ms of each request. The
    price is that a signing key withdrawn from the JWKS stops being honoured up to that long later.
    """

    def __init__(self, keys: KeySource, *, issuer: str, audiences: list[str], leeway: float = 30.0,
                 cache_seconds: float = 60.0, cache_entries: int = 4096,
                 clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audiences = audiences
        self.leeway = leeway
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._verified: TTLCache[dict[str, Any]] = TTLCache(cache_entries, cache_seconds, clock=clock)

    async def verify(self, token: str) -> dict[str, Any]:
        claims = self._verified.get(token)
        if claims is not None and claims["exp"] + self.leeway > self._clock():
            return dict(claims)  # a copy: callers may add to what they got
        claims = await self._verify(token)
        ttl = min(self.cache_seconds, float(claims["exp"]) + self.leeway - self._clock())
        if self.cache_seconds > 0 and ttl > 0:
            self._verified.set(token, dict(claims), ttl)
        return claims

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError(401, "malformed bearer token") from None
        if header.get("alg") not in ALGORITHMS:
            raise AuthError(401, f"token algorithm {header.get('alg')!r} is not allowed (RS256 only)")
        key = await self.keys.key_for(header.get("kid"))
        try:
            return jwt.decode(
                token,
                key=key,
                algorithms=ALGORITHMS,
                audience=self.audiences,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(401, "token has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError(401, "token is not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise AuthError(401, "token audience is not accepted") from None
        except jwt.InvalidIssuerError:
            raise AuthError(401, "token issuer is not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(401, f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthError(401, "token signature is invalid") from None
        except jwt.PyJWTError:
            raise AuthError(401, "token is invalid") from None


async def _lookup(membership: MembershipLookup | None, account: str, principal: str) -> str | None:
    if membership is None:
        return None
    result = membership(account, principal)
    if inspect.isawaitable(result):
        result = await result
    return result


@dataclass(frozen=True)
class AuthRules:
    """How strictly a caller is resolved, and what failures say. The defaults are the kit's own
    (descriptive messages); :data:`LEGACY_RULES` is what Chariot's legacy authorizer does."""

    bare_token: bool = False  # accept ``Authorization: <token>`` without ``Bearer``
    unauthorized: str | None = None  # when set, every 401 says only this
    account_case_sensitive: bool = False  # the ``account`` header must equal the principal exactly
    not_collaborator: str = "{principal} is not a collaborator of account {account}"


LEGACY_RULES = AuthRules(bare_token=True, unauthorized="Unauthorized", account_case_sensitive=True,
                         not_collaborator="Forbidden: {principal} is not a collaborator of {account}")


@dataclass
class Authenticator:
    """What the ``caller`` dependency uses; stored on ``app.state.auth`` by the app factory.

    ``replay_principal``, when set, is the trusted dual-write replay identity: it acts as admin
    for any account it names (identifier adoption, DESIGN §6)."""

    verifier: TokenVerifier
    membership: MembershipLookup | None = None
    internal_audience: str = "chariot-internal"
    rules: AuthRules = field(default_factory=AuthRules)
    replay_principal: str | None = None

    def _unauthorized(self, reason: str) -> AuthError:
        return AuthError(401, self.rules.unauthorized or reason)

    def _token(self, authorization: str | None) -> str:
        if not authorization and not self.rules.bare_token:
            raise self._unauthorized("missing Authorization header (expected 'Bearer <token>')")
        scheme, _, token = (authorization or "").partition(" ")
        if not token and self.rules.bare_token:
            token, scheme = scheme, "bearer"
        if scheme.lower() != "bearer" or not token.strip():
            raise self._unauthorized("Authorization header must be 'Bearer <token>'")
        return token.strip()

    async def authenticate(self, authorization: str | None, account_header: str | None) -> Caller:
        token = self._token(authorization)
        try:
            claims = await self.verifier.verify(token)
        except AuthError:
            if self.rules.unauthorized is None:
                raise
            raise AuthError(401, self.rules.unauthorized) from None
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        internal = self.internal_audience in auds
        principal = claims.get("email") or claims.get("sub")
        if not principal or not isinstance(principal, str):
            raise self._unauthorized("token has neither an 'email' nor a 'sub' claim")
        account = (account_header or "").strip()
        if internal:
            # A peer service acts on behalf of the account named in the header; it is trusted
            # for that, with the role it was minted with (admin by default).
            peer_role = str(claims["role"]) if claims.get("role") in ROLE_RANK else "admin"
            return Caller(principal, account or principal, peer_role, True, claims)
        same = account == principal if self.rules.account_case_sensitive else account.lower() == principal.lower()
        if not account or same:
            return Caller(principal, principal, "admin", False, claims)
        if self.replay_principal is not None and principal == self.replay_principal:
            return Caller(principal, account, "admin", False, claims)
        role = await _lookup(self.membership, account, principal)
        if role not in ROLE_RANK:
            raise AuthError(403, self.rules.not_collaborator.format(principal=principal, account=account))
        return Caller(principal, account, str(role), False, claims)


def build_authenticator(
    settings: ServiceSettings, membership: MembershipLookup | None = None
) -> Authenticator:
    jwks = json.loads(settings.jwks_json) if settings.jwks_json else None
    keys = KeySource(
        jwks_url=settings.jwks_url,
        jwks=jwks,
        public_key_pem=settings.jwt_public_key,
        cache_seconds=settings.jwks_cache_seconds,
    )
    verifier = TokenVerifier(
        keys, issuer=settings.issuer, audiences=[settings.audience, settings.internal_audience]
    )
    return Authenticator(verifier, membership, settings.internal_audience)


async def caller(request: Request) -> Caller:
    """FastAPI dependency: the verified caller of this request (401/403 with a reason)."""
    cached = getattr(request.state, "caller", None)
    if cached is not None:
        return cached
    auth: Authenticator | None = getattr(request.app.state, "auth", None)
    if auth is None:
        raise AuthError(401, "this service has no token verification configured")
    result = await auth.authenticate(request.headers.get("authorization"), request.headers.get("account"))
    request.state.caller = result
    return result


def require_role(minimum: str) -> Callable[[Request], Awaitable[Caller]]:
    """Dependency factory: the caller must hold at least ``minimum`` (readonly < analyst < admin)."""
    if minimum not in ROLE_RANK:
        raise ValueError(f"unknown role {minimum!r}; use one of {sorted(ROLE_RANK)}")

    async def dependency(request: Request) -> Caller:
        who = await caller(request)
        if ROLE_RANK[who.role] < ROLE_RANK[minimum]:
            raise AuthError(403, f"role {who.role} may not do this (needs {minimum})")
        return who

    return dependency


async def require_internal(request: Request) -> Caller:
    """Dependency: only service-to-service tokens."""
    who = await caller(request)
    if not who.internal:
        raise AuthError(403, "this endpoint is for service-to-service calls only")
    return who


def mint_token(
    private_key_pem: str | bytes,
    *,
    subject: str,
    issuer: str,
    audience: str,
    kid: str | None = None,
    ttl: float = 3600,
    email: str | None = None,
    extra: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> str:
    """Sign an RS256 token (service-to-service tokens, tests, local demos)."""
    iat = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "iss": issuer,
        "aud": audience,
        "iat": iat,
        "nbf": iat,
        "exp": int(iat + ttl),
        "jti": uuid.uuid4().hex,
    }
    if email:
        claims["email"] = email
    if extra:
        claims.update(extra)
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, private_key_pem, algorithm="RS256", headers=headers)


class ServiceTokenProvider:
    """Mints and caches this service's token for calls to its peers (audience chariot-internal)."""

    def __init__(
        self,
        private_key_pem: str | bytes,
        *,
        service: str,
        issuer: str,
        audience: str = "chariot-internal",
        kid: str | None = None,
        ttl: float = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = private_key_pem
        self.service, self.issuer, self.audience, self.kid, self.ttl = service, issuer, audience, kid, ttl
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0

    def __call__(self) -> str:
        now = self._clock()
        if self._token is None or now > self._expires - self.ttl / 5:
            self._token = mint_token(
                self._key,
                subject=self.service,
                issuer=self.issuer,
                audience=self.audience,
                kid=self.kid,
                ttl=self.ttl,
                now=now,
            )
            self._expires = now + self.ttl
        return self._token


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def chariot_caller(request: Request) -> Caller:
    """Dependency like the legacy ``@secured``: any role may read; readonly may not write."""
    who = await caller(request)
    if who.role == "readonly" and request.method not in READ_METHODS:
        raise AuthError(403, "Forbidden: the readonly role cannot write")
    return who
