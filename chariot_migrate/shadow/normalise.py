"""Normalisation of a response before diffing (pure: bytes and dicts in, plain data out).

Two layers:

* ``from_http`` undoes transport quirks every Lambda/API Gateway migration meets: header-name
  case, repeated (multi-value) headers, base64 or gzip bodies, gateway-added headers, JSON vs text.
* ``normalise`` applies the declared ``NormaliseRules`` (ignored paths, unordered arrays,
  timestamp fields, header allowlist). It is idempotent: ``normalise(normalise(x)) == normalise(x)``.

Tolerances (numbers, timestamp formats) are equivalences, not rewrites, so they live in ``diff``.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import re
import zlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .paths import PathSet, State, compile_pattern

# Headers API Gateway, load balancers or the proxy itself add or vary per call: never compared.
GATEWAY_HEADERS = frozenset(
    {
        "date",
        "x-amzn-requestid",
        "x-amz-apigw-id",
        "x-amzn-trace-id",
        "x-amzn-remapped-date",
        "x-amzn-remapped-content-length",
        "x-amzn-remapped-connection",
        "x-amz-cf-id",
        "x-amz-cf-pop",
        "x-cache",
        "via",
        "server",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-encoding",  # bodies are compared decoded
        "x-correlation-id",
        "traceparent",
        "tracestate",
    }
)
GATEWAY_HEADER_PREFIXES = ("x-migrate-",)

BodyKind = Literal["json", "text", "binary", "empty", "error"]


class NormaliseRules(BaseModel):
    """What to ignore or relax when comparing two responses of one route.

    Declared globally and per route (``routes.yaml`` → ``shadow``); ``merge`` combines them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ignore: list[str] = Field(default_factory=list, description="JSONPath-like paths never compared; 'header:NAME' drops a header")
    unordered: list[str] = Field(default_factory=list, description="arrays compared as multisets")
    timestamp_paths: list[str] = Field(default_factory=list, description="fields holding instants (epoch s/ms or ISO-8601)")
    timestamps: bool = Field(True, description="ISO-8601 strings equal to the same instant (any offset, or epoch) match")
    abs_tolerance: float = Field(0.0, ge=0)
    rel_tolerance: float = Field(0.0, ge=0)
    header_allowlist: list[str] | None = Field(None, description="only these headers are compared")
    ignore_headers: list[str] = Field(default_factory=list)
    status_only: bool = False
    compare_headers: bool = True

    @field_validator("ignore", "unordered", "timestamp_paths")
    @classmethod
    def _patterns_parse(cls, v: list[str]) -> list[str]:
        for p in v:
            if p.lower().startswith("header:"):
                continue
            compile_pattern(p)  # raises ValueError with the reason → pydantic error
        return v

    @field_validator("header_allowlist", "ignore_headers")
    @classmethod
    def _lower(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [h.strip().lower() for h in v]

    def merge(self, override: NormaliseRules | None) -> NormaliseRules:
        """Global rules + a route's rules: lists add up, scalars the route set explicitly win."""
        if override is None:
            return self
        data = self.model_dump()
        for name in override.model_fields_set:
            value = getattr(override, name)
            if isinstance(value, list) and isinstance(data.get(name), list):
                data[name] = list(dict.fromkeys([*data[name], *value]))
            else:
                data[name] = value
        return NormaliseRules(**data)

    @cached_property
    def compiled(self) -> CompiledRules:
        return CompiledRules(
            ignore=PathSet.of(p for p in self.ignore if not p.lower().startswith("header:")),
            unordered=PathSet.of(self.unordered),
            timestamps=PathSet.of(self.timestamp_paths),
            dropped_headers=frozenset(
                [h.lower() for h in self.ignore_headers]
                + [p.split(":", 1)[1].strip().lower() for p in self.ignore if p.lower().startswith("header:")]
            ),
        )


@dataclass(frozen=True)
class CompiledRules:
    ignore: PathSet
    unordered: PathSet
    timestamps: PathSet
    dropped_headers: frozenset[str]


@dataclass(frozen=True, slots=True)
class NormalisedResponse:
    """A response reduced to what is compared. ``status`` is a string for transport errors."""

    status: int | str
    headers: dict[str, str] = field(default_factory=dict)
    body_kind: BodyKind = "empty"
    body: Any = None


# --- layer 1: transport quirks ------------------------------------------------------------------

_B64 = re.compile(rb"^[A-Za-z0-9+/\r\n]+={0,2}$")


def join_headers(headers: list[tuple[str, str]] | dict[str, Any]) -> dict[str, str]:
    """Lower-case names; repeated headers (and multiValueHeaders lists) joined with ', '."""
    out: dict[str, list[str]] = {}
    items = headers.items() if isinstance(headers, dict) else headers
    for k, v in items:
        values = [str(x) for x in v] if isinstance(v, list | tuple) else [str(v)]
        out.setdefault(k.lower(), []).extend(values)
    return {k: ", ".join(v) for k, v in out.items()}


def decode_body(body: bytes, headers: dict[str, str], *, is_base64: bool = False) -> tuple[BodyKind, Any]:
    """Bytes → (kind, value): parsed JSON, text, sha256 of binary, or empty."""
    if is_base64:
        try:
            body = base64.b64decode(body, validate=False)
        except (binascii.Error, ValueError):
            pass
    enc = headers.get("content-encoding", "").lower()
    if body and enc in ("gzip", "deflate"):
        try:
            body = gzip.decompress(body) if enc == "gzip" else zlib.decompress(body)
        except (OSError, zlib.error, EOFError):
            pass
    if not body or not body.strip():
        return "empty", None
    try:
        return "json", json.loads(body)
    except (ValueError, UnicodeDecodeError):
        pass
    stripped = body.strip()
    # A Lambda that forgot isBase64Encoded=false handling: base64 of a JSON document.
    if len(stripped) >= 8 and len(stripped.replace(b"\n", b"").replace(b"\r", b"")) % 4 == 0 and _B64.match(stripped):
        try:
            return "json", json.loads(base64.b64decode(stripped, validate=False))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            pass
    try:
        return "text", body.decode("utf-8")
    except UnicodeDecodeError:
        return "binary", hashlib.sha256(body).hexdigest()


def from_http(
    status: int,
    headers: list[tuple[str, str]] | dict[str, Any],
    body: bytes,
    rules: NormaliseRules | None = None,
    *,
    is_base64: bool = False,
) -> NormalisedResponse:
    joined = join_headers(headers)
    kind, value = decode_body(body, joined, is_base64=is_base64)
    return normalise(NormalisedResponse(status, joined, kind, value), rules or NormaliseRules())


def from_error(kind: str, rules: NormaliseRules | None = None) -> NormalisedResponse:
    """A side that produced no HTTP response (timeout, connect error) as a comparable value."""
    return NormalisedResponse(f"error:{kind}", {}, "error", None)


# --- layer 2: declared rules ------------------------------------------------------------------


def normalise(resp: NormalisedResponse, rules: NormaliseRules) -> NormalisedResponse:
    if rules.status_only:
        return NormalisedResponse(resp.status, {}, "empty", None)
    c = rules.compiled
    headers = _filter_headers(resp.headers, rules, c) if rules.compare_headers else {}
    body = resp.body
    if resp.body_kind == "json" and (c.ignore or c.unordered or c.timestamps):
        body = _walk(body, c, c.ignore.start(), c.unordered.start(), c.timestamps.start())
    return replace(resp, headers=headers, body=body)


def _filter_headers(headers: dict[str, str], rules: NormaliseRules, c: CompiledRules) -> dict[str, str]:
    allow = rules.header_allowlist
    out = {}
    for k, v in headers.items():
        k = k.lower()
        if allow is not None:
            if k not in allow:
                continue
        elif k in GATEWAY_HEADERS or k.startswith(GATEWAY_HEADER_PREFIXES) or k in c.dropped_headers:
            continue
        if k == "content-type":
            v = v.lower().replace(" ", "")
        out[k] = v
    return out


IGNORED = "<ignored>"


def _walk(value: Any, c: CompiledRules, ign: State, uno: State, ts: State) -> Any:
    if c.timestamps.matched(ts):
        value = canonical_instant(value, numbers=True) or value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            i2 = c.ignore.step(ign, k)
            if i2 and c.ignore.matched(i2):
                continue
            out[k] = _walk(v, c, i2, c.unordered.step(uno, k), c.timestamps.step(ts, k))
        return out
    if isinstance(value, list):
        unordered = c.unordered.matched(uno)
        items = []
        for idx, v in enumerate(value):
            # Positions mean nothing in an unordered array: only [*] patterns apply inside it
            # (a literal [n] would pick a different element after sorting, and break idempotence).
            if unordered:
                idx = -1
            i2 = c.ignore.step(ign, idx)
            if i2 and c.ignore.matched(i2):
                # Keep the slot (removing it would shift later indices, and change lengths).
                items.append(IGNORED)
                continue
            items.append(_walk(v, c, i2, c.unordered.step(uno, idx), c.timestamps.step(ts, idx)))
        if unordered:
            items.sort(key=canonical_json)
        return items
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


# --- instants -------------------------------------------------------------------------------

_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|z|[+-]\d{2}(?::?\d{2})?)?)?$"
)


def parse_instant(value: Any, *, numbers: bool) -> datetime | None:
    """ISO-8601 (any offset; naive = UTC) or, when ``numbers``, epoch s/ms/µs by magnitude."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not numbers:
            return None
        return epoch_to_datetime(value)
    if isinstance(value, str) and len(value) <= 40 and _ISO.match(value):
        s = value.replace(",", ".").replace("z", "Z")
        if "." in s:  # fromisoformat wants at most 6 fractional digits
            head, _, tail = s.partition(".")
            m = re.match(r"\d+", tail)
            digits = m.group(0) if m else ""
            s = head + "." + digits[:6].ljust(6, "0") + tail[len(digits) :]
        try:
            dt = datetime.fromisoformat(s)
        except ValueError:
            return None
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    return None


def epoch_to_datetime(value: float) -> datetime | None:
    a = abs(value)
    scale = 1.0 if a < 1e11 else 1e3 if a < 1e14 else 1e6 if a < 1e17 else 1e9
    try:
        return datetime.fromtimestamp(value / scale, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def canonical_instant(value: Any, *, numbers: bool) -> str | None:
    dt = parse_instant(value, numbers=numbers)
    if dt is None:
        return None
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
