"""The legacy API contract the graph services (asset-discovery, risk-assessment) keep byte for byte.

Pure pieces (no I/O): the error format (``{"message": ...}`` with the legacy status), body
validation with the legacy messages, the write context (who, for which account, when, and
whether a dual-write replay may impose its generated values), and the public rendering of
stored items (hidden ``_`` attributes dropped, as the legacy ``plain`` does).
Both graph services build on it (it is the kit's graph contract, not one service's internals).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chariot_migrate.model.errors import ApiError, error_of
from chariot_migrate.model.requests import parse_model as validate  # the graph ops' name for it

__all__ = ["READ_ONLY_WRITE", "WriteContext", "error_of", "public", "validate"]

READ_ONLY_WRITE = "Forbidden: the readonly role cannot write"


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


