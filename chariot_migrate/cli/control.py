"""How the CLI changes live state: straight in the store, or through a proxy's admin API.

Both paths run the same ``Operations`` code (the admin API calls it server-side), so they agree.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from ..rollout.operations import Operations
from ..rollout.store import open_state_store
from ..routes.loader import RoutesError, load_table
from .common import ControlError, routes_path


class DirectControl:
    def __init__(self, routes: str | None, state: str | None, *, need_routes: bool = True) -> None:
        path = routes_path(routes)
        try:
            cfg = load_table(path).config
        except RoutesError:
            if need_routes:
                raise
            cfg = None
        self.ops = Operations(open_state_store(state), cfg)

    def status(self) -> dict[str, Any]:
        return {"version": self.ops.store.version(), "services": [r.as_dict() for r in self.ops.status()]}

    def shift(self, service: str, percent: float, reason: str, force: bool) -> dict[str, Any]:
        return self.ops.shift(service, percent, reason=reason, force=force).model_dump()

    def shadow(self, service: str, percent: float, reason: str) -> dict[str, Any]:
        return self.ops.set_shadow(service, percent, reason=reason).model_dump()

    def rollback(self, service: str, reason: str) -> dict[str, Any]:
        return self.ops.rollback(service, reason=reason).model_dump()

    def pin(self, service: str, account: str, to: str, reason: str) -> dict[str, Any]:
        return self.ops.pin(service, account, to, reason=reason).model_dump()  # type: ignore[arg-type]

    def unpin(self, service: str, account: str) -> dict[str, Any]:
        return self.ops.unpin(service, account).model_dump()

    def history(self, service: str | None, limit: int) -> list[dict[str, Any]]:
        return [h.model_dump() for h in self.ops.history(service, limit)]


class AdminControl:
    def __init__(self, url: str, token: str | None = None) -> None:
        token = token or os.environ.get("CHARIOT_MIGRATE_ADMIN_TOKEN")
        if not token:
            raise ControlError("--admin-url needs the admin token in CHARIOT_MIGRATE_ADMIN_TOKEN")
        self.client = httpx.Client(base_url=url.rstrip("/"), timeout=10,
                                   headers={"authorization": f"Bearer {token}", "x-actor": _actor()})

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = self.client.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise ControlError(f"admin API at {self.client.base_url} unreachable: {e}") from None
        if r.status_code >= 400:
            try:
                msg = r.json().get("error") or r.json().get("detail")
            except ValueError:
                msg = r.text
            raise ControlError(f"admin API refused ({r.status_code}): {msg}")
        return r.json()

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/state")

    def shift(self, service: str, percent: float, reason: str, force: bool) -> dict[str, Any]:
        return self._call("POST", f"/services/{service}/shift", json={"percent": percent, "reason": reason, "force": force})

    def shadow(self, service: str, percent: float, reason: str) -> dict[str, Any]:
        return self._call("POST", f"/services/{service}/shadow", json={"percent": percent, "reason": reason})

    def rollback(self, service: str, reason: str) -> dict[str, Any]:
        return self._call("POST", f"/services/{service}/rollback", json={"reason": reason})

    def pin(self, service: str, account: str, to: str, reason: str) -> dict[str, Any]:
        return self._call("POST", f"/services/{service}/pins", json={"account": account, "to": to, "reason": reason})

    def unpin(self, service: str, account: str) -> dict[str, Any]:
        return self._call("DELETE", f"/services/{service}/pins/{account}")

    def history(self, service: str | None, limit: int) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if service:
            params["service"] = service
        return self._call("GET", "/history", params=params)


def _actor() -> str:
    from ..rollout.operations import default_actor

    return default_actor()


def control(routes: str | None, state: str | None, admin_url: str | None, *, need_routes: bool = True):
    url = admin_url or os.environ.get("CHARIOT_MIGRATE_ADMIN_URL")
    return AdminControl(url) if url else DirectControl(routes, state, need_routes=need_routes)
