"""Library-level dual write for service code: ``MigrationRepository``.

Writes go to the primary repository (chosen by the account's bucket), then to the
secondary. A failed secondary write is appended to the outbox — never only logged — and the
normal :class:`~chariot_migrate.dual_write.worker.ReplayWorker` delivers it later through a
:class:`RepositoryTransport`. While an account's lane still holds undelivered records, its
new secondary writes are queued behind them instead of written directly, so the secondary
never applies a later write before an earlier one.

Repositories are anything with ``put(item)``, ``get(key)`` and ``delete(key)``, sync or async.
Outbox records for repository writes use ``route_id = "repo:<name>"``, method ``PUT`` (body
``{"item": …}``) or ``DELETE`` (body ``{"key": …}``), bodies encoded with
:func:`~chariot_migrate.dual_write.migration.dumps_item` so DynamoDB values survive.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Callable
from typing import Any, Protocol

from chariot_migrate.dual_write.migration import Item, dumps_item, loads_item
from chariot_migrate.dual_write.outbox import Outbox
from chariot_migrate.dual_write.records import PrimaryResult, ReplayRecord, ReplayRequest, Side
from chariot_migrate.transport import HttpRequest, HttpResponse

log = logging.getLogger("chariot_migrate.dual_write.repository")


class Repository(Protocol):
    def put(self, item: Item) -> Any: ...

    def get(self, key: Item) -> Any: ...

    def delete(self, key: Item) -> Any: ...


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    res = fn(*args)
    return await res if inspect.isawaitable(res) else res


def hash_bucket(salt: str, account: str) -> int:
    """0..9999, deterministic per (salt, account). Prefer the rollout package's bucketing."""
    digest = hashlib.sha256(f"{salt}\x00{account}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10000


class MigrationRepository:
    """Dual-writing repository over a legacy and a new repository.

    ``bucket(account) -> True`` means the account is served by the new side (pass the
    rollout package's decision). Without ``bucket``, a hash bucket against ``percent``
    (a number or a zero-argument callable for live changes) decides.
    """

    def __init__(
        self,
        legacy_repo: Repository,
        new_repo: Repository,
        percent: float | Callable[[], float] = 0.0,
        outbox: Outbox | None = None,
        bucket: Callable[[str], bool] | None = None,
        *,
        service: str,
        name: str = "default",
        dual_write: bool = True,
    ) -> None:
        if dual_write and outbox is None:
            raise ValueError("dual writes need an outbox: a failed secondary write must be kept, not dropped")
        self.legacy_repo = legacy_repo
        self.new_repo = new_repo
        self.percent = percent
        self.outbox = outbox
        self.service = service
        self.name = name
        self.dual_write = dual_write
        self._bucket = bucket

    def side_for(self, account: str) -> Side:
        if self._bucket is not None:
            return "new" if self._bucket(account) else "legacy"
        pct = self.percent() if callable(self.percent) else self.percent
        return "new" if hash_bucket(self.service, account) < pct * 100 else "legacy"

    def _repos(self, account: str) -> tuple[Side, Repository, Side, Repository]:
        if self.side_for(account) == "new":
            return "new", self.new_repo, "legacy", self.legacy_repo
        return "legacy", self.legacy_repo, "new", self.new_repo

    async def get(self, account: str, key: Item) -> Any:
        _, primary, _, _ = self._repos(account)
        return await _call(primary.get, key)

    async def put(self, account: str, item: Item) -> Any:
        return await self._write(account, "PUT", {"item": item}, lambda repo: _call(repo.put, item))

    async def delete(self, account: str, key: Item) -> Any:
        return await self._write(account, "DELETE", {"key": key}, lambda repo: _call(repo.delete, key))

    async def _write(self, account: str, method: str, body: dict[str, Any], op: Callable[[Repository], Any]) -> Any:
        _, primary, secondary_side, secondary = self._repos(account)
        result = await op(primary)  # a primary failure propagates: nothing was acknowledged
        if not self.dual_write:
            return result
        assert self.outbox is not None
        record = ReplayRecord(
            service=self.service,
            account=account,
            target=secondary_side,
            route_id=f"repo:{self.name}",
            request=ReplayRequest(method=method, path=f"/_repo/{self.name}", body=dumps_item(body).encode()),
            primary=PrimaryResult(status=200),
        )
        if await self.outbox.pending_for(self.service, account, secondary_side):
            await self.outbox.append(record)  # keep order behind earlier undelivered writes
            return result
        try:
            await op(secondary)
        except Exception as exc:  # noqa: BLE001 - any secondary failure is queued for replay
            log.warning(
                "secondary %s write for %s/%s failed (%s); queued in the outbox",
                secondary_side, self.service, self.name, type(exc).__name__,
            )
            await self.outbox.append(record)
        return result


class RepositoryTransport:
    """Applies replayed repository writes (see module docstring) to one repository.

    Return ``RepositoryTransport(repo)`` from the worker's ``transports(service, side)`` for
    repository lanes. A repository error answers 503, so the worker retries with backoff.
    """

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    async def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        try:
            body = loads_item(request.body)
        except ValueError:
            return HttpResponse(status=400, body=b"replay body is not JSON")
        try:
            if request.method == "PUT" and "item" in body:
                await _call(self.repo.put, body["item"])
            elif request.method == "DELETE" and "key" in body:
                await _call(self.repo.delete, body["key"])
            else:
                return HttpResponse(status=400, body=b"expected PUT {item} or DELETE {key}")
        except Exception as exc:  # noqa: BLE001 - becomes a retry
            return HttpResponse(status=503, body=f"{type(exc).__name__}: {exc}".encode())
        return HttpResponse(status=204)

    async def aclose(self) -> None:
        return None
