"""Proxy add-ons (after mitmproxy's addons): small stages hooked into the request path.

The core path is match → pick side → forward → respond. Features such as shadow comparison and
edge dual writes hook in without touching it:

* ``needs_body(ex)``   – must the primary response be buffered (instead of streamed)?
* ``await response(ex)`` – runs after the primary answered, *before* the client gets the answer
  (dual write appends to the durable outbox here);
* ``done(ex)``         – runs after the answer was sent; must not block (shadow submits here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..rollout.bucketing import Side
from ..rollout.state import ServiceState
from ..routes.matcher import Route
from ..transport import HttpRequest, HttpResponse, Transport, UpstreamError


@dataclass(slots=True)
class Exchange:
    request: HttpRequest
    route: Route | None
    service: str | None
    account: str | None  # the bucket key (effective account), lower-case
    state: ServiceState | None
    side: Side
    decision: str
    primary: Transport
    other: Transport | None  # the side not chosen (None for unmatched routes)
    timeout_s: float
    response: HttpResponse | None = None
    error: UpstreamError | None = None
    latency_s: float = 0.0
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    notes: dict[str, object] = field(default_factory=dict)  # per-add-on decisions for this exchange


class Addon(Protocol):
    def needs_body(self, ex: Exchange) -> bool: ...

    async def response(self, ex: Exchange) -> None: ...

    def done(self, ex: Exchange) -> None: ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...
