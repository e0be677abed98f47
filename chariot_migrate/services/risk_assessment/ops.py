"""The risk-assessment write operations (legacy ``chariot-risk``), over this service's tables.
Synchronous; the routes run them in a worker thread."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from chariot_migrate.model import keys
from chariot_migrate.model.capabilities import REGISTRY
from chariot_migrate.model.errors import bad_request, not_found
from chariot_migrate.model.requests import RiskAdd, RiskDelete, RiskUpdate
from chariot_migrate.model.statistics import record_status
from chariot_migrate.model.status import TRIAGE_STATUSES
from chariot_migrate.services.kit.graph.bulk import run_bulk
from chariot_migrate.services.kit.graph.contract import WriteContext, validate
from chariot_migrate.services.kit.graph.peers import PeerSource

from . import domain
from .store import RiskStore

RISK_EVENT = "risk.assessed"


class RiskOps:
    def __init__(self, store: RiskStore, ctx: WriteContext, assets: PeerSource) -> None:
        self.store, self.ctx, self.assets = store, ctx, assets

    def _target_dns(self, key: str) -> str:
        kind = keys.kind_of(key)
        if kind not in ("asset", "attribute"):
            raise bad_request(f"key must be the asset (or attribute) the risk is on, got {key!r}")
        if not self.assets.get(self.ctx.username, key):
            raise not_found(f"{kind} {key} not found")
        return domain.target_dns(key)

    def _save(self, item: dict[str, Any], old_status: str | None, now: str) -> dict[str, Any]:
        self.store.risks.put(item)
        record_status(self.store.statistics, self.ctx.username, "risk", old_status, item["status"], now)
        data = domain.assessed_event(item, old_status)
        if data is not None:
            self.ctx.emit(RISK_EVENT, data)
        return item

    def update(self, item: dict[str, Any], *, status: str | None = None, comment: str | None = None,
               title: str | None = None, tags: list[str] | None = None, remove: int | None = None,
               body: dict[str, Any] | None = None) -> dict[str, Any]:
        now = self.ctx.stamp(body)
        new = domain.updated_risk(item, self.ctx, now, status=status, comment=comment, title=title, tags=tags,
                                  remove=remove)
        return self._save(new, item.get("status"), now)

    def upsert(self, dns: str, name: str, status: str, *, source: str = "", comment: str | None = None,
               title: str | None = None, tags: list[str] | None = None, target: str = "",
               body: dict[str, Any] | None = None) -> dict[str, Any]:
        ctx = self.ctx
        key = ctx.adopt(body, "key", keys.risk_key(dns, name))
        now = ctx.stamp(body)
        existing = self.store.risks.get(ctx.username, key)
        if existing:
            return self.update(existing, status=status, comment=comment, title=title, tags=tags, body=body)
        item = domain.new_risk(ctx, key, dns, name, status, now, source=source, comment=comment, title=title,
                               tags=tags, target=target, created=ctx.adopt(body, "created", now),
                               guid=ctx.adopt(body, "guid", str(uuid.uuid4())))
        return self._save(item, None, now)

    def add_one(self, body: dict[str, Any]) -> dict[str, Any]:
        m = RiskAdd.model_validate(body)
        manual = not m.source or m.source not in REGISTRY
        if manual and m.status not in TRIAGE_STATUSES:
            raise bad_request(f"a manually added risk must use a triage status (TI/TL/TM/TH/TC), got {m.status!r}")
        dns = self._target_dns(m.key)
        return self.upsert(dns, m.name, m.status, source=m.source, comment=m.comment, title=m.title, tags=m.tags,
                           target=m.key, body=body)

    def matching(self, key: str) -> list[dict[str, Any]]:
        if not key.startswith("#risk#"):
            raise ValueError(f"key must start with #risk#, got {key!r}")
        exact = self.store.risks.get(self.ctx.username, key)
        if exact:
            return [exact]
        return self.store.risks.query_all(self.ctx.username, key)

    def put_risk(self, body: dict[str, Any]) -> Any:
        if "name" in body and keys.kind_of(str(body.get("key", ""))) != "risk":
            validate(RiskAdd, body)
            return {"risks": [self.add_one(body)]}
        m = validate(RiskUpdate, body)
        targets = self.matching(m.key)
        if not targets:
            raise not_found(f"no risk matches key {m.key}")
        return {"risks": [self.update(t, status=m.status, comment=m.comment, title=m.title, tags=m.tags,
                                      remove=m.remove, body=body) for t in targets]}

    def delete_risk(self, body: dict[str, Any]) -> Any:
        m = validate(RiskDelete, body)
        targets = self.matching(m.key)
        if not targets:
            raise not_found(f"risk {m.key} not found")
        out = [self.update(t, status=m.status, comment=m.comment, body=body) for t in targets]
        return out[0] if len(out) == 1 else out

    def bulk(self, body: dict[str, Any], results_writer: Callable[[str], Callable[[str, bytes], None]]) -> Any:
        return run_bulk(self.ctx, body, "risk", self.add_one, results_writer(self.ctx.username), self.store.jobs)
