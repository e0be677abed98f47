"""A toy data mapper for tests/integration/rollout/test_controller_cluster.py: the service owns
``#widget#…`` items of the legacy table and keeps them in its own ``widgets-<suffix>`` table."""

from __future__ import annotations

import os
from typing import Any

from chariot_migrate.dual_write.migration import TableSpec

SUFFIX = os.environ.get("CLUSTER_WIDGETS_SUFFIX", "x")


class WidgetMigration:
    service = "svc"
    legacy_prefixes = ["#widget#"]
    new_tables = [TableSpec(f"widgets-{SUFFIX}", "owner", "widget_id")]
    ignore_fields: list[str] = []

    def to_new(self, item: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        return f"widgets-{SUFFIX}", {"owner": item["username"], "widget_id": item["key"].removeprefix("#widget#"),
                                     "name": item["name"]}

    def to_legacy(self, table: str, item: dict[str, Any]) -> dict[str, Any]:
        return {"username": item["owner"], "key": f"#widget#{item['widget_id']}", "name": item["name"]}


MIGRATION = WidgetMigration()
