"""Header hygiene and identity extraction (pure functions over header lists)."""

from __future__ import annotations

import base64
import json
import os
from functools import lru_cache

from ..transport import Headers

# RFC 9110 §7.6.1 hop-by-hop headers, plus ones a proxy must regenerate itself.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "proxy-connection", "host", "content-length",
})
# Operator-only headers that must never reach an upstream.
PROXY_CONTROL = frozenset({"x-migrate-target", "x-migrate-token"})


def _connection_listed(headers: Headers) -> set[str]:
    out: set[str] = set()
    for k, v in headers:
        if k == "connection":
            out.update(t.strip().lower() for t in v.split(","))
    return out


def upstream_request_headers(
    headers: Headers, *, client_ip: str, scheme: str, host: str | None, correlation_id: str, traceparent: str
) -> Headers:
    drop = HOP_BY_HOP | PROXY_CONTROL | _connection_listed(headers)
    out: Headers = []
    xff = None
    for k, v in headers:
        if k in drop or k in ("x-correlation-id", "traceparent"):
            continue
        if k == "x-forwarded-for":
            xff = v
            continue
        if k in ("x-forwarded-proto", "x-forwarded-host"):
            continue
        out.append((k, v))
    out.append(("x-forwarded-for", f"{xff}, {client_ip}" if xff else client_ip))
    out.append(("x-forwarded-proto", scheme))
    if host:
        out.append(("x-forwarded-host", host))
    out.append(("x-correlation-id", correlation_id))
    out.append(("traceparent", traceparent))
    return out


def downstream_response_headers(headers: Headers) -> Headers:
    drop = (HOP_BY_HOP - {"content-length"}) | _connection_listed(headers)
    return [(k, v) for k, v in headers if k not in drop]


_CID_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


def correlation_id(headers: dict[str, str], fresh: str | None = None) -> str:
    """``fresh``: 32 random hex digits to use when the caller's id is refused (else drawn here)."""
    cid = headers.get("x-correlation-id", "")
    # Accept a caller's id only if it is short, plain (no log injection) and not a token.
    if cid and len(cid) <= 128 and not cid.startswith("eyJ") and _CID_OK.issuperset(cid):
        return cid
    return fresh or os.urandom(16).hex()


def traceparent(headers: dict[str, str], fresh: str | None = None) -> str:
    """Propagate a valid W3C traceparent with a new span id, or start a new trace. ``fresh``: 48
    random hex digits (trace id, then span id), else drawn here."""
    fresh = fresh or os.urandom(24).hex()
    tp = headers.get("traceparent", "")
    parts = tp.split("-")
    span = fresh[32:48]
    if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16 and parts[1] != "0" * 32:
        return f"{parts[0]}-{parts[1]}-{span}-{parts[3]}"
    return f"00-{fresh[:32]}-{span}-01"


def request_ids(headers: dict[str, str]) -> tuple[str, str]:
    """(correlation id, traceparent) from one draw of randomness (one syscall, not three)."""
    fresh = os.urandom(40).hex()
    return correlation_id(headers, fresh[:32]), traceparent(headers, fresh[32:])


@lru_cache(maxsize=4096)
def unverified_jwt_claims(token: str) -> dict:
    """Claims of a JWT without verifying it — used ONLY to pick a bucket, never to authorise.

    Verification belongs to the edge auth stage and the sides themselves.
    """
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload))
        return claims if isinstance(claims, dict) else {}
    except (IndexError, ValueError):
        return {}


def bucket_key(bucket_by: list[str], headers: dict[str, str], query_first) -> str | None:
    """First present identity among ``header:X``, ``jwt:CLAIM`` and ``query:X`` sources."""
    for source in bucket_by:
        kind, _, name = source.partition(":")
        if kind == "header":
            v = headers.get(name.lower())
        elif kind == "jwt":
            auth = headers.get("authorization", "")
            v = None
            if auth[:7].lower() == "bearer ":
                c = unverified_jwt_claims(auth[7:].strip()).get(name)
                v = c if isinstance(c, str) else None
        elif kind == "query":
            v = query_first(name)
        else:
            continue  # path: only after a route matched (``path_account``)
        if v:
            return v.strip().lower()
    return None


def path_account(bucket_by: list[str], path_params: dict[str, str]) -> str | None:
    """The account named by the path (``path:principal:base64url`` for Chariot's public inbound
    hooks), for bucketing and dual-write lanes only: never an identity, nothing is verified."""
    import base64
    import binascii

    for source in bucket_by:
        kind, _, spec = source.partition(":")
        if kind != "path":
            continue
        name, _, decoding = spec.partition(":")
        v = path_params.get(name)
        if not v:
            continue
        if decoding == "base64url":
            try:
                v = base64.urlsafe_b64decode(v + "=" * (-len(v) % 4)).decode("utf-8")
            except (binascii.Error, ValueError):
                continue
        if v.strip():
            return v.strip().lower()
    return None
