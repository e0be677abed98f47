"""Reviewed ignore rules for diff signatures, kept in git (``shadow-ignores.yaml``).

An ignored signature still shows in reports (as ignored, with its reason) but no longer lowers
the noise-adjusted match rate. Every rule has a reason; an expired rule stops applying.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_IGNORES_PATH = "shadow-ignores.yaml"


class IgnoreRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    signature: str = Field(..., description="12-hex signature id from a report")
    reason: str = Field(..., min_length=1)
    expires: date | datetime | None = None
    route: str | None = None  # informational: what the signature was when it was ignored
    path: str | None = None

    @field_validator("signature")
    @classmethod
    def _sig(cls, v: str) -> str:
        v = v.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{12}", v):
            raise ValueError(f"signature {v!r} must be the 12 hex characters shown in a report")
        return v

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("an ignore rule needs a reason")
        return v.strip()

    def active(self, now: datetime | None = None) -> bool:
        if self.expires is None:
            return True
        now = now or datetime.now(UTC)
        if isinstance(self.expires, datetime):
            exp = self.expires if self.expires.tzinfo else self.expires.replace(tzinfo=UTC)
            return now < exp
        return now.date() <= self.expires


def load_ignores(path: str | Path = DEFAULT_IGNORES_PATH) -> list[IgnoreRule]:
    """Rules from the YAML file; a missing file means no rules. Bad content → ValueError."""
    p = Path(path)
    if not p.exists():
        return []
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{p}: not valid YAML ({e})") from e
    items = data.get("ignores", []) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValueError(f"{p}: expected a list under 'ignores:'")
    rules = []
    for i, item in enumerate(items):
        try:
            rules.append(IgnoreRule.model_validate(item))
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "entry"
            raise ValueError(f"{p}: ignores[{i}].{where}: {first['msg']}") from e
    return rules


def add_ignore(rule: IgnoreRule, path: str | Path = DEFAULT_IGNORES_PATH) -> list[IgnoreRule]:
    """Add (or replace, by signature) one rule and rewrite the file in a stable order."""
    rules = [r for r in load_ignores(path) if r.signature != rule.signature] + [rule]
    rules.sort(key=lambda r: r.signature)
    save_ignores(rules, path)
    return rules


def save_ignores(rules: Sequence[IgnoreRule], path: str | Path = DEFAULT_IGNORES_PATH) -> None:
    doc = {"ignores": [r.model_dump(mode="json", exclude_none=True) for r in rules]}
    header = "# Reviewed shadow-diff signatures to ignore (chariot-migrate). Each needs a reason.\n"
    Path(path).write_text(header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def active_ignores(rules: Sequence[IgnoreRule], now: datetime | None = None) -> dict[str, IgnoreRule]:
    return {r.signature: r for r in rules if r.active(now)}
