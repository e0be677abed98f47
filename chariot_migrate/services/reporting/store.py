"""Reporting tables: file rows, statistics, the entity read model (fed by events) and export jobs."""

from __future__ import annotations

from ..kit.tables import GSI_FIELDS, legacy_table_spec

FILES_TABLE = "reporting-files"  # #file#{path}, legacy shape
STATISTICS_TABLE = "reporting-statistics"  # #statistic#my#status:{S}#{total|day}, legacy shape
ENTITIES_TABLE = "reporting-entities"  # read model: {key, status, source, name} per entity
EXPORTS_TABLE = "reporting-exports"  # export jobs #job#{id}#system#report (legacy shape)
# routes.yaml sends reporting only the export jobs' GET /my?key=#job#… terms: they read the exports table.
EXPORT_JOB_PREFIX = "#job#"


def table_specs() -> list:
    return [legacy_table_spec(t, GSI_FIELDS) for t in (FILES_TABLE, STATISTICS_TABLE, ENTITIES_TABLE, EXPORTS_TABLE)]


def table_for_key(term: str) -> str:
    if term.startswith("#statistic#"):
        return STATISTICS_TABLE
    if term.startswith(EXPORT_JOB_PREFIX):
        return EXPORTS_TABLE
    return FILES_TABLE  # #file#… and field:value searches with label=file
