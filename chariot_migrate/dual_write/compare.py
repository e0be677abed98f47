"""Stored items compared for verify with the shadow normalisation and diff (DESIGN §6). Pure.

DynamoDB values are first made plain JSON (``Decimal`` → number, sets → sorted lists, bytes →
``b64:…``); then the one normalisation of :mod:`chariot_migrate.shadow` applies: ignored paths
(``updated``, ``meta.*.ts``, any shadow path pattern), numbers equal whatever their type, ISO
instants equal in any offset. Differences are reported per field path (``meta.x.ts``, ``c[1]``).
"""

from __future__ import annotations

import base64
import functools
import json
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from chariot_migrate.shadow.diff import diff
from chariot_migrate.shadow.normalise import NormalisedResponse, NormaliseRules
from chariot_migrate.shadow.normalise import normalise as normalise_response


class FieldDiff(BaseModel):
    path: str
    kind: str  # missing | extra | type | value | length | order (the shadow diff's kinds)
    legacy: Any = None
    new: Any = None


def normalise(value: Any) -> Any:
    """A stored (DynamoDB-typed) value as plain JSON with a canonical form for numbers, sets and bytes."""
    if isinstance(value, dict):
        return {str(k): normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [normalise(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (bytes, bytearray)):
        return "b64:" + base64.b64encode(bytes(value)).decode()
    if hasattr(value, "value") and type(value).__name__ == "Binary":  # boto3 Binary
        return "b64:" + base64.b64encode(bytes(value.value)).decode()
    return value


def diff_items(legacy: Any, new: Any, ignore: list[str] | None = None) -> list[FieldDiff]:
    """Field-level differences between two (already mapped) items, after the shadow normalisation."""
    rules = _rules(tuple(ignore or ()))
    a, b = (normalise_response(NormalisedResponse(200, {}, "json", normalise(item)), rules) for item in (legacy, new))
    return [FieldDiff(path=_field_path(d.path), kind=d.kind, legacy=d.left, new=d.right) for d in diff(a, b, rules)]


@functools.lru_cache(maxsize=64)
def _rules(ignore: tuple[str, ...]) -> NormaliseRules:
    # One migration's ignore list, compiled once for all its items (a bad pattern: ValueError).
    return NormaliseRules(ignore=list(ignore))


def _field_path(path: str) -> str:
    """The shadow's ``$.meta.x.ts`` / ``$.c[1]`` as verify reports it: ``meta.x.ts`` / ``c[1]``."""
    return path[2:] if path.startswith("$.") else path[1:] if path.startswith("$[") else path
