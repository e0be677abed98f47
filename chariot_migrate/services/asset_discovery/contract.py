"""The legacy API contract the graph services (asset-discovery, risk-assessment) keep byte for byte.

Pure pieces (no I/O): the error format (``{"message": ...}`` with the legacy status), request
body parsing with the legacy messages, the write context (who, for which account, when, and
whether a dual-write replay may impose its generated values), and the public rendering of
stored items (hidden ``_`` attributes dropped, as the legacy ``plain`` does).
risk-assessment imports this module too: it is the shared Chariot graph contract, not
asset-discovery internals.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from chariot_migrate.model.requests import describe

M = TypeVar("M", bound=BaseModel)
READ_ONLY_WRITE = "Forbidden: the readonly role cannot write"


class ApiError(Exception):
    """An error the client sees as ``status`` + ``{"message": message}`` (legacy format)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def error_of(exc: Exception) -> ApiError | None:
    """Map an exception to the error legacy's ``api`` wrapper would answer (None: a real 500)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ValidationError):
        return ApiError(400, describe(exc))
    if isinstance(exc, ValueError):  # key-format and status rules raise ValueError with the reason
        return ApiError(400, str(exc))
    return None


def parse_body(raw: bytes, default: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON object body, with the legacy handlers' messages (sync twin of ``common.json_body``)."""
    if not raw.strip():
        if default is not None:
            return default
        raise bad_request("request body must be a JSON object")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise bad_request(f"request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    return body


def validate(cls: type[M], data: Any) -> M:
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise bad_request(describe(e)) from None


def public(obj: Any) -> Any:
    """Stored item → response JSON: attributes starting with ``_`` are internal (counters, versions)."""
    if isinstance(obj, dict):
        return {k: public(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [public(v) for v in obj]
    return obj


@dataclass(slots=True)
class WriteContext:
    """Who writes, into which account, at which time; events to publish once the write succeeded."""

    principal: str
    username: str
    role: str = "admin"
    replay: bool = False  # a trusted dual-write replay: adopt the primary's generated values
    now: str = ""
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    primary: dict[str, Any] = field(default_factory=dict)  # a replay's primary answer (generated values)
    internal: bool = False  # a peer service (service token): may set provenance fields (source, origin)

    def adopt(self, body: dict[str, Any] | None, name: str, default: Any) -> Any:
        if self.replay:
            for source in (self.primary, body):  # the primary's answer is authoritative
                if source and source.get(name) not in (None, ""):
                    return source[name]
        return default

    def stamp(self, body: dict[str, Any] | None = None, name: str = "updated") -> str:
        return self.adopt(body, name, self.now)

    def emit(self, event_type: str, data: dict[str, Any]) -> None:
        self.events.append((event_type, data))

    def require_writer(self) -> None:
        if self.role == "readonly":
            raise ApiError(403, READ_ONLY_WRITE)


# Legacy stores every item with GSI key attributes that are non-empty strings or absent.
GSI_FIELDS = ("status", "source", "dns")


def storable(item: dict[str, Any]) -> dict[str, Any]:
    """The item as the legacy table keeps it: empty/non-string GSI attributes dropped."""
    out = dict(item)
    for f in GSI_FIELDS:
        if f in out and (not isinstance(out[f], str) or out[f] == ""):
            out.pop(f)
    return out
