"""External calls of the inbound webhook, each behind kit.ServiceClient (timeouts, retries for
idempotent calls, a circuit breaker per peer):

* notification ``GET /internal/api/hook`` — is this the account's webhook pin?
* asset-discovery ``PUT /asset`` and ``PUT /attribute`` — the normalised asset and its
  ``source=webhook`` attribute;
* risk-assessment ``PUT /risk`` — the finding, as a triage (TI) risk on the asset.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from ..kit.breaker import BreakerConfig
from ..kit.client import ServiceClient


class PeerError(RuntimeError):
    pass


class PeerRejected(PeerError):
    """A peer refused the data itself (400/404/409/413/422): the webhook's input was bad, not a
    peer being down. ``reason`` is the peer's own message."""

    def __init__(self, peer: str, status: int, reason: str) -> None:
        super().__init__(f"{peer} answered {status}: {reason}")
        self.status = status
        self.reason = reason


REJECTING_STATUSES = frozenset({400, 404, 409, 413, 422})


def peer_reason(text: str) -> str:
    """The ``{"message"}`` of a peer's answer, else its text (shortened)."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    return str(message if isinstance(message, str) and message else text)[:300]


class HookPeers(Protocol):
    async def pin_valid(self, account: str, pin: str) -> bool: ...

    async def put_asset(self, account: str, dns: str, name: str) -> dict[str, Any]: ...

    async def put_attribute(self, account: str, source: str, name: str, value: str) -> dict[str, Any]: ...

    async def put_risk(self, account: str, target: str, name: str, status: str, source: str) -> dict[str, Any]: ...


class HttpHookPeers:
    def __init__(self, notification_url: str, asset_url: str, risk_url: str, token: Callable[[], str], *,
                 timeout: float = 5.0, breaker: BreakerConfig | None = None, transport: Any = None) -> None:
        def client(url: str, peer: str) -> ServiceClient:
            return ServiceClient(url, peer=peer, token=token, timeout=timeout, breaker_config=breaker,
                                 transport=transport)

        self.notification = client(notification_url, "notification")
        self.assets = client(asset_url, "asset-discovery")
        self.risks = client(risk_url, "risk-assessment")

    async def aclose(self) -> None:
        for c in (self.notification, self.assets, self.risks):
            await c.aclose()

    async def _put(self, c: ServiceClient, path: str, account: str, body: dict[str, Any]) -> Any:
        resp = await c.put(path, account=account, json=body)
        if resp.status_code in REJECTING_STATUSES:
            raise PeerRejected(c.peer, resp.status_code, peer_reason(resp.text))
        if resp.status_code >= 300:
            raise PeerError(f"{c.peer} PUT {path} answered {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    async def pin_valid(self, account: str, pin: str) -> bool:
        resp = await self.notification.get("/internal/api/hook", params={"account": account, "pin": pin})
        if resp.status_code != 200:
            raise PeerError(f"notification answered {resp.status_code}")
        return bool(resp.json().get("valid"))

    async def put_asset(self, account: str, dns: str, name: str) -> dict[str, Any]:
        out = await self._put(self.assets, "/asset", account, {"group": dns, "identifier": name, "status": "A",
                                                               "source": "provided", "origin": "webhook"})
        return out[0] if isinstance(out, list) else out

    async def put_attribute(self, account: str, source: str, name: str, value: str) -> dict[str, Any]:
        out = await self._put(self.assets, "/attribute", account, {"key": source, "name": name, "value": value})
        return (out.get("attributes") or [out])[0]

    async def put_risk(self, account: str, target: str, name: str, status: str, source: str) -> dict[str, Any]:
        out = await self._put(self.risks, "/risk", account,
                              {"key": target, "name": name, "status": status, "source": source})
        return (out.get("risks") or [out])[0]


class MissingHookPeers:
    reason = "integration-hub has no NOTIFICATION_URL/ASSET_URL/RISK_URL configured"

    async def _fail(self, *a: Any) -> Any:
        raise PeerError(self.reason)

    pin_valid = put_asset = put_attribute = put_risk = _fail
