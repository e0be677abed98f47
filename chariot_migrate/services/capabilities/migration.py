"""Backfill/verify/repair mapping: legacy ``#job#`` and ``#capability_schedule#`` rows ↔ the
capabilities tables (same item shape and key attributes, so the mapping is the table choice).
Report jobs (``#job#<id>#system#report``) belong to reporting (its exports table), not here."""

from __future__ import annotations

import os
from typing import Any

from chariot_migrate.model import report
from chariot_migrate.services.kit.migration import TableSpec

from .recovery import is_bookkeeping
from .store import JOB_PREFIX, JOBS_TABLE, SCHEDULE_PREFIX, SCHEDULES_TABLE

Item = dict[str, Any]


class CapabilitiesMigration:
    service = "capabilities"
    legacy_prefixes = [JOB_PREFIX, SCHEDULE_PREFIX]
    ignore_fields = ["version"]

    def __init__(self, table_prefix: str | None = None) -> None:
        prefix = os.environ.get("TABLE_PREFIX", "") if table_prefix is None else table_prefix
        self.jobs_table, self.schedules_table = prefix + JOBS_TABLE, prefix + SCHEDULES_TABLE
        self.new_tables = [TableSpec(self.jobs_table, "username", "key"),
                           TableSpec(self.schedules_table, "username", "key")]

    def to_new(self, item: Item) -> tuple[str, Item] | None:
        key = str(item.get("key", ""))
        if key.startswith(JOB_PREFIX) and not report.is_job_key(key):
            return self.jobs_table, dict(item)
        if key.startswith(SCHEDULE_PREFIX):
            return self.schedules_table, dict(item)
        return None

    def owns_new_item(self, table: str, item: Item) -> bool:
        """Saga logs (``#saga#<account>``) and job leases (``#lease``) stay on the new side."""
        return not is_bookkeeping(item)

    def to_legacy(self, table: str, item: Item) -> Item:
        return {k: v for k, v in item.items() if k != "version"}


migration = CapabilitiesMigration()
