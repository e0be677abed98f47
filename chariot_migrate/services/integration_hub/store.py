"""integration-hub's table: integration rows ``#account#{owner}#{integration}#{value}`` (legacy shape)."""

from __future__ import annotations

from ..kit.tables import GSI_FIELDS, legacy_table_spec

INTEGRATIONS_TABLE = "integration-hub-integrations"
NOT_OURS = frozenset({"hook", "alert", "account"})  # hook/alert: notification; people: account


def table_specs() -> list:
    return [legacy_table_spec(INTEGRATIONS_TABLE, GSI_FIELDS)]


def is_integration(member: str) -> bool:
    return bool(member) and "@" not in member and "#" not in member and member not in NOT_OURS
