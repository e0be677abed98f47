"""The edge's checks before any upstream is called, compiled once per route table.

screen (header limits, encoded slashes, CORS preflight) → method allowlist (405) → JWT (401)
→ rate limits (429). Each stage is skipped by a single attribute test when it is not configured,
so the hot path pays nothing for what routes.yaml does not ask for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import chain

from ..routes.matcher import RequestView, RouteTable
from ..routes.models import HTTP_METHODS, RoutesFile
from . import metrics
from .auth import AuthFailure, EdgeAuth, Verified
from .ratelimit import RateLimiters, retry_after_header

CORS_MAX_AGE = "600"


@dataclass(slots=True)
class Rejection:
    """An answer the edge gives itself: status, JSON body, extra headers."""

    status: int
    body: dict
    headers: list[tuple[str, str]] = field(default_factory=list)


async def send_rejection(send, rej: Rejection, extra: list[tuple[str, str]] | None = None) -> None:
    body = json.dumps(rej.body).encode() if rej.status != 204 else b""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (*rej.headers, *(extra or ()))]
    await send({"type": "http.response.start", "status": rej.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _repeated(headers: list[tuple[bytes, bytes]], unique: frozenset[bytes]) -> str | None:
    """The first name in ``unique`` that occurs twice (ASGI header names are lower-case)."""
    seen: set[bytes] = set()
    for k, _ in headers:
        if k in unique:
            if k in seen:
                return k.decode("latin-1")
            seen.add(k)
    return None


class Cors:
    def __init__(self, origins: list[str]) -> None:
        self.any = "*" in origins
        self.origins = frozenset(o.rstrip("/") for o in origins)

    def allowed(self, origin: str) -> bool:
        return self.any or origin in self.origins

    def response_headers(self, origin: str) -> list[tuple[str, str]]:
        """For actual (non-preflight) responses from an allowed origin."""
        return [("access-control-allow-origin", origin), ("access-control-allow-credentials", "true"),
                ("access-control-expose-headers", "x-correlation-id, x-migrate-side, retry-after"),
                ("vary", "Origin")]

    def preflight(self, origin: str, hmap: dict[str, str]) -> Rejection:
        if not self.allowed(origin):
            return Rejection(403, {"error": f"origin {origin!r} is not allowed (defaults.cors_origins)"})
        asked = hmap.get("access-control-request-method", "").upper()
        if asked not in HTTP_METHODS:
            return Rejection(400, {"error": f"preflight asks for unknown method {asked!r}"})
        headers = [("access-control-allow-origin", origin), ("access-control-allow-credentials", "true"),
                   ("access-control-allow-methods", ", ".join(HTTP_METHODS)), ("access-control-max-age", CORS_MAX_AGE),
                   ("vary", "Origin")]
        req_headers = hmap.get("access-control-request-headers")
        if req_headers:
            headers.append(("access-control-allow-headers", req_headers))
        return Rejection(204, {}, headers)


class EdgePolicy:
    """What routes.yaml asks the edge to enforce, for one route table."""

    def __init__(self, table: RouteTable, limiters: RateLimiters, auth: EdgeAuth | None) -> None:
        cfg: RoutesFile = table.config
        d = cfg.defaults
        self.max_headers = d.max_headers
        self.max_header_bytes = d.max_header_bytes
        self.reject_encoded_slash = d.reject_encoded_slash
        self.cors = Cors(d.cors_origins) if d.cors_origins else None
        self.unique_headers = frozenset(h.lower().encode("latin-1") for h in (
            *d.unique_headers, *(b.partition(":")[2] for b in cfg.bucket_by if b.startswith("header:"))))
        self.screens = bool(self.max_headers or self.max_header_bytes or self.reject_encoded_slash or self.cors
                            or self.unique_headers)
        self.enforced = frozenset(  # route indexes whose path answers 405 for other methods
            i for i, r in enumerate(cfg.routes)
            if (r.enforce_methods if r.enforce_methods is not None else d.enforce_methods))
        self.auth = auth
        self.limiters = limiters
        self.account_limit = d.account_rate_limit
        self.service_limits = {name: s.rate_limit for name, s in cfg.services.items() if s.rate_limit}
        self.limits = bool(self.account_limit or self.service_limits)
        self._table = table

    # ---- before the body is read -------------------------------------------------------------

    def screen(self, scope: dict, method: str) -> Rejection | None:
        raw = scope["headers"]
        if self.max_headers and len(raw) > self.max_headers:
            metrics.REJECTED.labels("too_many_headers").inc()
            return Rejection(431, {"error": f"more than {self.max_headers} request headers"})
        if self.max_header_bytes and sum(map(len, chain.from_iterable(raw))) > self.max_header_bytes:
            metrics.REJECTED.labels("headers_too_large").inc()
            return Rejection(431, {"error": f"request headers exceed {self.max_header_bytes} bytes"})
        if self.unique_headers and (dup := _repeated(raw, self.unique_headers)) is not None:
            metrics.REJECTED.labels("duplicate_header").inc()
            return Rejection(400, {"error": f"header {dup!r} appears more than once; send it once"})
        if self.reject_encoded_slash:
            rp = scope.get("raw_path") or b""
            if b"%2" in rp and (b"%2f" in rp or b"%2F" in rp):
                metrics.REJECTED.labels("encoded_slash").inc()
                return Rejection(400, {"error": "encoded slash (%2F) in the request path is not allowed"})
        if self.cors is not None and method == "OPTIONS":
            hmap = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}
            origin = hmap.get("origin")
            if origin and "access-control-request-method" in hmap:
                return self.cors.preflight(origin, hmap)
        return None

    def cors_headers(self, hmap: dict[str, str]) -> list[tuple[str, str]]:
        origin = hmap.get("origin") if self.cors is not None else None
        return self.cors.response_headers(origin) if origin and self.cors and self.cors.allowed(origin) else []

    # ---- after matching ----------------------------------------------------------------------

    def method_not_allowed(self, view: RequestView) -> Rejection | None:
        """For an unmatched request: 405 + Allow when routes exist on this path but none of them
        takes the method (whatever their predicates), and each of them enforces methods. A path
        no template matches, or a method some route on it takes (its predicates did not match),
        goes to the legacy default as before. OPTIONS is never refused (CORS, discovery)."""
        if view.method == "OPTIONS":
            return None
        routes = self._table.routes_on(view.path)
        if not routes or any(r.index not in self.enforced for r in routes):
            return None
        allowed = set().union(*(r.methods for r in routes))
        if "GET" in allowed:
            allowed.add("HEAD")  # RFC 9110 §9.3.2: HEAD is GET without the body
        if view.method in allowed:
            return None
        metrics.REJECTED.labels("method_not_allowed").inc()
        allow = ", ".join(m for m in HTTP_METHODS if m in allowed)
        return Rejection(405, {"error": f"method {view.method} is not allowed on {view.path}; allowed: {allow}"},
                         [("allow", allow)])

    async def authenticate(self, hmap: dict[str, str]) -> tuple[Verified | None, Rejection | None]:
        assert self.auth is not None
        try:
            return await self.auth.verify_header(hmap.get("authorization")), None
        except AuthFailure as e:
            metrics.AUTH_FAILURES.labels(e.code).inc()
            return None, Rejection(401, {"error": e.reason}, [("www-authenticate", 'Bearer error="invalid_token"')])

    async def limit(self, service: str | None, account: str | None, client_ip: str) -> Rejection | None:
        if self.account_limit is not None:
            key = f"acct:{account}" if account else f"ip:{client_ip}"
            wait = await self.limiters.take(key, self.account_limit.rps, self.account_limit.capacity)
            if wait:
                return self._too_many(service, "account", wait)
        rl = self.service_limits.get(service) if service else None
        if rl is not None:
            wait = await self.limiters.take(f"svc:{service}", rl.rps, rl.capacity)
            if wait:
                return self._too_many(service, "service", wait)
        return None

    @staticmethod
    def _too_many(service: str | None, scope: str, wait: float) -> Rejection:
        metrics.RATE_LIMITED.labels(service or "-", scope).inc()
        what = f"service {service}" if scope == "service" else "this account"
        return Rejection(429, {"error": f"rate limit exceeded for {what}; retry after {wait:.2f}s"},
                         [("retry-after", retry_after_header(wait))])
