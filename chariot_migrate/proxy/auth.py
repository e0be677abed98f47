"""JWT verification at the edge: RS256 only, keys from a JWKS URL (cached, refetched on an
unknown ``kid`` = key rotation), a JWKS file or a PEM file; ``exp``/``nbf``/``iss``/``aud`` checked.

``alg: none`` and every HMAC algorithm are refused before any key is looked at (an attacker
must not get to choose how a token is checked). Verified tokens are cached by token string
until they expire, so a client reusing its token costs one dict lookup.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import RSAAlgorithm

from ..routes.models import AuthConfig

ALGORITHMS = ["RS256"]
JwksFetch = Callable[[str], Awaitable[dict]]


class AuthFailure(Exception):
    """A 401: ``code`` is a short metrics label, ``reason`` the sentence the client gets."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass(frozen=True, slots=True)
class Verified:
    principal: str
    claims: dict[str, Any]
    expires_at: float


def bearer_token(authorization: str | None) -> str | None:
    """``Bearer <jwt>``, or a bare JWT (Chariot's clients send either; the legacy side accepts both)."""
    if not authorization:
        return None
    scheme, _, rest = authorization.strip().partition(" ")
    if not rest:
        return scheme if scheme.count(".") == 2 else None
    return rest.strip() if scheme.lower() == "bearer" else None


async def _fetch_jwks_http(url: str) -> dict:
    import httpx

    async with httpx.AsyncClient(timeout=5.0) as client:
        resp = await client.get(url)
        resp.raise_for_status()
        return resp.json()


def parse_jwks(doc: dict) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for i, jwk in enumerate(doc.get("keys", []) if isinstance(doc, dict) else []):
        if isinstance(jwk, dict) and jwk.get("kty") == "RSA":
            keys[jwk.get("kid") or f"key-{i}"] = RSAAlgorithm.from_jwk(json.dumps(jwk))
    return keys


class KeyRing:
    """kid → RSA public key. A JWKS URL is refetched when stale, or at once for an unknown kid —
    but never more often than ``min_refresh_s``, so garbage kids cannot hammer the JWKS endpoint."""

    def __init__(self, cfg: AuthConfig, *, fetch: JwksFetch | None = None, clock: Callable[[], float] = time.monotonic,
                 min_refresh_s: float = 5.0) -> None:
        self.url = cfg.jwks_url
        self.cache_s = cfg.jwks_cache_s
        self.min_refresh_s = min_refresh_s
        self._fetch = fetch or _fetch_jwks_http
        self._clock = clock
        self._lock = asyncio.Lock()
        self._fetched_at: float | None = None
        self.keys: dict[str, Any] = {}
        self.pem_key: Any = None
        if cfg.jwks_file:
            self.keys.update(parse_jwks(json.loads(Path(cfg.jwks_file).read_text())))
        if cfg.public_key_file:
            self.pem_key = load_pem_public_key(Path(cfg.public_key_file).read_bytes())

    async def key_for(self, kid: str | None) -> Any:
        if self.url:
            unknown = kid is not None and kid not in self.keys
            stale = self._fetched_at is None or self._clock() - self._fetched_at > self.cache_s
            if unknown or stale:
                await self._refresh()
        if kid is not None and kid in self.keys:
            return self.keys[kid]
        if kid is None and len(self.keys) == 1:
            return next(iter(self.keys.values()))
        if self.pem_key is not None:  # a static PEM signs tokens with any (or no) kid
            return self.pem_key
        raise AuthFailure("unknown_key", "token signed with an unknown key")

    async def _refresh(self) -> None:
        async with self._lock:
            now = self._clock()
            if self._fetched_at is not None and now - self._fetched_at < self.min_refresh_s:
                return
            try:
                keys = parse_jwks(await self._fetch(self.url or ""))
            except Exception as e:  # noqa: BLE001 — any fetch problem: keep the keys we have
                self._fetched_at = now
                if not self.keys and self.pem_key is None:
                    raise AuthFailure("jwks_unavailable", f"cannot fetch signing keys ({type(e).__name__})") from None
                return
            self.keys, self._fetched_at = keys, now


_DECODE_ERRORS: list[tuple[type[Exception], str, str]] = [
    (jwt.ExpiredSignatureError, "expired", "token expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid", "token not valid yet (nbf/iat in the future)"),
    (jwt.InvalidAudienceError, "wrong_audience", "wrong audience"),
    (jwt.InvalidIssuerError, "wrong_issuer", "wrong issuer"),
    (jwt.InvalidSignatureError, "bad_signature", "bad signature"),
]


class EdgeAuth:
    def __init__(self, cfg: AuthConfig, *, fetch: JwksFetch | None = None, clock: Callable[[], float] = time.time,
                 max_cached: int = 50_000) -> None:
        self.cfg = cfg
        self.keys = KeyRing(cfg, fetch=fetch)
        self._clock = clock
        self._audience = cfg.audience
        self._cache: dict[str, Verified] = {}
        self._max_cached = max_cached

    async def verify_header(self, authorization: str | None) -> Verified:
        token = bearer_token(authorization)
        if not token:
            raise AuthFailure("missing", "missing bearer token (Authorization: Bearer <jwt>)")
        return await self.verify(token)

    async def verify(self, token: str) -> Verified:
        hit = self._cache.get(token)
        if hit is not None:
            if hit.expires_at > self._clock():
                return hit
            del self._cache[token]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise AuthFailure("malformed", "malformed token") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise AuthFailure("bad_algorithm", f"token algorithm {alg!r} is not allowed (RS256 only)")
        kid = header.get("kid")
        key = await self.keys.key_for(kid if isinstance(kid, str) else None)
        try:
            claims = jwt.decode(token, key, algorithms=ALGORITHMS, audience=self._audience, issuer=self.cfg.issuer,
                                leeway=self.cfg.leeway_s,
                                options={"require": ["exp"], "verify_aud": self._audience is not None})
        except jwt.MissingRequiredClaimError as e:
            raise AuthFailure("missing_claim", f"token lacks the {e.claim!r} claim") from None
        except jwt.PyJWTError as e:
            for kind, code, reason in _DECODE_ERRORS:
                if isinstance(e, kind):
                    raise AuthFailure(code, reason) from None
            raise AuthFailure("invalid", "invalid token") from None
        principal = next((str(claims[c]) for c in self.cfg.principal_claims if claims.get(c)), None)
        if principal is None:
            raise AuthFailure("no_principal", f"token names no principal ({', '.join(self.cfg.principal_claims)})")
        verified = Verified(principal, claims, float(claims["exp"]) + self.cfg.leeway_s)
        if len(self._cache) >= self._max_cached:
            now = self._clock()
            self._cache = {t: v for t, v in self._cache.items() if v.expires_at > now}
            if len(self._cache) >= self._max_cached:
                self._cache.clear()
        self._cache[token] = verified
        return verified
