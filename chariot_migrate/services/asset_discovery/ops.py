"""The asset-discovery write operations: legacy ``asset``/``seed``/``preseed``/``attribute``/``bulk``
handlers, over this service's own tables. Synchronous; run in a worker thread by the routes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chariot_migrate.model import assets, keys
from chariot_migrate.model.errors import bad_request, not_found
from chariot_migrate.model.requests import (
    AssetAdd,
    AssetUpdate,
    AttributeAdd,
    KeyBody,
    PreseedAdd,
    SeedAdd,
    StatusUpdate,
)
from chariot_migrate.model.statistics import record_status
from chariot_migrate.services.kit.graph.bulk import run_bulk
from chariot_migrate.services.kit.graph.contract import WriteContext, validate
from chariot_migrate.services.kit.graph.peers import PeerSource

from . import domain
from .store import AssetStore

ASSET_EVENT = "asset.discovered"


class AssetOps:
    """One request's view: the store plus how to read risks (for attributes on risks)."""

    def __init__(self, store: AssetStore, ctx: WriteContext, risks: PeerSource) -> None:
        self.store, self.ctx, self.risks = store, ctx, risks

    # ---- entity lookups ------------------------------------------------------------------
    def get_any(self, key: str) -> dict[str, Any] | None:
        table = self.store.table_for(key)
        if table is None:
            return self.risks.get(self.ctx.username, key)
        return table.get(self.ctx.username, key)

    def matching(self, key: str, kind: str) -> list[dict[str, Any]]:
        """Entities whose key is ``key`` or starts with it (updates accept prefixes)."""
        if not key.startswith(f"#{kind}#"):
            raise ValueError(f"key must start with #{kind}#, got {key!r}")
        exact = self.store.assets.get(self.ctx.username, key)
        if exact:
            return [exact]
        return self.store.assets.query_all(self.ctx.username, key)

    # ---- assets ----------------------------------------------------------------------------
    def _save_asset(self, item: dict[str, Any], old_status: str | None, now: str) -> dict[str, Any]:
        self.store.assets.put(item)
        record_status(self.store.statistics, self.ctx.username, "asset", old_status, item.get("status"), now)
        data = domain.discovered_event(item)
        if data is not None:
            self.ctx.emit(ASSET_EVENT, data)
        return item

    def upsert_asset(self, dns: str, name: str, *, status: str | None = "A", source: str = "self",
                     surface: list[str] | None = None, kind: str = "asset", origin: str = "",
                     capability: str = "", body: dict[str, Any] | None = None, comment: str | None = None,
                     extra: dict[str, Any] | None = None) -> dict[str, Any]:
        ctx = self.ctx
        key = ctx.adopt(body, "key", domain.asset_key_for(kind, dns, name))
        now = ctx.stamp(body)
        existing = self.store.assets.get(ctx.username, key)
        if existing:
            item = domain.merge_asset(existing, ctx, now, status=status, surface=surface, capability=capability,
                                      comment=comment, extra=extra)
            return self._save_asset(item, existing.get("status"), now)
        item = domain.new_asset(ctx, key, dns, name, now, status=status, source=source, surface=surface,
                                kind=kind, origin=origin, capability=capability, comment=comment,
                                created=ctx.adopt(body, "created", now), extra=extra)
        return self._save_asset(item, None, now)

    def set_asset_status(self, item: dict[str, Any], status: str, comment: str | None,
                         body: dict[str, Any] | None) -> dict[str, Any]:
        now = self.ctx.stamp(body)
        return self._save_asset(domain.with_asset_status(item, self.ctx, now, status, comment), item.get("status"),
                                now)

    def add_asset(self, body: dict[str, Any]) -> dict[str, Any]:
        m = AssetAdd.model_validate(body)
        # Provenance (who found it) is set by peer services only, e.g. integration-hub's inbound
        # webhook (source "provided", origin "webhook") — as legacy's hook function does.
        provenance: dict[str, Any] = {}
        if self.ctx.internal:
            provenance = {k: str(body[k]) for k in ("source", "origin", "capability") if body.get(k)}
        return self.upsert_asset(m.group, m.identifier, status=m.status, surface=m.attack_surface, kind=m.type,
                                 body=body, extra={"resourceType": m.resource_type} if m.resource_type else None,
                                 **provenance)

    def put_asset(self, body: dict[str, Any]) -> Any:
        if not domain.is_asset_update(body):
            validate(AssetAdd, body)
            return [self.add_asset(body)]
        m = validate(AssetUpdate, body)
        targets = self.matching(m.key, "asset")
        if not targets:
            raise not_found(f"no asset matches key {m.key}")
        out = []
        for item in targets:
            if m.status:
                item = self.set_asset_status(item, m.status, m.comment, body)
            if (extra := assets.update_fields(m.attack_surface, m.secret)) is not None:
                item = self.upsert_asset(item["dns"], item["name"], status=None, body=body, extra=extra,
                                         kind=item.get("type", "asset"))
            out.append(item)
        return out

    def delete_asset(self, body: dict[str, Any]) -> Any:
        m = validate(KeyBody, body)
        targets = self.matching(m.key, "asset")
        if not targets:
            raise not_found(f"asset {m.key} not found")
        deleted = [self.set_asset_status(t, "D", body.get("comment"), body) for t in targets]
        return deleted[0] if len(deleted) == 1 else deleted

    # ---- seeds -----------------------------------------------------------------------------
    def put_seed(self, body: dict[str, Any]) -> Any:
        if domain.is_seed_add(body):
            m = validate(SeedAdd, body)
            dns = str(m.model.get("dns") or m.model.get("group"))
            extra = domain.seed_extra(m.model)
            return self.upsert_asset(dns, dns, status=m.model.get("status") or "P", source="seed",
                                     kind="asset" if m.type in ("asset", "seed") else m.type, origin="seed",
                                     body=body, extra=extra | {"source": "seed"})
        m2 = validate(StatusUpdate, body)
        key = m2.key.replace("#seed#", "#asset#", 1) if m2.key.startswith("#seed#") else m2.key
        item = self.get_any(key)
        if not item or item.get("source") != "seed":
            raise not_found(f"seed {m2.key} not found")
        return self.set_asset_status(item, m2.status, m2.comment, body)

    # ---- preseeds --------------------------------------------------------------------------
    def add_preseed(self, body: dict[str, Any]) -> Any:
        m = validate(PreseedAdd, body)
        ctx = self.ctx
        key = ctx.adopt(body, "key", keys.preseed_key(m.type, m.title, m.value))
        now = ctx.stamp(body)
        existing = self.store.preseeds.get(ctx.username, key)
        item = dict(existing) if existing else domain.new_preseed(
            ctx, key, m.type, m.title, m.value, display=m.display, status=m.status, capability="",
            created=ctx.adopt(body, "created", now))
        item["status"] = m.status if not existing else item.get("status", m.status)
        item["visited"] = item["updated"] = now
        self.store.preseeds.put(item)
        return [item]

    def _preseed(self, key: str) -> dict[str, Any]:
        if not key.startswith("#preseed#"):
            raise bad_request(f"key must start with #preseed#, got {key!r}")
        item = self.store.preseeds.get(self.ctx.username, key)
        if not item:
            raise not_found(f"preseed {key} not found")
        return item

    def update_preseed(self, body: dict[str, Any]) -> Any:
        m = validate(StatusUpdate, body)
        item = self._preseed(m.key)
        item = domain.with_preseed_status(item, self.ctx, self.ctx.stamp(body), m.status, m.comment)
        self.store.preseeds.put(item)
        return item

    def delete_preseed(self, body: dict[str, Any]) -> Any:
        m = validate(KeyBody, body)
        item = self._preseed(m.key)
        self.store.preseeds.delete(self.ctx.username, m.key)
        return item

    # ---- attributes ------------------------------------------------------------------------
    def add_attribute(self, body: dict[str, Any]) -> dict[str, Any]:
        m = AttributeAdd.model_validate(body)
        if not m.key.startswith("#"):
            raise bad_request("key must be the key of the entity the attribute is on (starting with '#')")
        if not self.get_any(m.key):
            raise not_found(f"source entity {m.key} not found")
        ctx = self.ctx
        key = keys.attribute_key(m.name, m.value, m.key)  # derived: the body's "key" is the source entity
        now = ctx.stamp(body)
        existing = self.store.attributes.get(ctx.username, key)
        item = dict(existing) if existing else domain.new_attribute(
            ctx, key, m.key, m.name, m.value, now, capability="", created=ctx.adopt(body, "created", now))
        item["visited"] = item["updated"] = now
        self.store.attributes.put(item)
        return item

    def put_attribute(self, body: dict[str, Any]) -> Any:
        validate(AttributeAdd, body)
        return {"attributes": [self.add_attribute(body)]}

    def delete_attribute(self, body: dict[str, Any]) -> Any:
        m = validate(KeyBody, body)
        if not m.key.startswith("#attribute#"):
            raise bad_request(f"key must start with #attribute#, got {m.key!r}")
        item = self.store.attributes.get(self.ctx.username, m.key)
        if not item:
            raise not_found(f"attribute {m.key} not found")
        self.store.attributes.delete(self.ctx.username, m.key)
        return item

    # ---- bulk ------------------------------------------------------------------------------
    def bulk(self, body: dict[str, Any], entity: str,
             results_writer: Callable[[str], Callable[[str, bytes], None]]) -> Any:
        """``results_writer(account)`` → ``write(name, data)`` for the per-item results file."""
        one = {"asset": self.add_asset, "attribute": self.add_attribute}[entity]
        return run_bulk(self.ctx, body, entity, one, results_writer(self.ctx.username), self.store.jobs)
