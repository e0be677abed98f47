"""Timestamps in Chariot's format (RFC 3339, UTC, second precision, 'Z')."""

from __future__ import annotations

from datetime import UTC, datetime


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_of(ts: str) -> str:
    return ts[:10] + "T00:00:00Z"
