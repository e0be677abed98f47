"""Pydantic models of ``routes.yaml``: what exists and what the plan is (reviewed config).

Live state (where each service stands now) is *not* here: see ``chariot_migrate.rollout``.
Every field is documented in the README's "routes.yaml reference".
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class _Strict(BaseModel):
    # Unknown keys are typos in a reviewed file: reject them instead of ignoring them.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SLO(_Strict):
    p95_ms: float = Field(500, gt=0, description="p95 latency objective of the new side")
    max_error_rate: float = Field(0.01, ge=0, le=1)


class RetryPolicy(_Strict):
    """Retries of one upstream (exponential backoff, full jitter), never past the route's timeout."""

    attempts: int = Field(0, ge=0, le=10)  # retries after the first try
    base_ms: float = Field(100, gt=0)  # first backoff cap; doubles per retry …
    max_ms: float = Field(2000, gt=0)  # … up to this cap


class BreakerSettings(_Strict):
    """Circuit breaker per upstream instance (see chariot_migrate.resilience.breaker)."""

    failure_threshold: int = Field(5, ge=1)  # consecutive failures that open it
    failure_rate: float = Field(0.5, gt=0, le=1)  # or this failure rate over the last `window` calls
    window: int = Field(20, ge=1)
    min_calls: int = Field(10, ge=1)
    cooldown_s: float = Field(5.0, gt=0)  # open this long before a half-open probe


class HealthCheck(_Strict):
    """Active health checks (GET path on every instance, in the background)."""

    path: str = "/health"
    interval_s: float = Field(5.0, gt=0)
    timeout_s: float = Field(1.0, gt=0)
    unhealthy_after: int = Field(2, ge=1)  # consecutive failed checks that take an instance out
    healthy_after: int = Field(1, ge=1)  # consecutive good checks that bring it back


class RateLimit(_Strict):
    """Token bucket: `rps` tokens per second refill, at most `burst` saved up."""

    rps: float = Field(..., gt=0)
    burst: int | None = Field(None, ge=1)  # defaults to max(1, rps)

    @property
    def capacity(self) -> int:
        return self.burst if self.burst is not None else max(1, int(self.rps))


class AuthConfig(_Strict):
    """JWT verification at the edge (RS256 only). Absent: the edge does not verify (the sides do)."""

    jwks_url: str | None = None  # fetched, cached, refetched on an unknown kid (key rotation)
    jwks_file: str | None = None  # a static JWKS document
    public_key_file: str | None = None  # a static PEM public key
    issuer: str | None = None  # required `iss` when set
    audience: str | list[str] | None = None  # required `aud` (one of) when set
    leeway_s: float = Field(30, ge=0)  # clock skew allowed on exp/nbf
    jwks_cache_s: float = Field(300, gt=0)  # refetch the JWKS after this long
    principal_claims: list[str] = Field(default_factory=lambda: ["email", "sub"])  # first present is the principal

    @model_validator(mode="after")
    def _needs_a_key(self) -> AuthConfig:
        if not (self.jwks_url or self.jwks_file or self.public_key_file):
            raise ValueError("auth needs jwks_url, jwks_file or public_key_file")
        return self


class LegacyConfig(_Strict):
    """How the proxy reaches the legacy side."""

    invoker: Literal["http", "local", "lambda"] = "http"
    url: str | None = None  # http invoker: base URL incl. stage, e.g. https://x.execute-api…/chariot
    event_format: Literal["v1", "v2"] = "v1"
    stage: str = "chariot"  # API Gateway stage name put into events
    region: str = "us-east-1"
    endpoint_url: str | None = None  # AWS endpoint (moto server) for the lambda invoker / functions
    functions: str | None = None  # "module:ATTR" naming a list of FunctionSpec (local invoker)
    # Hooks for `chariot-migrate up` (import strings, so the core never imports the estate):
    provision: str | None = None  # "module:fn" fn(endpoint_url, region): tables, buckets, secrets
    demo: str | None = None  # "module:fn" fn(endpoint_url=, proxy_url=, region=) -> {"env": {...}, "recipe": str}
    default_function: str | None = None  # function for requests no route matches
    table: str | None = None  # the legacy DynamoDB table, for `data backfill|verify|repair`
    concurrency: int = Field(4, ge=1, le=256)  # warm workers per function (local invoker)
    timeout_s: float = Field(29.0, gt=0)  # API Gateway's integration limit
    retries: RetryPolicy = RetryPolicy()  # retries of reads on the legacy side (none by default)
    breaker: BreakerSettings | None = None  # circuit breaker on the legacy invoker (off by default)

    @model_validator(mode="after")
    def _needs(self) -> LegacyConfig:
        if self.invoker == "http" and not self.url:
            raise ValueError("legacy.invoker 'http' needs legacy.url")
        if self.invoker == "local" and not self.functions:
            raise ValueError("legacy.invoker 'local' needs legacy.functions ('module:ATTR')")
        return self


class ServiceConfig(_Strict):
    """A new containerised service that takes over routes from the legacy side."""

    phase: int = Field(..., ge=1)
    url: str | None = None  # base URL of one instance
    app: str | None = None  # "module:factory" ASGI app factory, for `chariot-migrate service run` / `up`
    migration: str | None = None  # "module:OBJ" data mapper (default: <app package>.migration:MIGRATION)
    urls: list[str] = Field(default_factory=list)  # several instances (load-balanced)
    salt: str | None = None  # bucketing salt; defaults to the service name
    slo: SLO = SLO()
    timeout_s: float | None = Field(None, gt=0)
    # Defaults for live state the first time a service appears in the state store.
    percent: float = Field(0, ge=0, le=100)
    shadow_percent: float = Field(0, ge=0, le=100)
    dual_write: Literal["off", "on"] = "off"
    # Resilience of the new side (proxy edge):
    retries: RetryPolicy = RetryPolicy()  # e.g. {attempts: 3, base_ms: 100, max_ms: 2000}
    breaker: BreakerSettings = BreakerSettings()  # one breaker per instance; an open one is ejected
    lb: Literal["round_robin", "least_connections", "weighted_response_time"] = "round_robin"
    health_check: HealthCheck | None = None  # active checks of every instance (off by default)
    failover: bool | None = None  # serve failed safe requests from legacy; None: defaults.failover
    rate_limit: RateLimit | None = None  # per-service token bucket at the edge
    pool_limit: int = Field(200, ge=1)  # keep-alive connections per instance

    @field_validator("percent", "shadow_percent")
    @classmethod
    def _two_decimals(cls, v: float) -> float:
        if round(v * 100) != v * 100 and abs(round(v * 100) - v * 100) > 1e-6:
            raise ValueError("percentages move in 0.01 steps")
        return v

    @property
    def instances(self) -> list[str]:
        return ([self.url] if self.url else []) + list(self.urls)


Predicate = str | dict[str, str]  # "regex" (re.search) or {"not": "regex"}


class MatchSpec(_Strict):
    """Extra conditions a request must meet, beyond method and path."""

    query: dict[str, Predicate] = Field(default_factory=dict)
    path: dict[str, Predicate] = Field(default_factory=dict)
    body: dict[str, Predicate] = Field(default_factory=dict)  # "a.b[0]" JSON field paths
    header: dict[str, Predicate] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _regexes_compile(self) -> MatchSpec:
        for where in ("query", "path", "body", "header"):
            for name, pred in getattr(self, where).items():
                pattern = pred if isinstance(pred, str) else pred.get("not")
                if not isinstance(pred, str) and set(pred) != {"not"}:
                    raise ValueError(f"match.{where}.{name}: use a regex string or {{not: regex}}")
                try:
                    re.compile(pattern or "")
                except re.error as e:
                    raise ValueError(f"match.{where}.{name}: bad regex {pattern!r}: {e}") from e
        return self

    def is_empty(self) -> bool:
        return not (self.query or self.path or self.body or self.header)

    def canonical(self) -> tuple[Any, ...]:
        def norm(d: dict[str, Predicate]) -> tuple[Any, ...]:
            return tuple(sorted((k, v if isinstance(v, str) else ("not", v["not"])) for k, v in d.items()))

        return (norm(self.query), norm(self.path), norm(self.body), norm(self.header))


_TEMPLATE = re.compile(r"^/(?:[A-Za-z0-9._~\-]+|\{[A-Za-z_][A-Za-z0-9_]*\+?\})(?:/(?:[A-Za-z0-9._~\-]+|\{[A-Za-z_][A-Za-z0-9_]*\+?\}))*$|^/$")


class RouteConfig(_Strict):
    path: str  # template: literal segments and {param}; a final {param+} is greedy
    methods: list[str]
    service: str  # owner of the route on the new side
    function: str | None = None  # legacy Lambda function serving it
    public: bool = False  # no bearer token required (e.g. /token, /hook/*)
    match: MatchSpec = MatchSpec()
    timeout_s: float | None = Field(None, gt=0)
    shadow: bool | None = None  # None: shadow only safe methods; True: also this (write) route
    name: str | None = None  # stable id for reports; defaults to "METHODS path"
    retry_writes: bool = False  # also retry PUT/DELETE (idempotent by RFC) on the new side
    enforce_methods: bool | None = None  # 405 for other methods on this path; None: defaults.enforce_methods

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: list[str]) -> list[str]:
        out = [m.upper() for m in v]
        bad = [m for m in out if m not in HTTP_METHODS]
        if bad:
            raise ValueError(f"unknown HTTP method {bad[0]!r}")
        if not out:
            raise ValueError("a route needs at least one method")
        return out

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not _TEMPLATE.match(v):
            raise ValueError(f"path template {v!r} must look like /a/{{param}}/b")
        if "+}" in v and not v.endswith("+}"):
            raise ValueError("a greedy {param+} may only be the last segment")
        return v

    @property
    def route_id(self) -> str:
        return self.name or f"{'|'.join(self.methods)} {self.path}" + (
            " " + _describe(self.match) if not self.match.is_empty() else ""
        )


def _describe(m: MatchSpec) -> str:
    parts = []
    for where in ("query", "path", "body", "header"):
        for k, v in getattr(m, where).items():
            parts.append(f"{where}.{k}~{v if isinstance(v, str) else '!' + v['not']}")
    return "[" + ",".join(parts) + "]"


class Defaults(_Strict):
    timeout_s: float = Field(10.0, gt=0)
    max_body_bytes: int = Field(1024 * 1024, gt=0)
    side_header: str | None = "X-Migrate-Side"  # None hides the side from clients
    override_header: str = "X-Migrate-Target"  # honoured only with a valid operator token
    failover: bool = False  # when the new side fails a safe request, serve it from legacy
    account_rate_limit: RateLimit | None = None  # token bucket per bucket-key account, all services
    cors_origins: list[str] = Field(default_factory=list)  # allowed browser origins ("*" = any); [] = no CORS
    max_headers: int | None = Field(100, ge=1)  # more request headers → 431; None: no limit
    max_header_bytes: int | None = Field(32 * 1024, ge=1)  # total request header size → 431; None: no limit
    reject_encoded_slash: bool = True  # %2F in the raw path → 400 (path confusion between sides)
    enforce_methods: bool = False  # known path, method no route allows → 405 (else: legacy default)


class RoutesFile(_Strict):
    version: Literal[1] = 1
    stage_prefix: str = ""
    bucket_by: list[str] = Field(default_factory=lambda: ["header:account", "jwt:email"])
    legacy: LegacyConfig
    defaults: Defaults = Defaults()
    auth: AuthConfig | None = None  # JWT verification at the edge; None: the sides verify alone
    rate_limit_store: str | None = None  # redis://host:port/db[?prefix=x]: limits shared by replicas
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    routes: list[RouteConfig] = Field(default_factory=list)
    # Later sections (plan, shadow, dual_write) are owned by their packages and kept as data
    # here so the core file model stays small.
    plan: dict[str, Any] | None = None
    shadow: dict[str, Any] | None = None
    dual_write: dict[str, Any] | None = None

    @field_validator("stage_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        v = v.rstrip("/")
        if v and not v.startswith("/"):
            raise ValueError("stage_prefix must start with '/'")
        return v

    @field_validator("bucket_by")
    @classmethod
    def _bucket_by(cls, v: list[str]) -> list[str]:
        for item in v:
            kind, _, name = item.partition(":")
            if kind not in ("header", "jwt", "query") or not name:
                raise ValueError(f"bucket_by entry {item!r} must be header:NAME, jwt:CLAIM or query:NAME")
        return v
