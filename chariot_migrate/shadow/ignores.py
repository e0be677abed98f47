"""Reviewed ignore rules for diff signatures: kept in the state store (kind ``shadow-ignore``,
one record per signature), where every gate and an in-cluster controller read them, and exported
to / imported from ``shadow-ignores.yaml`` for review in git.

An ignored signature still shows in reports (as ignored, with its reason) but no longer lowers
the noise-adjusted match rate. Every rule has a reason; an expired rule stops applying.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

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


RECORD_KIND = "shadow-ignore"


class RecordStore(Protocol):
    """Where ``diffs ignore`` records rules: the rollout state store's record API."""

    def records(self, kind: str) -> dict[str, dict[str, Any]]: ...

    def put_record(self, kind: str, key: str, doc: dict[str, Any]) -> None: ...


def store_ignores(store: RecordStore) -> list[IgnoreRule]:
    """The rules recorded in a state store (``diffs ignore``, ``diffs import-ignores``)."""
    return [IgnoreRule.model_validate(doc) for doc in store.records(RECORD_KIND).values()]


def put_ignore(store: RecordStore, rule: IgnoreRule) -> None:
    store.put_record(RECORD_KIND, rule.signature, rule.model_dump(mode="json", exclude_none=True))


def load_ignores(path: str | Path | None = DEFAULT_IGNORES_PATH, store: RecordStore | None = None) -> list[IgnoreRule]:
    """The store's rules, plus those of the YAML file that the store does not hold (the store's
    rule wins for the same signature). A missing file means no file rules. Bad content → ValueError."""
    rules = {r.signature: r for r in _file_ignores(path)}
    if store is not None:
        rules.update({r.signature: r for r in store_ignores(store)})
    return sorted(rules.values(), key=lambda r: r.signature)


def _file_ignores(path: str | Path | None) -> list[IgnoreRule]:
    if path is None:
        return []
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


def add_ignore(rule: IgnoreRule, path: str | Path | None = DEFAULT_IGNORES_PATH, store: RecordStore | None = None) -> list[IgnoreRule]:
    """Add (or replace, by signature) one rule: into the store when given, and rewrite the file
    (the reviewed export: the store's rules and the file's) in a stable order."""
    if store is not None:
        put_ignore(store, rule)
    rules = [r for r in load_ignores(path, store) if r.signature != rule.signature] + [rule]
    rules.sort(key=lambda r: r.signature)
    if path is not None:
        save_ignores(rules, path)
    return rules


def import_ignores(store: RecordStore, path: str | Path) -> list[IgnoreRule]:
    """Put every rule of a reviewed file into the store (replacing the store's rule of the same
    signature); returns the rules imported."""
    rules = _file_ignores(path)
    for r in rules:
        put_ignore(store, r)
    return rules


def save_ignores(rules: Sequence[IgnoreRule], path: str | Path = DEFAULT_IGNORES_PATH) -> None:
    doc = {"ignores": [r.model_dump(mode="json", exclude_none=True) for r in rules]}
    header = "# Reviewed shadow-diff signatures to ignore (chariot-migrate). Each needs a reason.\n"
    Path(path).write_text(header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def active_ignores(rules: Sequence[IgnoreRule], now: datetime | None = None) -> dict[str, IgnoreRule]:
    return {r.signature: r for r in rules if r.active(now)}
