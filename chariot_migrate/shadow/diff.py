"""Structural diff of two normalised responses, plus signatures and value classes (pure).

``left`` is always the legacy side and ``right`` the new side (or primary and its repeat in an
A/A comparison): ``missing`` means the right side lacks a field the left has, ``extra`` the reverse.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from .normalise import NormalisedResponse, NormaliseRules, canonical_json, parse_instant
from .paths import Path, collapse, render

Kind = Literal["missing", "extra", "type", "value", "order", "length", "status", "header"]
KINDS: tuple[Kind, ...] = ("missing", "extra", "type", "value", "order", "length", "status", "header")

STATUS_PATH = "status"
HEADER_PREFIX = "header:"


@dataclass(frozen=True, slots=True)
class Difference:
    path: str  # "$.a.b[3].c", "status" or "header:content-type"
    kind: Kind
    left: Any = None
    right: Any = None

    @property
    def collapsed(self) -> str:
        return collapse(self.path) if self.path.startswith("$") else self.path


def diff(left: NormalisedResponse, right: NormalisedResponse, rules: NormaliseRules | None = None) -> list[Difference]:
    """Every difference between two normalised responses, in a stable order."""
    rules = rules or NormaliseRules()
    out: list[Difference] = []
    if left.status != right.status:
        out.append(Difference(STATUS_PATH, "status", left.status, right.status))
    if rules.status_only or "error" in (left.body_kind, right.body_kind):
        return out  # no response on a side: the status difference says it all
    for name in sorted(left.headers.keys() | right.headers.keys()):
        lv, rv = left.headers.get(name), right.headers.get(name)
        if lv != rv:
            out.append(Difference(HEADER_PREFIX + name, "header", lv, rv))
    if left.body_kind == "json" and right.body_kind == "json":
        _diff_value(left.body, right.body, (), rules, out)
    elif left.body_kind != right.body_kind:
        out.append(Difference("$", "type", _describe(left), _describe(right)))
    elif left.body != right.body:
        out.append(Difference("$", "value", left.body, right.body))
    return out


def _describe(r: NormalisedResponse) -> Any:
    return r.body if r.body_kind in ("text", "json") else f"<{r.body_kind}>"


def _jtype(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _diff_value(a: Any, b: Any, path: Path, rules: NormaliseRules, out: list[Difference]) -> None:
    ta, tb = _jtype(a), _jtype(b)
    if ta != tb:
        if rules.timestamps and _same_instant(a, b):
            return
        out.append(Difference(render(path), "type", a, b))
        return
    if ta == "object":
        for k in a:
            if k in b:
                _diff_value(a[k], b[k], (*path, k), rules, out)
            else:
                out.append(Difference(render((*path, k)), "missing", a[k], None))
        for k in b:
            if k not in a:
                out.append(Difference(render((*path, k)), "extra", None, b[k]))
        return
    if ta == "array":
        if len(a) != len(b):
            out.append(Difference(render(path), "length", len(a), len(b)))
            return
        inner: list[Difference] = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff_value(x, y, (*path, i), rules, inner)
        if inner and sorted(map(canonical_json, a)) == sorted(map(canonical_json, b)):
            # Same elements, another order: one real difference unless declared unordered
            # (unordered arrays were already sorted by normalise, so they never get here).
            out.append(Difference(render(path), "order", None, None))
        else:
            out.extend(inner)
        return
    if ta == "number":
        if not _numbers_equal(a, b, rules):
            out.append(Difference(render(path), "value", a, b))
        return
    if a != b:
        if ta == "string" and rules.timestamps and _same_instant(a, b):
            return
        out.append(Difference(render(path), "value", a, b))


def _numbers_equal(a: float, b: float, rules: NormaliseRules) -> bool:
    if a == b:
        return True
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    tol = max(rules.abs_tolerance, rules.rel_tolerance * max(abs(a), abs(b)))
    return abs(a - b) <= tol


def _same_instant(a: Any, b: Any) -> bool:
    """ISO-8601 vs ISO-8601 (any offsets) or ISO-8601 vs an epoch number: the same instant?

    At least one side must be an ISO string, so plain numbers never turn into instants by luck.
    """
    if not (isinstance(a, str) or isinstance(b, str)):
        return False
    da, db = parse_instant(a, numbers=True), parse_instant(b, numbers=True)
    if da is None or db is None:
        return False
    return abs((da - db).total_seconds()) < 0.0005  # epoch ms vs µs-precision ISO


# --- signatures -------------------------------------------------------------------------------


def signature_id(route_id: str, collapsed_path: str, kind: str) -> str:
    """Stable 12-hex id of (route, collapsed path, kind): what reports and ignore rules name."""
    h = hashlib.blake2b(f"{route_id}\x1f{collapsed_path}\x1f{kind}".encode(), digest_size=6)
    return h.hexdigest()


_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


def value_class(v: Any) -> str:
    """null | bool | int | float | str-uuid | str-timestamp | str | list | dict (| absent)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        if _UUID.match(v):
            return "str-uuid"
        if parse_instant(v, numbers=False) is not None:
            return "str-timestamp"
        return "str"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "dict"
    return type(v).__name__


def difference_class(d: Difference) -> str:
    """Value class of a difference: one class when both sides share it, else 'left→right'."""
    if d.kind == "missing":
        return value_class(d.left)
    if d.kind == "extra":
        return value_class(d.right)
    if d.kind in ("order", "length"):
        return "list"
    lc, rc = value_class(d.left), value_class(d.right)
    return lc if lc == rc else f"{lc}→{rc}"
