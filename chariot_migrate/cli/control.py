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
        self.state_url = state
        self.ops = Operations(open_state_store(state), cfg, state_url=state)

    def _done(self, s) -> dict[str, Any]:
        return {**s.model_dump(), "notes": list(self.ops.notes)}

    def status(self) -> dict[str, Any]:
        doc = {"version": self.ops.store.version(), "services": [r.as_dict() for r in self.ops.status()]}
        if self.ops.config is not None:
            from .prepare_cmd import dual_write_honoured

            problem, notes = dual_write_honoured(self.ops.config, self.state_url, None)
            doc["dual_write_honoured"] = problem or "; ".join(notes)
        return doc

    def shift(self, service: str, percent: float, reason: str, force: bool) -> dict[str, Any]:
        return self._done(self.ops.shift(service, percent, reason=reason, force=force))

    def shadow(self, service: str, percent: float, reason: str) -> dict[str, Any]:
        return self.ops.set_shadow(service, percent, reason=reason).model_dump()

    def rollback(self, service: str, reason: str, force: bool = False) -> dict[str, Any]:
        return self._done(self.ops.rollback(service, reason=reason, force=force))

    def pin(self, service: str, account: str, to: str, reason: str, force: bool = False) -> dict[str, Any]:
        return self._done(self.ops.pin(service, account, to, reason=reason, force=force))  # type: ignore[arg-type]  # pin() refuses any other side

    def unpin(self, service: str, account: str, reason: str = "", force: bool = False) -> dict[str, Any]:
        return self._done(self.ops.unpin(service, account, reason=reason, force=force))

    def history(self, service: str | None, limit: int) -> list[dict[str, Any]]:
        return [h.model_dump() for h in self.ops.history(service, limit)]

    def dual_write(self, service: str, mode: str, percent: float, reason: str, force: bool) -> dict[str, Any]:
        return self._done(self.ops.set_dual_write(service, mode, percent, reason=reason, force=force))  # type: ignore[arg-type]  # on|off checked by the command

    def approve(self, service: str, step: str | None, reason: str) -> dict[str, Any]:
        target, s = self.ops.approve_next(service, step, reason=reason)
        return {"approved": target, **(self._done(s) if s is not None else {})}


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

    def rollback(self, service: str, reason: str, force: bool = False) -> dict[str, Any]:
        return self._call("POST", f"/services/{service}/rollback", json={"reason": reason, "force": force})

    def pin(self, service: str, account: str, to: str, reason: str, force: bool = False) -> dict[str, Any]:
        return self._call("POST", f"/services/{service}/pins",
                          json={"account": account, "to": to, "reason": reason, "force": force})

    def unpin(self, service: str, account: str, reason: str = "", force: bool = False) -> dict[str, Any]:
        return self._call("DELETE", f"/services/{service}/pins/{account}",
                          params={"reason": reason, "force": str(force).lower()})

    def history(self, service: str | None, limit: int) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if service:
            params["service"] = service
        return self._call("GET", "/history", params=params)

    def dual_write(self, service: str, mode: str, percent: float, reason: str, force: bool) -> dict[str, Any]:
        return self._call("POST", f"/services/{service}/dual-write",
                          json={"mode": mode, "percent": percent, "reason": reason, "force": force})

    def approve(self, service: str, step: str | None, reason: str) -> dict[str, Any]:
        return self._call("POST", f"/services/{service}/approve", json={"step": step, "reason": reason})

    def advance(self, service: str, reason: str, force: bool) -> dict[str, Any]:
        """The admin process evaluates the gates on its own stores and takes the step."""
        return self._call("POST", f"/services/{service}/advance", json={"reason": reason, "force": force})

    def tick(self, service: str, reason: str, force: bool) -> dict[str, Any]:
        """One controller evaluation by the admin process: promote, hold or roll back."""
        return self._call("POST", f"/services/{service}/tick", json={"reason": reason, "force": force})


def _actor() -> str:
    from ..rollout.operations import default_actor

    return default_actor()


def control(routes: str | None, state: str | None, admin_url: str | None, *, need_routes: bool = True):
    url = admin_url or os.environ.get("CHARIOT_MIGRATE_ADMIN_URL")
    return AdminControl(url) if url else DirectControl(routes, state, need_routes=need_routes)
