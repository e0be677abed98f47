"""Per-account settings and feature flags, hot-reloaded from ``config.changed`` events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from .events import Event, Subscription

# ---- feature flags ----------------------------------------------------------------------------


class FlagCache:
    """Per-account settings / flags kept current by ``config.changed`` events (hot reload).

    ``flags.subscription("my-service")`` goes into ``create_chariot_app(subscriptions=[...])``;
    ``flags.get(account, "name", default)`` / ``flags.enabled(account, "name")`` read it. An
    optional async ``loader(account) -> {name: value}`` fills an account on first use.
    """

    def __init__(self, loader: Callable[[str], Awaitable[Mapping[str, Any]]] | None = None,
                 scopes: Sequence[str] = ("setting", "flag")) -> None:
        self.loader = loader
        self.scopes = frozenset(scopes)
        self._values: dict[str, dict[str, Any]] = {}
        self._loaded: set[str] = set()
        # Names changed by events (set or deleted) per account: they beat a later-finishing load.
        self._touched: dict[str, set[str]] = {}

    def apply(self, event: Event) -> None:
        """Fold one ``config.changed`` event into the cache (pure state update)."""
        data = event.data
        if data.get("scope") not in self.scopes:
            return
        values = self._values.setdefault(event.account, {})
        self._touched.setdefault(event.account, set()).add(data["name"])
        if data.get("deleted"):
            values.pop(data["name"], None)
        else:
            values[data["name"]] = data.get("value")

    async def handle(self, event: Event) -> None:
        self.apply(event)

    def subscription(self, group: str) -> Subscription:
        return (group, ["config.changed"], self.handle)

    async def _ensure(self, account: str) -> dict[str, Any]:
        if account not in self._loaded and self.loader is not None:
            loaded = dict(await self.loader(account))
            # Events applied before or during the load are newer than it: they win.
            current = self._values.get(account, {})
            for name in self._touched.get(account, set()):
                loaded.pop(name, None)
            loaded.update(current)
            self._values[account] = loaded
            self._loaded.add(account)
        return self._values.get(account, {})

    async def get(self, account: str, name: str, default: Any = None) -> Any:
        return (await self._ensure(account)).get(name, default)

    async def enabled(self, account: str, name: str) -> bool:
        value = await self.get(account, name, False)
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on", "enabled")
        return bool(value)

    def snapshot(self, account: str) -> dict[str, Any]:
        return dict(self._values.get(account, {}))
