"""Outbound alert delivery: rule matching and rendering (pure), and the webhook sender.

* An alert row (``POST /account/alert``) is a rule: ``value`` is a status prefix matched against
  the event's status (``OH`` → open-high risks, ``T`` → every new risk, ``JF`` → failed jobs;
  empty or ``*`` matches everything); ``config.url`` is the webhook target, ``config.template``
  an optional Jinja2 template of the body (default: a JSON document), ``config.events`` an
  optional list restricting the event types.
* Targets must be on the allowlist (``NOTIFY_ALLOWED_HOSTS``: ``host`` or ``host:port``,
  comma-separated); redirects are followed only to the same scheme/host/port.
* Retries with exponential backoff + jitter on transport errors and 5xx/429; 4xx is final.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

DEFAULT_TEMPLATE = (
    '{"type": {{ event.type | tojson }}, "account": {{ event.account | tojson }}, '
    '"occurred_at": {{ event.occurred_at | tojson }}, "data": {{ event.data | tojson }}, '
    '"alert": {{ alert.value | tojson }}}'
)
_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class DeliveryRefused(ValueError):
    """The target may not be called (not allowlisted, bad scheme, template error)."""


def event_status(event_type: str, data: Mapping[str, Any]) -> str:
    return str(data.get("status", "")).split("#", 1)[0]


def matches(alert: Mapping[str, Any], event_type: str, data: Mapping[str, Any]) -> bool:
    config = alert.get("config") or {}
    if not config.get("url"):
        return False
    events = config.get("events")
    if events and event_type not in events:
        return False
    pattern = str(alert.get("value") or "")
    return pattern in ("", "*") or event_status(event_type, data).startswith(pattern)


def parse_allowlist(raw: str | Iterable[str] | None) -> frozenset[str]:
    if raw is None:
        return frozenset()
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    return frozenset(i.strip().lower() for i in items if i.strip())


def check_target(url: str, allowlist: frozenset[str]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryRefused(f"webhook URL must be http(s)://host/…, got scheme {parts.scheme!r}")
    host = parts.hostname.lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if host not in allowlist and f"{host}:{port}" not in allowlist:
        raise DeliveryRefused(f"webhook host {host}:{port} is not in NOTIFY_ALLOWED_HOSTS")


def render(alert: Mapping[str, Any], event: Mapping[str, Any]) -> str:
    source = (alert.get("config") or {}).get("template") or DEFAULT_TEMPLATE
    try:
        return _env.from_string(source).render(event=event, alert=alert)
    except TemplateError as e:
        raise DeliveryRefused(f"alert template error: {e}") from None


def redact_url(url: str) -> str:
    """For the log: no query string or credentials (they often carry tokens)."""
    p = urlsplit(url)
    host = p.hostname or ""
    return f"{p.scheme}://{host}{':' + str(p.port) if p.port else ''}{p.path}"


@dataclass
class Outcome:
    status: str  # delivered | failed | refused
    attempts: int
    http_status: int | None = None
    error: str = ""


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


class WebhookSender:
    def __init__(self, allowlist: frozenset[str], *, timeout: float = 5.0, attempts: int = 4,
                 base_delay: float = 0.2, max_delay: float = 5.0, max_redirects: int = 3,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.allowlist, self.attempts, self.max_redirects = allowlist, attempts, max_redirects
        self.base_delay, self.max_delay, self._sleep = base_delay, max_delay, sleep
        self.http = httpx.AsyncClient(timeout=timeout, follow_redirects=False, transport=transport)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def send(self, url: str, body: str) -> Outcome:
        try:
            check_target(url, self.allowlist)
        except DeliveryRefused as e:
            return Outcome("refused", 0, error=str(e))
        last = Outcome("failed", 0)
        for attempt in range(1, self.attempts + 1):
            last = await self._once(url, body, attempt)
            if last.status in ("delivered", "refused"):
                return last
            if last.http_status is not None and 400 <= last.http_status < 500 and last.http_status != 429:
                return last  # the target rejected the request: retrying cannot help
            if attempt < self.attempts:
                await self._sleep(random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1))))
        return last

    async def _once(self, url: str, body: str, attempt: int) -> Outcome:
        target = url
        for _ in range(self.max_redirects + 1):
            try:
                resp = await self.http.post(target, content=body.encode(),
                                            headers={"Content-Type": "application/json",
                                                     "User-Agent": "chariot-notification/1"})
            except httpx.HTTPError as e:
                return Outcome("failed", attempt, error=f"{type(e).__name__}")
            if resp.is_redirect:
                nxt = urljoin(target, resp.headers.get("location", ""))
                if not _same_origin(url, nxt):
                    return Outcome("refused", attempt, resp.status_code,
                                   f"redirect to another host refused ({redact_url(nxt)})")
                target = nxt
                continue
            if 200 <= resp.status_code < 300:
                return Outcome("delivered", attempt, resp.status_code)
            return Outcome("failed", attempt, resp.status_code, f"HTTP {resp.status_code}")
        return Outcome("failed", attempt, error="too many redirects")


def event_document(event: Any) -> dict[str, Any]:
    return json.loads(event.to_json()) if hasattr(event, "to_json") else dict(event)
