"""Redis state store for several proxy replicas: optimistic WATCH/MULTI transactions.

Keys (prefix default ``chariot-migrate:``, after the deployment namespace: see redis_keys.py): ``services`` hash name → state JSON, ``version``
counter, ``history`` list of entries (append-only), ``history-id`` counter, ``records:<kind>`` hash
key → record JSON (verify/backfill results, reviewed shadow ignores).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import redis

from ..redis_conn import sync_redis
from ..redis_keys import split_redis_url
from .lease import Fence, LeaseLost
from .state import HistoryEntry, ServiceState, stamp
from .store import Mutation, StateStoreError


class RedisStateStore:
    def __init__(self, url: str, prefix: str | None = None) -> None:
        clean, url_prefix = split_redis_url(url, "chariot-migrate:")
        self.prefix = prefix or url_prefix
        self._r = sync_redis(clean, socket_timeout=2, socket_connect_timeout=2, decode_responses=True)
        self._k_services, self._k_version = self.prefix + "services", self.prefix + "version"
        self._k_history, self._k_hid = self.prefix + "history", self.prefix + "history-id"

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except redis.RedisError as e:
            raise StateStoreError(f"Redis state store unavailable: {e}") from e

    def version(self) -> int:
        return int(self._call(self._r.get, self._k_version) or 0)

    def get(self, service: str) -> ServiceState | None:
        raw = self._call(self._r.hget, self._k_services, service)
        return ServiceState.model_validate_json(raw) if raw else None

    def all(self) -> dict[str, ServiceState]:
        raw = self._call(self._r.hgetall, self._k_services)
        return {k: ServiceState.model_validate_json(v) for k, v in raw.items()}

    def update(
        self,
        service: str,
        mutate: Mutation,
        *,
        default: ServiceState,
        actor: str,
        action: str,
        reason: str = "",
        evidence: dict[str, Any] | None = None,
        fence: Fence | None = None,
    ) -> ServiceState:
        """``fence``: apply only while ``fence.key`` holds ``fence.value`` (a controller's leader
        lease), checked inside the transaction: a deposed leader's change raises ``LeaseLost``."""
        result: dict[str, ServiceState] = {}
        watched = [self._k_services, self._k_version, self._k_hid] + ([fence.key] if fence else [])

        def txn(pipe: redis.client.Pipeline) -> None:
            if fence is not None and pipe.get(fence.key) != fence.value:
                raise LeaseLost(f"the controller lease moved on (term {fence.value} is over): change not applied")
            raw = pipe.hget(self._k_services, service)
            before = ServiceState.model_validate_json(raw) if raw else default
            version = int(pipe.get(self._k_version) or 0) + 1
            after = stamp(mutate(before), actor=actor, reason=reason, version=version)
            hid = int(pipe.get(self._k_hid) or 0) + 1
            entry = HistoryEntry(id=hid, service=service, at=time.time(), actor=actor, action=action,
                                 before=before.model_dump(), after=after.model_dump(), reason=reason,
                                 evidence=evidence or {})
            pipe.multi()
            pipe.hset(self._k_services, service, after.model_dump_json())
            pipe.set(self._k_version, version)
            pipe.set(self._k_hid, hid)
            pipe.rpush(self._k_history, entry.model_dump_json())
            result["after"] = after

        self._call(lambda: self._r.transaction(txn, *watched))
        return result["after"]

    def fenced_update(self, service: str, mutate: Mutation, *, fence: Fence, **kw: Any) -> ServiceState:
        return self.update(service, mutate, fence=fence, **kw)

    @property
    def client(self) -> redis.Redis:
        return self._r

    def history(self, service: str | None = None, limit: int = 50) -> list[HistoryEntry]:
        # History is small (human-paced changes); filter client-side.
        raw = self._call(self._r.lrange, self._k_history, 0, -1)
        entries = [HistoryEntry.model_validate(json.loads(x)) for x in raw]
        if service:
            entries = [e for e in entries if e.service == service]
        return entries[-limit:]

    def _k_records(self, kind: str) -> str:
        return f"{self.prefix}records:{kind}"

    def put_record(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        self._call(self._r.hset, self._k_records(kind), key, json.dumps(doc, default=str))

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        raw = self._call(self._r.hget, self._k_records(kind), key)
        return json.loads(raw) if raw else None

    def records(self, kind: str) -> dict[str, dict[str, Any]]:
        raw = self._call(self._r.hgetall, self._k_records(kind))
        return {k: json.loads(v) for k, v in sorted(raw.items())}

    def delete_record(self, kind: str, key: str) -> None:
        self._call(self._r.hdel, self._k_records(kind), key)

    def close(self) -> None:
        self._r.close()
