"""Assume-role membership lookups against the account service's internal API (cached)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .auth import ROLE_RANK, AuthError
from .cache import TTLCache
from .client import ServiceClient

log = logging.getLogger("chariot.services")


class AccountMembership:
    """Membership lookups against the account service's internal API, cached (roles and misses).

    ``GET {account_url}/internal/api/membership?account=&principal=`` → ``{"role": "analyst"}``
    (``{"role": null}`` for no membership). An unreachable account service is a 503, not a 403.
    """

    def __init__(
        self,
        account_url: str,
        *,
        token: Callable[[], str] | None,
        ttl: float = 30.0,
        transport: Any = None,
    ) -> None:
        self.client = ServiceClient(account_url, peer="account", token=token, timeout=3.0, transport=transport)
        self.cache: TTLCache[str] = TTLCache(4096, ttl)

    async def __call__(self, account: str, principal: str) -> str | None:
        cache_key = f"{account}\n{principal}"
        cached = self.cache.get(cache_key)
        if cached is not None:
            return cached or None
        try:
            resp = await self.client.get(
                "/internal/api/membership", params={"account": account, "principal": principal}
            )
        except Exception as exc:  # transport error, open circuit: the answer is unknown, not "no"
            log.warning("membership lookup failed", extra={"error": type(exc).__name__})
            raise AuthError(503, "membership lookup unavailable: try again shortly") from None
        if resp.status_code != 200:
            log.warning("membership lookup refused", extra={"status": resp.status_code})
            raise AuthError(503, "membership lookup unavailable: try again shortly")
        role = (resp.json() or {}).get("role")
        role = role if role in ROLE_RANK else None
        self.cache.set(cache_key, role or "")
        return role

    async def aclose(self) -> None:
        await self.client.aclose()
