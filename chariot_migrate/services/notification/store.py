"""Notification tables: the account's webhook (hook) and alert rows in the legacy shape, and
the delivery log."""

from __future__ import annotations

from ..kit.tables import GSI_FIELDS, legacy_table_spec

ACCOUNTS_TABLE = "notification-accounts"  # #account#{owner}#hook#{pin}, #account#{owner}#alert#{value}
DELIVERIES_TABLE = "notification-deliveries"  # partition account, key #delivery#{event id}#{alert key}
OWNED_MEMBERS = ("hook", "alert")


def table_specs() -> list:
    return [legacy_table_spec(ACCOUNTS_TABLE, GSI_FIELDS), legacy_table_spec(DELIVERIES_TABLE, GSI_FIELDS)]
