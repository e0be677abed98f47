"""``json.loads`` with a bound on nesting depth: the one JSON loader for untrusted input.

Python's decoder recurses once per ``[``/``{``: 10,000 levels raise ``RecursionError`` (a 500
and a traceback), and a document just under the interpreter's limit still breaks every
recursive walk after it (normalisation, diffing, pydantic). So depth is checked *before*
parsing, in linear time, and a deeper document is a ``ValueError`` whose message says why:
callers that already turn invalid JSON into a 400 need no change.

The limit (64) is far above what any API body here needs (graph queries nest < 10 levels)
and far below the interpreter's recursion limit. Used by the proxy's body predicates, the
services' body parsing and the legacy handlers alike, so both sides refuse the same bodies
with the same message.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64

_STRING_B = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET_B = re.compile(rb"[\[\]{}]")
_STRING_S = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET_S = re.compile(r"[\[\]{}]")


class JsonTooDeep(ValueError):
    """The document nests arrays/objects deeper than the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"JSON nesting is deeper than {limit} levels")
        self.limit = limit


def too_deep(data: bytes | str, limit: int = MAX_DEPTH) -> bool:
    """Whether ``data`` opens more than ``limit`` arrays/objects at once (brackets inside
    strings do not count). Linear time; a count of brackets is the fast path."""
    if isinstance(data, bytes | bytearray | memoryview):
        data = bytes(data)
        if data.count(b"[") + data.count(b"{") <= limit:
            return False
        stripped_b = _STRING_B.sub(b'""', data)
        tokens = [m[0] in (b"[", b"{") for m in _BRACKET_B.finditer(stripped_b)]
    else:
        if data.count("[") + data.count("{") <= limit:
            return False
        stripped_s = _STRING_S.sub('""', data)
        tokens = [m[0] in ("[", "{") for m in _BRACKET_S.finditer(stripped_s)]
    depth = 0
    for opens in tokens:
        depth += 1 if opens else -1
        if depth > limit:
            return True
    return False


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH, **kwargs: Any) -> Any:
    """``json.loads`` that raises :class:`JsonTooDeep` (a ``ValueError``) past ``max_depth``."""
    if too_deep(data, max_depth):
        raise JsonTooDeep(max_depth)
    return json.loads(data, **kwargs)
