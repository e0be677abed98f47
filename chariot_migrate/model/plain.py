"""Stored rows as clients see them (shared by legacy's responses and the report files)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any


def plain(obj: Any) -> Any:
    """DynamoDB's Decimals as int/float, ``_`` attributes (internal counters) dropped, sets as lists."""
    if isinstance(obj, Decimal):
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    if isinstance(obj, Mapping):
        return {k: plain(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple, set)):
        return [plain(v) for v in obj]
    return obj
