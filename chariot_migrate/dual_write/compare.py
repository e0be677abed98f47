"""Item normalisation and field-level diff for verify (pure functions).

Same spirit as the shadow engine's normalisation, scoped to stored items: DynamoDB numbers
(``Decimal``) compare as numbers, sets compare unordered, and ignored field paths (dotted,
``*`` matches one segment, e.g. ``updated``, ``meta.*.ts``) are dropped before comparing.
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

from pydantic import BaseModel


class FieldDiff(BaseModel):
    path: str
    kind: str  # missing | extra | type | value
    legacy: Any = None
    new: Any = None


def normalise(value: Any) -> Any:
    """Plain JSON-able data with a canonical form for numbers, sets and bytes."""
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


def _matches(path: list[str], pattern: list[str]) -> bool:
    return len(path) == len(pattern) and all(p == "*" or p == s for s, p in zip(path, pattern, strict=True))


def drop_ignored(item: Any, ignore: list[str], _path: list[str] | None = None) -> Any:
    patterns = [p.split(".") for p in ignore]
    return _drop(item, patterns, _path or [])


def _drop(value: Any, patterns: list[list[str]], path: list[str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            sub = [*path, str(k)]
            if any(_matches(sub, p) for p in patterns):
                continue
            out[k] = _drop(v, patterns, sub)
        return out
    return value


def diff_items(legacy: Any, new: Any, ignore: list[str] | None = None) -> list[FieldDiff]:
    """Field-level differences between two (already mapped) items, after normalisation."""
    a = drop_ignored(normalise(legacy), ignore or [])
    b = drop_ignored(normalise(new), ignore or [])
    out: list[FieldDiff] = []
    _diff(a, b, "", out)
    return out


def _diff(a: Any, b: Any, path: str, out: list[FieldDiff]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            sub = f"{path}.{k}" if path else k
            if k not in b:
                out.append(FieldDiff(path=sub, kind="missing", legacy=a[k]))
            elif k not in a:
                out.append(FieldDiff(path=sub, kind="extra", new=b[k]))
            else:
                _diff(a[k], b[k], sub, out)
        return
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(x, y, f"{path}[{i}]", out)
        return
    if type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        out.append(FieldDiff(path=path or "$", kind="type", legacy=a, new=b))
    elif a != b:
        out.append(FieldDiff(path=path or "$", kind="value", legacy=a, new=b))
