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
# Identity, routing and framing headers: one copy each (see Defaults.unique_headers).
UNIQUE_HEADERS = ("authorization", "host", "content-length", "transfer-encoding", "x-migrate-target",
                  "x-migrate-token")


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
    # Environment variables of `up` that commands run next to the stack need too (e.g. a table
    # prefix the data mappers read); `up` records them in <state dir>/stack.json.
    stack_env: list[str] = Field(default_factory=list)
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
    # The other direction: a safe request legacy fails (Lambda error/timeout, 5xx) is served by
    # the new side — honoured only while the service is prepared (the safety rule's readiness).
    failover_to_new: bool = False
    # Services whose entities this one reads or writes too (in either direction): it may serve
    # accounts from new only while they are prepared as well, or a mixed split would answer
    # differently from all-legacy (a risk made on legacy for an asset made on new).
    shares_data_with: list[str] = Field(default_factory=list)
    rate_limit: RateLimit | None = None  # per-service token bucket at the edge
    pool_limit: int = Field(200, ge=1)  # keep-alive connections per instance
    # host:port of the service's gRPC API (asset-discovery's AssetDiscoveryService): `up` holds
    # that port (a free one with --free-ports) and tells the service and its callers about it.
    grpc: str | None = Field(None, pattern=r"^[A-Za-z0-9.\-]+:[0-9]{1,5}$")

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


_VERSION = re.compile(r"^v[1-9][0-9]*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def check_versions(v: list[str]) -> list[str]:
    bad = [x for x in v if not _VERSION.match(x)]
    if bad or not v:
        raise ValueError(f"versions are v1, v2, …; got {bad[0] if bad else 'none'!r}")
    return v


class Deprecation(_Strict):
    """RFC 9745 ``Deprecation`` / RFC 8594 ``Sunset`` headers on every answer of the route."""

    since: str | None = None  # YYYY-MM-DD it was deprecated (absent: deprecated now, date unknown)
    sunset: str | None = None  # YYYY-MM-DD after which it may stop answering
    link: str | None = None  # where clients read what replaces it (Link: <…>; rel="deprecation")

    @field_validator("since", "sunset")
    @classmethod
    def _date(cls, v: str | None) -> str | None:
        if v is not None and not _DATE.match(v):
            raise ValueError(f"{v!r} is not a date (YYYY-MM-DD)")
        return v

    def headers(self) -> tuple[tuple[str, str], ...]:
        import calendar
        import datetime as dt
        from email.utils import formatdate

        def epoch(d: str) -> int:
            return calendar.timegm(dt.date.fromisoformat(d).timetuple())

        out = [("deprecation", f"@{epoch(self.since)}" if self.since else "true")]
        if self.sunset:
            out.append(("sunset", formatdate(epoch(self.sunset), usegmt=True)))
        if self.link:
            out.append(("link", f'<{self.link}>; rel="deprecation"'))
        return tuple(out)


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
    # API versions it answers under /api/<version>/…; v1 (the Chariot API as it is) is also served
    # without the prefix (the /chariot stage) for today's clients.
    versions: list[str] = Field(default_factory=lambda: ["v1"])
    deprecation: Deprecation | None = None

    @field_validator("versions")
    @classmethod
    def _versions(cls, v: list[str]) -> list[str]:
        return check_versions(v)

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
    failover: bool = True  # when the new side fails a safe request, serve it from legacy (writes never)
    account_rate_limit: RateLimit | None = None  # token bucket per bucket-key account, all services
    cors_origins: list[str] = Field(default_factory=list)  # allowed browser origins ("*" = any); [] = no CORS
    max_headers: int | None = Field(100, ge=1)  # more request headers → 431; None: no limit
    max_header_bytes: int | None = Field(32 * 1024, ge=1)  # total request header size → 431; None: no limit
    reject_encoded_slash: bool = True  # %2F in the raw path → 400 (path confusion between sides)
    enforce_methods: bool = True  # known path, method no route on it allows → 405 + Allow
    # Headers a request may carry at most once (400 otherwise): two sides that read different
    # copies would authorise the same request differently. `header:` entries of bucket_by are
    # added to these.
    unique_headers: list[str] = Field(default_factory=lambda: list(UNIQUE_HEADERS))


class AggregatePart(_Strict):
    """One sub-request of an aggregate: a GET through the proxy's own pipeline for the caller."""

    path: str  # e.g. /my/count (without the stage prefix)
    query: dict[str, str] = Field(default_factory=dict)
    pick: str | None = None  # keep only this top-level field of the JSON answer (e.g. status)
    timeout_s: float | None = Field(None, gt=0)  # default: the aggregate's

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"part path {v!r} must start with '/'")
        return v


class Aggregate(_Strict):
    """A BFF answer composed of several GETs fanned out concurrently; a failed part is listed in
    ``partial`` instead of failing the whole answer."""

    path: str  # e.g. /dashboard: served under the stage and /api/<version>/
    versions: list[str] = Field(default_factory=lambda: ["v1"])
    timeout_s: float = Field(2.0, gt=0)
    cache_s: float = Field(5.0, ge=0)  # per caller identity; 0 = no cache. Partial answers are never cached.
    parts: dict[str, AggregatePart]

    @field_validator("versions")
    @classmethod
    def _versions(cls, v: list[str]) -> list[str]:
        return check_versions(v)

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/") or v.startswith("/internal/"):
            raise ValueError(f"aggregate path {v!r} must start with '/' and not be internal")
        return v


class GraphqlConfig(_Strict):
    """``/graphql`` served by an endpoint named as ``module:factory`` (the Chariot schema lives
    outside the core: ``chariot_migrate.gateway.schema:endpoint``); every resolver call is a
    request through this proxy as the caller."""

    path: str = "/graphql"
    endpoint: str

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        if v.count(":") != 1 or not all(v.split(":")):
            raise ValueError(f"endpoint {v!r} must be module.path:factory")
        return v


class BffConfig(_Strict):
    aggregates: list[Aggregate] = Field(default_factory=list)
    graphql: GraphqlConfig | None = None
    # GET list routes that stream every page as NDJSON when asked (Accept: application/x-ndjson).
    ndjson: list[str] = Field(default_factory=list)
    ndjson_max_pages: int = Field(10_000, ge=1)

    @property
    def enabled(self) -> bool:
        """Anything to answer at the edge (the proxy skips BFF matching entirely otherwise)."""
        return bool(self.aggregates or self.ndjson or self.graphql)


class RoutesFile(_Strict):
    version: Literal[1] = 1
    stage_prefix: str = ""
    bucket_by: list[str] = Field(default_factory=lambda: ["header:account", "jwt:email"])
    legacy: LegacyConfig
    defaults: Defaults = Defaults()
    auth: AuthConfig | None = None  # JWT verification at the edge; None: the sides verify alone
    # redis://host:port/db[?prefix=x]: rate limits and breaker trips shared by workers and replicas;
    # None: the state store when it is Redis; "local": per worker.
    rate_limit_store: str | None = None
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    routes: list[RouteConfig] = Field(default_factory=list)
    bff: BffConfig = BffConfig()
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
            if kind not in ("header", "jwt", "query", "path") or not name:
                raise ValueError(f"bucket_by entry {item!r} must be header:NAME, jwt:CLAIM, query:NAME or "
                                 "path:PARAM[:base64url]")
            if kind == "path" and name.partition(":")[2] not in ("", "base64url"):
                raise ValueError(f"bucket_by entry {item!r}: the only path decoding is ':base64url'")
        return v
