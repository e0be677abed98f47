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
    concurrency: int = Field(4, ge=1, le=256)  # warm workers per function (local invoker)
    timeout_s: float = Field(29.0, gt=0)  # API Gateway's integration limit

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
    urls: list[str] = Field(default_factory=list)  # several instances (load-balanced)
    salt: str | None = None  # bucketing salt; defaults to the service name
    slo: SLO = SLO()
    timeout_s: float | None = Field(None, gt=0)
    # Defaults for live state the first time a service appears in the state store.
    percent: float = Field(0, ge=0, le=100)
    shadow_percent: float = Field(0, ge=0, le=100)
    dual_write: Literal["off", "on"] = "off"

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


class RoutesFile(_Strict):
    version: Literal[1] = 1
    stage_prefix: str = ""
    bucket_by: list[str] = Field(default_factory=lambda: ["header:account", "jwt:email"])
    legacy: LegacyConfig
    defaults: Defaults = Defaults()
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
