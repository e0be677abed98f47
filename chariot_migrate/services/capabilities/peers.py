"""What a job needs from the services that own the entities, behind two small interfaces.

Choice (brief: "kit.client OR events"): results are applied by calling the owning services'
own API (asset-discovery ``PUT /asset``/``PUT /attribute``/``POST /preseed``, risk-assessment
``PUT /risk``) through ``kit.ServiceClient`` with a service token acting for the account. A
synchronous call tells the saga whether each write landed, so a failure can be compensated and
the job marked JF; events would be fire-and-forget (no per-result outcome, and there is no
event type for attributes or preseeds). The peers keep every rule (keys, statistics, history)
because they run their normal write path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from chariot_migrate.model import keys

from ..kit.client import ServiceClient

LABEL_OF_KIND = {"asset": "Asset", "attribute": "Attribute", "risk": "Risk", "preseed": "Preseed"}
# The owning services' internal read API (service tokens only): one entity / a kind's entities.
INTERNAL_ENTITY = "/internal/api/entity"
INTERNAL_ENTITIES = "/internal/api/entities"


class PeerError(RuntimeError):
    """A peer service refused or failed a call (message names the call and the answer)."""


class PeersNotConfigured(PeerError):
    """The service was started without its peers' URLs (a deployment error, said plainly)."""


class TargetLookup(Protocol):
    async def get(self, account: str, key: str) -> dict[str, Any] | None: ...

    async def attributes_of(self, account: str, source_key: str, name: str) -> list[dict[str, Any]]: ...


class ResultSink(Protocol):
    """Writes one result each; returns the stored entity (its key identifies it for undo)."""

    async def asset(self, account: str, dns: str, name: str, capability: str) -> dict[str, Any]: ...

    async def attribute(self, account: str, source: str, name: str, value: str, capability: str) -> dict[str, Any]: ...

    async def risk(self, account: str, target: str, name: str, status: str, capability: str) -> dict[str, Any]: ...

    async def preseed(self, account: str, type_: str, title: str, value: str, capability: str) -> dict[str, Any]: ...

    async def undo(self, account: str, kind: str, key: str) -> None: ...


class HttpPeers:
    """TargetLookup + ResultSink over asset-discovery and risk-assessment."""

    def __init__(self, asset_url: str, risk_url: str, token: Callable[[], str], *, timeout: float = 5.0,
                 transport: Any = None) -> None:
        self.assets = ServiceClient(asset_url, peer="asset-discovery", token=token, timeout=timeout,
                                    transport=transport)
        self.risks = ServiceClient(risk_url, peer="risk-assessment", token=token, timeout=timeout,
                                   transport=transport)

    async def aclose(self) -> None:
        await self.assets.aclose()
        await self.risks.aclose()

    def _client(self, kind: str) -> ServiceClient:
        return self.risks if kind == "risk" else self.assets

    async def _call(self, client: ServiceClient, method: str, path: str, account: str, body: Any) -> Any:
        resp = await client.request(method, path, account=account, json=body)
        if resp.status_code >= 300:
            raise PeerError(f"{client.peer} {method} {path} answered {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    async def get(self, account: str, key: str) -> dict[str, Any] | None:
        kind = keys.kind_of(key)
        if kind not in LABEL_OF_KIND:
            return None
        client = self._client(kind)
        resp = await client.get(INTERNAL_ENTITY, account=account, params={"key": key})
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise PeerError(f"{client.peer} GET {INTERNAL_ENTITY} answered {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    async def attributes_of(self, account: str, source_key: str, name: str) -> list[dict[str, Any]]:
        resp = await self.assets.get(INTERNAL_ENTITIES, account=account, params={"prefix": f"#attribute#{name}#"})
        if resp.status_code != 200:
            raise PeerError(f"asset-discovery GET {INTERNAL_ENTITIES} answered {resp.status_code}")
        return [r for r in resp.json().get("items", []) if r.get("source") == source_key]

    async def asset(self, account: str, dns: str, name: str, capability: str) -> dict[str, Any]:
        out = await self._call(self.assets, "PUT", "/asset", account,
                               {"group": dns, "identifier": name, "status": "A", "type": "asset"})
        return out[0] if isinstance(out, list) and out else out

    async def attribute(self, account: str, source: str, name: str, value: str, capability: str) -> dict[str, Any]:
        out = await self._call(self.assets, "PUT", "/attribute", account, {"key": source, "name": name, "value": value})
        return (out.get("attributes") or [out])[0]

    async def risk(self, account: str, target: str, name: str, status: str, capability: str) -> dict[str, Any]:
        out = await self._call(self.risks, "PUT", "/risk", account,
                               {"key": target, "name": name, "status": status, "source": capability})
        return (out.get("risks") or [out])[0]

    async def preseed(self, account: str, type_: str, title: str, value: str, capability: str) -> dict[str, Any]:
        out = await self._call(self.assets, "POST", "/preseed", account,
                               {"type": type_, "title": title, "value": value, "status": "A"})
        return out[0] if isinstance(out, list) and out else out

    async def undo(self, account: str, kind: str, key: str) -> None:
        if kind == "asset":
            await self._call(self.assets, "DELETE", "/asset", account, {"key": key})
        elif kind == "attribute":
            await self._call(self.assets, "DELETE", "/attribute", account, {"key": key})
        elif kind == "preseed":
            await self._call(self.assets, "DELETE", "/preseed", account, {"key": key})
        elif kind == "risk":
            await self._call(self.risks, "DELETE", "/risk", account, {"key": key, "status": "DIO"})


class MissingPeers:
    """Used when no peer URLs are configured: every call fails with the reason (503 to clients)."""

    reason = "capabilities has no asset-discovery/risk-assessment URL configured (ASSET_URL, RISK_URL)"

    async def _fail(self, *args: Any) -> Any:
        raise PeersNotConfigured(self.reason)

    get = attributes_of = _fail

    asset = attribute = risk = preseed = _fail

    async def undo(self, account: str, kind: str, key: str) -> None:
        return None
