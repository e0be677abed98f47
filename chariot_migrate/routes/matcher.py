"""Compiled route table: method + normalised path (+ predicates) → route (pure, no I/O).

Paths are compiled once into a segment trie, so matching costs one dict lookup per path segment
instead of a regex scan over the whole table. Precedence at each segment: literal, then
``{param}``, then a trailing greedy ``{param+}``; among routes on the same template, routes with
predicates are tried in file order before the one without (the fallback).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from .. import bounded_json
from .models import Predicate, RouteConfig, RoutesFile

_BODY_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class CompiledPredicate:
    where: str  # query | path | body | header
    name: str
    pattern: re.Pattern[str]
    negate: bool
    body_path: tuple[str | int, ...] = ()

    def test(self, req: RequestView, path_params: dict[str, str]) -> bool:
        if self.where == "query":
            value = req.query_first(self.name)
        elif self.where == "path":
            value = path_params.get(self.name)
        elif self.where == "header":
            value = req.header(self.name)
        else:
            value = _as_text(_dig(req.json(), self.body_path))
        hit = value is not None and self.pattern.search(value) is not None
        return hit != self.negate


@dataclass(frozen=True, slots=True)
class Route:
    id: str
    service: str
    function: str | None
    template: str
    methods: frozenset[str]
    public: bool
    timeout_s: float | None
    shadow: bool | None
    predicates: tuple[CompiledPredicate, ...]
    param_names: tuple[str, ...]  # names of the {param} segments, in order
    index: int  # position in routes.yaml (for messages)
    versions: frozenset[str] = frozenset({"v1"})
    response_headers: tuple[tuple[str, str], ...] = ()  # e.g. Deprecation / Sunset


@dataclass(slots=True)
class RouteMatch:
    route: Route
    path_params: dict[str, str]


class RequestView:
    """What predicates may look at; query and JSON body are parsed lazily, at most once."""

    __slots__ = ("method", "path", "query_string", "_headers", "_body", "_query", "_json", "_json_done",
                 "json_problem", "version")

    def __init__(self, method: str, path: str, query_string: str = "", headers: dict[str, str] | None = None,
                 body: bytes = b"", version: str = "v1") -> None:
        self.method, self.path, self.query_string, self.version = method, path, query_string, version
        self._headers = headers or {}
        self._body = body
        self._query: dict[str, list[str]] | None = None
        self._json: Any = None
        self._json_done = False
        self.json_problem: str | None = None  # set when the body is JSON nested too deep to read

    def query_first(self, name: str) -> str | None:
        if self._query is None:
            self._query = parse_qs(self.query_string, keep_blank_values=True)
        vals = self._query.get(name)
        return vals[0] if vals else None

    def header(self, name: str) -> str | None:
        return self._headers.get(name.lower())

    def json(self) -> Any:
        if not self._json_done:
            self._json_done = True
            try:
                self._json = bounded_json.loads(self._body) if self._body else None
            except bounded_json.JsonTooDeep as e:
                self.json_problem = str(e)
            except (ValueError, UnicodeDecodeError):
                self._json = None
        return self._json


def _dig(doc: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        if isinstance(step, int):
            if not isinstance(doc, list) or step >= len(doc):
                return None
            doc = doc[step]
        else:
            if not isinstance(doc, dict) or step not in doc:
                return None
            doc = doc[step]
    return doc


def _as_text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(v, separators=(",", ":"), sort_keys=True)


def parse_body_path(expr: str) -> tuple[str | int, ...]:
    out: list[str | int] = []
    pos = 0
    for m in _BODY_TOKEN.finditer(expr):
        if m.start() > pos and expr[pos:m.start()] != ".":
            raise ValueError(f"bad body field path {expr!r}")
        out.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not out or pos != len(expr):
        raise ValueError(f"bad body field path {expr!r}")
    return tuple(out)


def _compile_predicate(where: str, name: str, pred: Predicate) -> CompiledPredicate:
    negate = not isinstance(pred, str)
    pattern = pred["not"] if isinstance(pred, dict) else pred
    return CompiledPredicate(
        where=where, name=name, pattern=re.compile(pattern), negate=negate,
        body_path=parse_body_path(name) if where == "body" else (),
    )


@dataclass
class _Node:
    literal: dict[str, _Node] = field(default_factory=dict)
    param: _Node | None = None
    greedy: list[Route] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)  # routes ending at this node


def _segments(template: str) -> list[str]:
    return [s for s in template.split("/") if s]


class AmbiguousRoutes(ValueError):
    def __init__(self, first: int, second: int, message: str) -> None:
        super().__init__(message)
        self.first, self.second = first, second


class RouteTable:
    """Immutable once built; a reload builds a new table and swaps the reference."""

    def __init__(self, config: RoutesFile) -> None:
        self.config = config
        self.routes: list[Route] = []
        self._root = _Node()
        for i, rc in enumerate(config.routes):
            self._add(self._compile(i, rc))
        for node in self._walk(self._root):
            node.routes.sort(key=_order)
            node.greedy.sort(key=_order)

    @staticmethod
    def _compile(i: int, rc: RouteConfig) -> Route:
        preds = tuple(
            _compile_predicate(where, name, p)
            for where in ("query", "path", "header", "body")
            for name, p in getattr(rc.match, where).items()
        )
        names = tuple(s.strip("{}+") for s in _segments(rc.path) if s.startswith("{"))
        return Route(id=rc.route_id, service=rc.service, function=rc.function, template=rc.path,
                     methods=frozenset(rc.methods), public=rc.public, timeout_s=rc.timeout_s, shadow=rc.shadow,
                     predicates=preds, param_names=names, index=i, versions=frozenset(rc.versions),
                     response_headers=rc.deprecation.headers() if rc.deprecation else ())

    def _add(self, route: Route) -> None:
        node = self._root
        segs = _segments(route.template)
        greedy = bool(segs) and segs[-1].endswith("+}")
        for s in segs[:-1] if greedy else segs:
            if s.startswith("{"):
                node.param = node.param or _Node()
                node = node.param
            else:
                node = node.literal.setdefault(s, _Node())
        bucket = node.greedy if greedy else node.routes
        canon = self.config.routes[route.index].match.canonical()
        for other in bucket:
            if (other.methods & route.methods and other.versions & route.versions
                    and self.config.routes[other.index].match.canonical() == canon):
                both = ",".join(sorted(other.methods & route.methods))
                raise AmbiguousRoutes(other.index, route.index,
                                      f"routes[{other.index}] and routes[{route.index}] match the same requests "
                                      f"({both} {route.template}); give one of them a distinguishing match:")
        bucket.append(route)
        self.routes.append(route)

    def _walk(self, node: _Node) -> Iterator[_Node]:
        yield node
        for child in node.literal.values():
            yield from self._walk(child)
        if node.param:
            yield from self._walk(node.param)

    def match(self, req: RequestView) -> RouteMatch | None:
        segs = [s for s in req.path.split("/") if s]
        return self._match(self._root, segs, 0, [], req)

    def versions_of(self, req: RequestView) -> list[str]:
        """The versions in which some route would answer ``req`` (for a 404 that names them)."""
        found: set[str] = set()
        for r in self.routes_on(req.path):
            if req.method in r.methods:
                found |= r.versions
        return sorted(found, key=lambda v: int(v[1:]))

    def routes_on(self, path: str) -> list[Route]:
        """Every route whose template matches ``path``, whatever the method and predicates."""
        segs = [s for s in path.split("/") if s]
        out: list[Route] = []
        self._collect(self._root, segs, 0, out)
        return out

    def _collect(self, node: _Node, segs: list[str], i: int, out: list[Route]) -> None:
        if i == len(segs):
            out.extend(node.routes)
            return
        if (child := node.literal.get(segs[i])) is not None:
            self._collect(child, segs, i + 1, out)
        if node.param is not None:
            self._collect(node.param, segs, i + 1, out)
        out.extend(node.greedy)

    def _match(self, node: _Node, segs: list[str], i: int, captured: list[str], req: RequestView) -> RouteMatch | None:
        if i == len(segs):
            found = _pick(node.routes, captured, req)
            if found:
                return found
        else:
            child = node.literal.get(segs[i])
            if child is not None:
                found = self._match(child, segs, i + 1, captured, req)
                if found:
                    return found
            if node.param is not None:
                found = self._match(node.param, segs, i + 1, [*captured, segs[i]], req)
                if found:
                    return found
        if node.greedy and i < len(segs):
            return _pick(node.greedy, [*captured, "/".join(segs[i:])], req)
        return None


def _order(r: Route) -> tuple[int, int]:
    return (0 if r.predicates else 1, r.index)


def _pick(routes: list[Route], captured: list[str], req: RequestView) -> RouteMatch | None:
    for r in routes:
        if req.method not in r.methods or req.version not in r.versions:
            continue
        params = dict(zip(r.param_names, captured, strict=False))
        if all(p.test(req, params) for p in r.predicates):
            return RouteMatch(r, params)
    return None


PathResult = tuple[str, None] | tuple[None, str]


def normalise_path(path: str, stage_prefix: str = "") -> PathResult:
    """Collapse ``//``, refuse NUL and dot segments, strip the API stage prefix (decoded paths).

    Returns ``(path, None)`` or ``(None, reason)``; the reason becomes a 400 for the client.
    """
    if "\x00" in path:
        return None, "NUL byte in path"
    segs = [s for s in path.split("/") if s]
    if any(s in (".", "..") for s in segs):
        return None, "dot segments ('.' or '..') are not allowed in the path"
    clean = "/" + "/".join(segs)
    if stage_prefix and (clean == stage_prefix or clean.startswith(stage_prefix + "/")):
        clean = clean[len(stage_prefix):] or "/"
    return clean, None


# Bytes of a request target that are sent as they are; anything else (non-ASCII, space,
# controls) is percent-encoded byte for byte, so what was received is what goes on the wire.
RAW_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


@dataclass(frozen=True, slots=True)
class RequestPath:
    """One request path in its two forms: ``path`` (decoded) is what routes match and what a
    Lambda event's ``path`` carries; ``raw`` keeps the client's percent-encoding and is what an
    HTTP upstream receives. Both have the stage prefix stripped and ``//`` collapsed; segments
    are never re-encoded."""

    path: str
    raw: str


RawPathResult = tuple[RequestPath, None] | tuple[None, str]


def split_raw_path(raw: bytes | str, stage_prefix: str = "") -> RawPathResult:
    """Normalise a raw request path (as received, percent-encoded) without rebuilding it.

    Empty segments are dropped and the stage prefix's segments are removed in both forms;
    every other segment is forwarded byte for byte. Each segment is decoded on its own to
    match on, so NUL or dot segments hidden behind escapes (``%00``, ``%2e%2e``) are refused.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("ascii")
        except UnicodeDecodeError:
            raw = quote(raw, safe=RAW_SAFE)
    raw_segs = [s for s in raw.split("/") if s]
    dec_segs = [unquote(s) if "%" in s else s for s in raw_segs]
    decoded = "/".join(dec_segs)
    if "\x00" in decoded:
        return None, "NUL byte in path"
    if any(s in (".", "..") for s in decoded.split("/")):  # also behind %2F: "a%2F.."
        return None, "dot segments ('.' or '..') are not allowed in the path"
    if stage_prefix:
        prefix = [s for s in stage_prefix.split("/") if s]
        if dec_segs[:len(prefix)] == prefix:
            raw_segs, dec_segs = raw_segs[len(prefix):], dec_segs[len(prefix):]
    return RequestPath("/" + "/".join(dec_segs), "/" + "/".join(raw_segs)), None


INTERNAL_PREFIX = ("internal", "api")  # service-to-service only: never served at the edge
VERSION_PREFIX = "api"


def split_version(rp: RequestPath) -> tuple[RequestPath, str | None] | tuple[None, None]:
    """``/api/v2/my`` → (``/my``, "v2") for matching; (None, None) for ``/internal/api/…``.

    A path with no version prefix is v1 (the Chariot API as served under the stage today). For
    v1 the prefix is taken off what is forwarded too (both sides serve v1 on the bare path); a
    later version is forwarded as received, so the service that offers it sees which one.
    """
    segs = rp.path.split("/")[1:]
    if tuple(segs[:2]) == INTERNAL_PREFIX:
        return None, None
    if len(segs) >= 2 and segs[0] == VERSION_PREFIX and segs[1][:1] == "v" and segs[1][1:].isdigit():
        version = segs[1]
        bare = "/" + "/".join(segs[2:])
        if version == "v1":
            raw = "/" + "/".join(rp.raw.split("/")[3:])
            return RequestPath(bare, raw), version
        return RequestPath(bare, rp.raw), version
    return rp, None


MatchFn = Callable[[RequestView], RouteMatch | None]
