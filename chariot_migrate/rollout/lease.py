"""One active rollout controller among several replicas: a leader lease in Redis, with fencing.

The lease is one Redis key (``SET NX PX`` by an atomic script) holding ``<fencing token>|<holder>``;
the token comes from a counter bumped at every acquisition, so each term of leadership has its own
value. The holder renews it (compare-and-``PEXPIRE``) every third of the lease; a replica that
finds it gone takes it. A leader acts only while its lease is locally known to be valid (the time
of its last successful renewal, taken *before* the request, plus the lease minus a safety margin).

That alone is not enough (a paused process can wake up believing it still leads), so every state
change of a leader is **fenced**: the state store's transaction watches the lease key and applies
the change only if the key still holds this term's value (``FencedStore``). A deposed leader's
change raises ``LeaseLost`` and is never applied.

The decisions are pure (``LeaseView`` → ``next_action``, ``may_act``, ``after_*``); Redis is at
the edge (``RedisLease``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .store import StateStoreError

DEFAULT_LEASE_MS = 15_000
SAFETY_MARGIN = 0.2  # act only in the first 80 % of a lease (clock rates, scheduling, network)


class LeaseLost(StateStoreError):
    """This replica is no longer the leader (its lease expired or another took it): nothing applied."""


@dataclass(frozen=True)
class Fence:
    """What a fenced write checks inside its transaction: ``key`` still holds ``value``."""

    key: str
    value: str


# ---- pure decisions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseView:
    """What one replica knows about its own leadership."""

    identity: str
    lease_ms: int = DEFAULT_LEASE_MS
    value: str | None = None  # "<token>|<identity>" of the term held, None = not leader
    renewed_at: float | None = None  # monotonic time the last successful acquire/renew was *sent*

    @property
    def token(self) -> int | None:
        return int(self.value.split("|", 1)[0]) if self.value else None


def next_action(v: LeaseView) -> str:
    """``renew`` the term we hold, else ``acquire``."""
    return "renew" if v.value else "acquire"


def may_act(v: LeaseView, now: float, margin: float = SAFETY_MARGIN) -> bool:
    """A leader acts only while its lease is surely still valid."""
    if v.value is None or v.renewed_at is None:
        return False
    return now - v.renewed_at < (v.lease_ms / 1000) * (1 - margin)


def after_acquire(v: LeaseView, value: str | None, sent_at: float) -> LeaseView:
    return replace(v, value=value, renewed_at=sent_at if value else None)


def after_renew(v: LeaseView, ok: bool, sent_at: float) -> LeaseView:
    """A failed renewal (the key is gone or someone else's) ends the term at once."""
    return replace(v, renewed_at=sent_at) if ok else replace(v, value=None, renewed_at=None)


def after_error(v: LeaseView, now: float) -> LeaseView:
    """Redis did not answer: keep the term only while it is surely still valid (may_act decides);
    once it is not, give it up (another replica may hold it by now)."""
    return v if may_act(v, now) else replace(v, value=None, renewed_at=None)


def renew_every_s(lease_ms: int) -> float:
    return lease_ms / 3000


# ---- Redis edge -------------------------------------------------------------------------------

# KEYS[1] lease, KEYS[2] fencing counter (one hash tag: one Cluster slot). ARGV[1] identity, ARGV[2] ms.
_ACQUIRE = """
if redis.call('exists', KEYS[1]) == 1 then return false end
local token = redis.call('incr', KEYS[2])
local value = token .. '|' .. ARGV[1]
redis.call('set', KEYS[1], value, 'NX', 'PX', ARGV[2])
return value
"""
# KEYS[1] lease. ARGV[1] the term's value, ARGV[2] ms.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def lease_keys(prefix: str, name: str) -> tuple[str, str]:
    tag = f"{prefix}{{lease:{name}}}"
    return tag, tag + ":fence"


class RedisLease:
    """The lease of ``name`` in the Redis of a state store (its prefix)."""

    def __init__(self, client: Any, prefix: str, name: str, identity: str, lease_ms: int = DEFAULT_LEASE_MS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._r, self.clock = client, clock
        self.key, self.fence_key = lease_keys(prefix, name)
        self.view = LeaseView(identity=identity, lease_ms=lease_ms)
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self.last_error: str | None = None

    def step(self) -> LeaseView:
        """Acquire or renew once; returns what we now know."""
        import redis

        sent = self.clock()
        try:
            if next_action(self.view) == "renew":
                ok = bool(self._renew(keys=[self.key], args=[self.view.value, self.view.lease_ms]))
                self.view = after_renew(self.view, ok, sent)
            else:
                got = self._acquire(keys=[self.key, self.fence_key], args=[self.view.identity, self.view.lease_ms])
                self.view = after_acquire(self.view, _text(got), sent)
            self.last_error = None
        except redis.RedisError as e:
            self.last_error = f"{type(e).__name__}: {e}"
            self.view = after_error(self.view, self.clock())
        return self.view

    def may_act(self) -> bool:
        return may_act(self.view, self.clock())

    def fence(self) -> Fence:
        if self.view.value is None:
            raise LeaseLost(f"{self.view.identity} does not hold the controller lease")
        return Fence(self.key, self.view.value)

    def holder(self) -> str | None:
        """Who holds the lease now (``<token>|<identity>``), as Redis says."""
        return _text(self._r.get(self.key))

    def release(self) -> None:
        """Step down (on a clean stop) so a standby takes over at once instead of after the lease."""
        if self.view.value:
            try:
                self._release(keys=[self.key], args=[self.view.value])
            except Exception:  # noqa: BLE001 — stopping anyway; the lease then simply expires
                pass
        self.view = replace(self.view, value=None, renewed_at=None)


def _text(v: Any) -> str | None:
    if v is None or v is False:
        return None
    return v.decode() if isinstance(v, bytes) else str(v)


class FencedStore:
    """A state store whose every change applies only while ``lease`` still holds its term, checked
    inside the store's own transaction. Reads pass through."""

    def __init__(self, store: Any, lease: RedisLease) -> None:
        if not hasattr(store, "fenced_update"):
            raise ValueError("fencing needs the Redis state store")
        self._store, self._lease = store, lease

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def update(self, service: str, mutate: Callable[..., Any], **kw: Any) -> Any:
        view = self._lease.view
        if not self._lease.may_act():
            raise LeaseLost(f"{view.identity} is not the leader (its lease is not surely valid)")
        # The history says which replica acted, in which term (the actor stays the controller's).
        kw["evidence"] = {**(kw.get("evidence") or {}), "leader": view.identity, "term": view.token}
        return self._store.fenced_update(service, mutate, fence=self._lease.fence(), **kw)
