"""The Chariot JWT: issue and verify (RS256) plus a JWKS rendering of the public key.

The legacy token function issues these; the legacy authorizer and the new services verify them.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.types import Options

ISSUER = "chariot-migrate-local"
AUDIENCE = "chariot"
DEFAULT_TTL_S = 3600
LEEWAY_S = 30


class TokenError(Exception):
    """The token is missing, malformed, forged or expired."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    private_pem: str
    kid: str

    @property
    def public_pem(self) -> str:
        return public_pem_of(self.private_pem)


def generate_signing_key() -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return SigningKey(pem, kid_of(public_pem_of(pem)))


@lru_cache(maxsize=16)
def _private_key(private_pem: str) -> Any:
    # Loading (and validating) an RSA key costs ~60 ms: do it once per key per process.
    return serialization.load_pem_private_key(private_pem.encode(), password=None)


@lru_cache(maxsize=16)
def _public_key(public_pem: str) -> Any:
    return serialization.load_pem_public_key(public_pem.encode())


@lru_cache(maxsize=16)
def public_pem_of(private_pem: str) -> str:
    key = _private_key(private_pem)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def kid_of(public_pem: str) -> str:
    return hashlib.sha256(public_pem.encode()).hexdigest()[:16]


def issue(principal: str, key: SigningKey, *, ttl_s: int = DEFAULT_TTL_S, now: float | None = None,
          extra: dict[str, Any] | None = None) -> str:
    t = int(now if now is not None else time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": principal, "email": principal,
              "iat": t, "nbf": t, "exp": t + ttl_s, **(extra or {})}
    return jwt.encode(claims, _private_key(key.private_pem), algorithm="RS256", headers={"kid": key.kid})


def verify(token: str, public_pem: str | list[str], *, now: float | None = None) -> dict[str, Any]:
    """Return the claims of a valid token; raise TokenError otherwise."""
    if not token:
        raise TokenError("missing token")
    keys = [public_pem] if isinstance(public_pem, str) else list(public_pem)
    options: Options = {"require": ["exp", "iat", "sub", "iss", "aud"]}
    unchecked_times: Options = options | {"verify_exp": False, "verify_nbf": False, "verify_iat": False}
    last: Exception | None = None
    for pem in keys:
        try:
            if now is None:
                claims = jwt.decode(token, _public_key(pem), algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER,
                                    leeway=LEEWAY_S, options=options)
            else:
                claims = jwt.decode(token, _public_key(pem), algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER,
                                    options=unchecked_times)
                if claims["exp"] + LEEWAY_S < now or claims.get("nbf", 0) - LEEWAY_S > now:
                    raise TokenError("token expired or not yet valid")
            return claims
        except jwt.PyJWTError as e:
            last = e
    raise TokenError(f"invalid token: {last}")


def _b64u(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwks(public_pems: list[str]) -> dict[str, Any]:
    """JWKS document (RFC 7517) for the given public keys."""
    out = []
    for pem in public_pems:
        pub = serialization.load_pem_public_key(pem.encode())
        if not isinstance(pub, rsa.RSAPublicKey):
            raise TokenError("JWKS holds RS256 keys only: this PEM is not an RSA public key")
        nums = pub.public_numbers()
        out.append({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid_of(pem),
                    "n": _b64u(nums.n), "e": _b64u(nums.e)})
    return {"keys": out}
