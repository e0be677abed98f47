"""JSON field paths: rendering (``$.a.b[3].c``), collapsing (``$.a.b[*].c``) and pattern sets.

Patterns are JSONPath-like: ``$.items[*].updated``, ``$.a.*.b``, ``**.requestId`` (``$..requestId``
is the same thing: any depth). They are compiled once into a small NFA so a tree walk carries the
set of live pattern states and never re-matches whole paths (big bodies stay cheap).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

Segment = str | int  # dict key or array index
Path = tuple[Segment, ...]

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_INDEX = re.compile(r"\[\d+\]")


def render(path: Path, *, collapsed: bool = False) -> str:
    """``("a", 3, "b")`` → ``$.a[3].b`` (``$.a[*].b`` when collapsed); odd keys are quoted."""
    out = ["$"]
    for seg in path:
        if isinstance(seg, int):
            out.append("[*]" if collapsed else f"[{seg}]")
        elif _PLAIN_KEY.match(seg):
            out.append(f".{seg}")
        else:
            out.append(f"[{json.dumps(seg)}]")
    return "".join(out)


def collapse(path: str) -> str:
    """``$.a.b[3].c`` → ``$.a.b[*].c`` (array indices collapsed; what signatures group by)."""
    # Quoted keys may contain "[3]" literally; only collapse outside quotes.
    parts = re.split(r'(\["(?:[^"\\]|\\.)*"\])', path)
    return "".join(p if p.startswith('["') else _INDEX.sub("[*]", p) for p in parts)


# --- patterns -------------------------------------------------------------------------------

_ANY_KEY = ("key*",)
_ANY_INDEX = ("idx*",)
_ANY_DEPTH = ("**",)
Token = tuple[str, ...]


def compile_pattern(pattern: str) -> tuple[Token, ...]:
    """Parse a JSONPath-like pattern into tokens. Raises ValueError with the reason."""
    p = pattern.strip()
    if not p:
        raise ValueError("empty path pattern")
    if p.startswith("**"):
        rest = p[2:].lstrip(".")
        p = "$.**" + ("." + rest if rest else "")
    elif not p.startswith("$"):
        p = "$." + p
    tokens: list[Token] = []
    i = 1
    n = len(p)
    while i < n:
        if p.startswith("..", i) or p.startswith(".**", i):
            tokens.append(_ANY_DEPTH)
            i += 3 if p.startswith(".**", i) else 1  # leave one "." for the next key
            if i < n and p[i] == ".":
                i += 1
                i = _key(p, i, tokens, pattern)
            continue
        c = p[i]
        if c == ".":
            i = _key(p, i + 1, tokens, pattern)
        elif c == "[":
            j = p.find("]", i)
            if p.startswith('["', i) or p.startswith("['", i):
                q = p[i + 1]
                j = p.find(q + "]", i + 2)
                if j < 0:
                    raise ValueError(f"unclosed quoted key in path pattern {pattern!r}")
                raw = p[i + 2 : j]
                tokens.append(("key", raw))
                i = j + 2
                continue
            if j < 0:
                raise ValueError(f"unclosed '[' in path pattern {pattern!r}")
            inner = p[i + 1 : j].strip()
            if inner == "*":
                tokens.append(_ANY_INDEX)
            elif inner.isdigit():
                tokens.append(("idx", inner))
            else:
                raise ValueError(f"bad index [{inner}] in path pattern {pattern!r}")
            i = j + 1
        else:
            raise ValueError(f"unexpected {c!r} at {i} in path pattern {pattern!r}")
    return tuple(tokens)


def _key(p: str, i: int, tokens: list[Token], pattern: str) -> int:
    j = i
    while j < len(p) and p[j] not in ".[":
        j += 1
    name = p[i:j]
    if not name:
        raise ValueError(f"empty key in path pattern {pattern!r}")
    if name == "**":
        tokens.append(_ANY_DEPTH)
    elif name == "*":
        tokens.append(_ANY_KEY)
    else:
        tokens.append(("key", name))
    return j


def _token_matches(tok: Token, seg: Segment) -> bool:
    kind = tok[0]
    if kind == "key":
        return isinstance(seg, str) and seg == tok[1]
    if kind == "key*":
        return isinstance(seg, str)
    if kind == "idx":
        return isinstance(seg, int) and seg == int(tok[1])
    if kind == "idx*":
        return isinstance(seg, int)
    return False


State = frozenset[tuple[int, int]]  # (pattern number, position in its tokens)


@dataclass(frozen=True)
class PathSet:
    """A compiled set of patterns. Walk with ``start()`` / ``step()``; test with ``matched()``."""

    patterns: tuple[tuple[Token, ...], ...]

    @classmethod
    def of(cls, patterns: Iterable[str]) -> PathSet:
        return cls(tuple(compile_pattern(p) for p in patterns))

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def _closure(self, states: Iterable[tuple[int, int]]) -> State:
        out: set[tuple[int, int]] = set()
        stack = list(states)
        while stack:
            s = stack.pop()
            if s in out:
                continue
            out.add(s)
            pi, pos = s
            toks = self.patterns[pi]
            if pos < len(toks) and toks[pos] == _ANY_DEPTH:
                stack.append((pi, pos + 1))  # ** matches zero segments
        return frozenset(out)

    def start(self) -> State:
        return self._closure((i, 0) for i in range(len(self.patterns)))

    def step(self, states: State, seg: Segment) -> State:
        if not states:
            return states
        nxt: list[tuple[int, int]] = []
        for pi, pos in states:
            toks = self.patterns[pi]
            if pos >= len(toks):
                continue
            tok = toks[pos]
            if tok == _ANY_DEPTH:
                nxt.append((pi, pos))  # ** consumes this segment and stays
            elif _token_matches(tok, seg):
                nxt.append((pi, pos + 1))
        return self._closure(nxt)

    def matched(self, states: State) -> bool:
        return any(pos == len(self.patterns[pi]) for pi, pos in states)

    def matches(self, path: Path) -> bool:
        st = self.start()
        for seg in path:
            st = self.step(st, seg)
            if not st:
                return False
        return self.matched(st)
