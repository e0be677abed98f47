"""Reading entities another graph service owns: its internal API (consistent) or our read model.

Graph relationships cross the service line (an asset ``HAS_VULNERABILITY`` risks; a risk sits on
an asset or attribute). When the peer's URL is configured we ask its internal API with a
service-to-service token, so answers are as fresh as legacy's single table; without it (or when
the peer is down) the read model fed by the peer's events answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import httpx

from chariot_migrate.services.kit.context import outbound_headers

from .entity_table import EntityTable

log = logging.getLogger("chariot.graph.peers")
INTERNAL_ENTITY = "/internal/api/entity"
INTERNAL_ENTITIES = "/internal/api/entities"


class PeerSource(Protocol):
    """Entities another service owns, seen from here (read model or that service's internal API)."""

    def get(self, username: str, key: str) -> dict[str, Any] | None: ...

    def list(self, username: str, kind: str) -> list[dict[str, Any]]: ...


class ReadModelSource:
    """A peer's entities as this service's read-model table holds them."""

    def __init__(self, table: EntityTable) -> None:
        self.table = table

    def get(self, username: str, key: str) -> dict[str, Any] | None:
        return self.table.get(username, key)

    def list(self, username: str, kind: str) -> list[dict[str, Any]]:
        return self.table.query_all(username, f"#{kind}#")


class PeerUnavailable(Exception):
    pass


class HttpPeerSource:
    """A peer's internal API (sync; routes call it from a worker thread)."""

    def __init__(self, base_url: str, token: Callable[[], str] | None, *, timeout: float = 5.0,
                 client: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.client = client or httpx.Client(timeout=timeout)

    def _headers(self, username: str) -> dict[str, str]:
        headers = {"account": username, **outbound_headers()}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token()}"
        return headers

    def _get(self, path: str, username: str, params: dict[str, str]) -> Any:
        try:
            resp = self.client.get(self.base_url + path, params=params, headers=self._headers(username))
        except httpx.HTTPError as exc:
            raise PeerUnavailable(f"{type(exc).__name__}") from None
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise PeerUnavailable(f"status {resp.status_code}")
        return resp.json()

    def get(self, username: str, key: str) -> dict[str, Any] | None:
        return self._get(INTERNAL_ENTITY, username, {"key": key})

    def list(self, username: str, kind: str) -> list[dict[str, Any]]:
        body = self._get(INTERNAL_ENTITIES, username, {"prefix": f"#{kind}#"})
        return list((body or {}).get("items", []))


class FallbackSource:
    """The peer first; on :class:`PeerUnavailable` the read model (logged, never silent)."""

    def __init__(self, primary: PeerSource, fallback: PeerSource, peer_name: str) -> None:
        self.primary, self.fallback, self.peer_name = primary, fallback, peer_name

    def get(self, username: str, key: str) -> dict[str, Any] | None:
        try:
            return self.primary.get(username, key)
        except PeerUnavailable as exc:
            log.warning("peer unavailable, using read model", extra={"peer": self.peer_name, "error": str(exc)})
            return self.fallback.get(username, key)

    def list(self, username: str, kind: str) -> list[dict[str, Any]]:
        try:
            return self.primary.list(username, kind)
        except PeerUnavailable as exc:
            log.warning("peer unavailable, using read model", extra={"peer": self.peer_name, "error": str(exc)})
            return self.fallback.list(username, kind)
