"""Proxy add-ons (after mitmproxy's addons): small stages hooked into the request path.

The core path is match → authenticate → limit → decide side → forward → respond (``app.py``).
Features such as shadow comparison and edge dual writes hook in without touching it:

* ``applies(route, state)`` – could the add-on do anything for requests on this route under this
  service state? Asked once per route and state change (``app.RoutePlan``), not per request: an
  add-on that does not apply costs a route's requests nothing (no shadow work while a service is
  not shadowed, no dual-write work while it does not dual write);
* ``await before(ex)`` – after the side is decided, before forwarding (dual write waits here for
  other services' writes still on their way to the chosen side; tracing opens its span);
* ``needs_body(ex)``   – must the primary response be buffered (instead of streamed)?
* ``await response(ex)`` – runs after the primary answered, *before* the client gets the answer
  (dual write appends to the durable outbox here);
* ``done(ex)``         – runs after the answer was sent; must not block (shadow submits here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..rollout.bucketing import Side
from ..rollout.state import ServiceState
from ..routes.matcher import Route
from ..transport import HttpRequest, HttpResponse, Transport, UpstreamError
from .decide import DecisionInput


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
    decided: DecisionInput | None = None  # what the side was decided from (failover asks again)


class Addon(Protocol):
    def applies(self, route: Route | None, state: ServiceState | None) -> bool: ...

    async def before(self, ex: Exchange) -> None: ...

    def needs_body(self, ex: Exchange) -> bool: ...

    async def response(self, ex: Exchange) -> None: ...

    def done(self, ex: Exchange) -> None: ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class WritesInFlight(Protocol):
    """An add-on that knows which writes are still on their way to a side (dual write): the side
    decision drains an account away from a side that lacks some of its writes."""

    async def pending_toward(self, account: str, service: str, target: str) -> bool: ...
