"""Webhooks (``plan.webhooks``): rollout events to chat and tools, and pre-step hooks that gate a step.

```yaml
plan:
  webhooks:
    - {name: chat, url: https://hooks.example.com/T0/B0/x, events: [promoted, held, rolled_back, approval_needed],
       secret_env: CHAT_WEBHOOK_SECRET}
    - {name: load-test, type: pre-step, url: http://loadtester/run, timeout_s: 60}   # non-2xx holds the step
```

Every event is one JSON document (service, from → to percent, the gate evidence, who, why, and a
chat-compatible ``text``), POSTed with retries; with ``secret_env`` the body is signed with
HMAC-SHA256 in ``X-Chariot-Migrate-Signature: sha256=<hex>`` (the secret is read from that
environment variable and never logged). Pure parts (models, event building, signing, the pre-step
verdict) are separate from the sender (the HTTP edge).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .gates import Check

log = logging.getLogger("chariot_migrate.webhooks")

EventKind = Literal["promoted", "held", "rolled_back", "approval_needed"]
EVENTS: tuple[str, ...] = ("promoted", "held", "rolled_back", "approval_needed")
SIGNATURE_HEADER = "X-Chariot-Migrate-Signature"
EVENT_HEADER = "X-Chariot-Migrate-Event"


class Webhook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., min_length=1)
    url: str
    type: Literal["event", "pre-step"] = "event"
    events: list[EventKind] | None = None  # event hooks: which events (default: all); not for pre-step
    timeout_s: float = Field(10.0, gt=0)
    retries: int = Field(3, ge=0, le=10, description="event hooks: retries after the first attempt")
    secret_env: str | None = Field(None, description="environment variable holding the HMAC secret")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"url {v!r} must be an http:// or https:// URL")
        return v

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not v.replace("_", "a").isalnum():
            raise ValueError(f"secret_env {v!r} must name an environment variable (not hold the secret)")
        return v

    @model_validator(mode="after")
    def _events_for_events(self) -> Webhook:
        if self.type == "pre-step" and self.events is not None:
            raise ValueError(f"webhook {self.name!r}: a pre-step hook gates every step; it takes no events")
        return self

    def wants(self, kind: str) -> bool:
        return self.type == "event" and (self.events is None or kind in self.events)


def check_names(hooks: list[Webhook]) -> None:
    names = [h.name for h in hooks]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise ValueError(f"webhook name {dup!r} is used twice")


# --- pure ----------------------------------------------------------------------------------------

def _pct(p: float | None) -> str:
    return "-" if p is None else f"{p:g}%"


def event_text(kind: str, service: str, from_percent: float | None, to_percent: float | None, actor: str,
               reason: str, to_step: str | None = None) -> str:
    verb = {"promoted": "promoted", "held": "held", "rolled_back": "rolled back",
            "approval_needed": "needs approval"}.get(kind, kind)
    if kind in ("promoted", "rolled_back"):
        what = f"{service} {verb} {_pct(from_percent)} → {_pct(to_percent)}"
    elif kind == "approval_needed":
        what = f"{service} {verb} for {_pct(from_percent)} → {_pct(to_percent)}"
    else:
        what = f"{service} {verb} at {_pct(from_percent)} (next {_pct(to_percent)})"
    if to_step in ("shadow", "retired"):
        what += f" (step {to_step})"
    return f"[chariot-migrate] {what} by {actor}: {reason}" if reason else f"[chariot-migrate] {what} by {actor}"


def build_event(kind: str, service: str, *, from_percent: float | None, to_percent: float | None,
                actor: str, reason: str, evidence: Mapping[str, Any] | None = None, from_step: str | None = None,
                to_step: str | None = None, at: float | None = None, event_id: str | None = None) -> dict[str, Any]:
    return {"event": kind, "id": event_id or uuid.uuid4().hex, "at": at if at is not None else time.time(),
            "service": service, "from_percent": from_percent, "to_percent": to_percent,
            "from_step": from_step, "to_step": to_step, "actor": actor, "reason": reason,
            "evidence": dict(evidence or {}),
            "text": event_text(kind, service, from_percent, to_percent, actor, reason, to_step)}


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """For receivers: does ``header`` sign ``body`` with ``secret``?"""
    return hmac.compare_digest(sign(secret, body), header or "")


@dataclass(frozen=True)
class Delivery:
    hook: str
    ok: bool
    status: int | None = None
    error: str | None = None  # why it failed (never contains the secret)
    attempts: int = 1

    def describe(self) -> str:
        if self.ok:
            return f"HTTP {self.status}"
        return self.error or f"HTTP {self.status}"


def pre_step_checks(results: list[Delivery]) -> list[Check]:
    """Each pre-step hook as a gate check: a 2xx passes; anything else holds the step."""
    return [Check(f"pre-step hook {r.hook}", r.ok, r.describe(), "2xx", "hold") for r in results]


def _retryable(status: int | None) -> bool:
    return status is None or status >= 500 or status == 429


# --- the HTTP edge -------------------------------------------------------------------------------

class Notifier:
    """Sends events to the event hooks and asks the pre-step hooks. Never raises: a hook that fails
    is logged (events) or a hold reason (pre-step)."""

    def __init__(self, hooks: list[Webhook], *, env: Mapping[str, str] | None = None,
                 sleep: Callable[[float], None] = time.sleep, backoff_s: float = 0.5, client: Any = None) -> None:
        self.hooks, self.sleep, self.backoff_s = list(hooks), sleep, backoff_s
        self.env = env if env is not None else os.environ
        self._client = client  # made on the first POST (an Operations per admin request costs nothing)

    @classmethod
    def from_config(cls, config: Any) -> Notifier | None:
        """The notifier of a RoutesFile's ``plan.webhooks`` (None when there are none)."""
        hooks = (getattr(config, "plan", None) or {}).get("webhooks") if config is not None else None
        if not hooks:
            return None
        return cls([Webhook.model_validate(h) for h in hooks])

    @property
    def pre_step_hooks(self) -> list[Webhook]:
        return [h for h in self.hooks if h.type == "pre-step"]

    def _post(self, hook: Webhook, doc: dict[str, Any], attempts: int) -> Delivery:
        import httpx

        body = json.dumps(doc, default=str, sort_keys=True).encode()
        headers = {"content-type": "application/json", EVENT_HEADER: str(doc.get("event")),
                   "user-agent": "chariot-migrate"}
        if hook.secret_env:
            secret = self.env.get(hook.secret_env)
            if not secret:
                return Delivery(hook.name, False, error=f"secret env var {hook.secret_env} is not set; not sent",
                                attempts=0)
            headers[SIGNATURE_HEADER] = sign(secret, body)
        if self._client is None:
            self._client = httpx.Client()
        last = Delivery(hook.name, False, error="not sent", attempts=0)
        for i in range(attempts):
            if i:
                self.sleep(min(self.backoff_s * 2 ** (i - 1), 10.0))
            try:
                r = self._client.post(hook.url, content=body, headers=headers, timeout=hook.timeout_s)
            except httpx.TimeoutException:
                last = Delivery(hook.name, False, error=f"no answer within {hook.timeout_s:g} s", attempts=i + 1)
                continue
            except httpx.HTTPError as e:
                last = Delivery(hook.name, False, error=f"{type(e).__name__}: {e}", attempts=i + 1)
                continue
            last = Delivery(hook.name, 200 <= r.status_code < 300, r.status_code, attempts=i + 1)
            if last.ok or not _retryable(r.status_code):
                break
        return last

    def emit(self, event: dict[str, Any]) -> list[Delivery]:
        out = []
        for hook in self.hooks:
            if not hook.wants(event["event"]):
                continue
            d = self._post(hook, event, 1 + hook.retries)
            if not d.ok:
                log.warning("webhook %s: %s event for %s not delivered: %s", hook.name, event["event"],
                            event.get("service"), d.describe())
            out.append(d)
        return out

    def pre_step(self, payload: dict[str, Any]) -> list[Delivery]:
        """One attempt per pre-step hook (the controller asks again next interval)."""
        return [self._post(h, {**payload, "event": "pre-step"}, 1) for h in self.pre_step_hooks]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
