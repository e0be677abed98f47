"""The capabilities service's tables: jobs (and their saga logs) and capability schedules."""

from __future__ import annotations

from chariot_migrate.model.schedules import PREFIX as SCHEDULE_PREFIX

from ..kit.tables import GSI_FIELDS, legacy_table_spec

JOBS_TABLE = "capabilities-jobs"
SCHEDULES_TABLE = "capabilities-schedules"
JOB_PREFIX = "#job#"
SAGA_PARTITION_PREFIX = "#saga#"  # saga logs live in the jobs table under their own partition


def table_specs(prefix: str = "") -> list:
    return [legacy_table_spec(prefix + JOBS_TABLE, GSI_FIELDS), legacy_table_spec(prefix + SCHEDULES_TABLE, GSI_FIELDS)]


def table_for_key(term: str) -> str:
    """Which table a ``GET /my`` key term reads (schedules have their own; the rest are jobs)."""
    return SCHEDULES_TABLE if term.startswith(SCHEDULE_PREFIX) else JOBS_TABLE
