"""Backfill/verify/repair mapping: legacy ``#file#``, ``#statistic#`` and report-job
(``#job#<id>#system#report``) rows ↔ reporting's tables.
(The entity read model is rebuilt from events / a backfill of the owners' data, not copied.)"""

from __future__ import annotations

import os
from typing import Any

from chariot_migrate.dual_write.migration import TableSpec
from chariot_migrate.model import report

from .store import EXPORTS_TABLE, FILES_TABLE, STATISTICS_TABLE

Item = dict[str, Any]


class ReportingMigration:
    service = "reporting"
    legacy_prefixes = ["#file#", "#statistic#", report.JOB_PREFIX]
    ignore_fields = ["version"]

    def __init__(self, table_prefix: str | None = None) -> None:
        prefix = os.environ.get("TABLE_PREFIX", "") if table_prefix is None else table_prefix
        self.files, self.statistics = prefix + FILES_TABLE, prefix + STATISTICS_TABLE
        self.exports = prefix + EXPORTS_TABLE
        self.new_tables = [TableSpec(self.files, "username", "key"), TableSpec(self.statistics, "username", "key"),
                           TableSpec(self.exports, "username", "key")]

    def to_new(self, item: Item) -> tuple[str, Item] | None:
        key = str(item.get("key", ""))
        if key.startswith("#file#"):
            return self.files, dict(item)
        if key.startswith("#statistic#"):
            return self.statistics, dict(item)  # keeps the hidden _count running total
        if report.is_job_key(key):
            return self.exports, dict(item)
        return None

    def to_legacy(self, table: str, item: Item) -> Item:
        return {k: v for k, v in item.items() if k != "version"}


migration = ReportingMigration()
