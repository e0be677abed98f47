"""Backend-for-frontend answers at the edge: aggregates (one call, several GETs fanned out),
NDJSON streaming of paginated lists, and GraphQL (an endpoint named in routes.yaml).

Every part is a sub-request through the proxy's own pipeline (``ProxyApp.handle``) with the
caller's own headers: authentication, limits, the side decision (sticky per account), shadow
and failover apply to it exactly as if the client had sent it, so a BFF answer never reads a
store behind the migration's back. Decisions (matching, assembling, paging, cache keys) are pure
functions below; ``Bff`` at the bottom does the IO.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from cachetools import TTLCache

from .. import bounded_json
from ..routes.matcher import split_raw_path, split_version
from ..routes.models import Aggregate, RoutesFile
from . import metrics

NDJSON = "application/x-ndjson"
SUBREQUEST = "chariot_migrate.bff"  # ASGI scope extension marking our own sub-requests
Handle = Callable[[dict, Any, Any], Awaitable[None]]
# The caller's request headers a part does not inherit: it is a bodiless GET asking for JSON.
_NOT_INHERITED = {b"content-length", b"content-type", b"transfer-encoding", b"accept", b"accept-encoding",
                  b"expect", b"content-encoding"}
_IDENTITY = ("authorization", "account", "x-api-key", "cookie")


@dataclass(frozen=True, slots=True)
class SubResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class BffMatch:
    kind: str  # "aggregate" | "ndjson" | "graphql"
    path: str  # bare path (no stage, no version)
    aggregate: Aggregate | None = None


# --- pure decisions ---------------------------------------------------------------------------


def match_bff(cfg: RoutesFile, scope: dict) -> BffMatch | None:
    """Is this request a BFF answer? Aggregates by path and API version; NDJSON only for a GET of a
    listed route whose client asks for it. Anything else is None: the normal pipeline serves it.
    Cheap for every other request: a suffix test on the path before any parsing."""
    bff = cfg.bff
    path: str = scope["path"]
    aggs = [a for a in bff.aggregates if path.endswith(a.path)]
    streams = scope["method"] == "GET" and any(path.endswith(p) for p in bff.ndjson)
    graphql = bff.graphql is not None and path.endswith(bff.graphql.path)
    if not aggs and not streams and not graphql:
        return None
    rp, _ = split_raw_path(scope.get("raw_path") or quote(path).encode(), cfg.stage_prefix)
    if rp is None:
        return None
    rp, version = split_version(rp)
    if rp is None:
        return None
    if graphql and bff.graphql is not None and rp.path == bff.graphql.path and version is None:
        return BffMatch("graphql", rp.path)
    for agg in aggs:
        if rp.path == agg.path and (version or "v1") in agg.versions:
            return BffMatch("aggregate", rp.path, agg)
    if streams and rp.path in bff.ndjson and version in (None, "v1"):
        accept = b",".join(v for k, v in scope["headers"] if k.lower() == b"accept").decode("latin-1").lower()
        if NDJSON in accept:
            return BffMatch("ndjson", rp.path)
    return None


def identity_key(headers: list[tuple[bytes, bytes]]) -> str:
    """Cache key of a caller: a digest of the headers that say who is asking (never stored raw)."""
    h = hashlib.blake2b(digest_size=16)
    for k, v in sorted((k.lower(), v) for k, v in headers if k.lower().decode("latin-1") in _IDENTITY):
        h.update(k + b"\x00" + v + b"\x01")
    return h.hexdigest()


def assemble(agg: Aggregate, outcomes: dict[str, SubResponse | str]) -> tuple[int, dict[str, Any]]:
    """The aggregate's answer from its parts' outcomes (a response, or why there is none).

    A failed part is ``null`` and named in ``partial`` with its reason in ``errors``. When every
    part failed with the same client error (401, 403, 429) that status is the answer: a caller
    who may not read any part gets no empty dashboard."""
    doc: dict[str, Any] = {}
    partial: list[str] = []
    errors: dict[str, str] = {}
    statuses: set[int] = set()
    for name, spec in agg.parts.items():
        out = outcomes.get(name, "not run")
        value, why = None, None
        if isinstance(out, str):
            why = out
        elif out.status >= 400:
            statuses.add(out.status)
            why = f"status {out.status}: {_reason(out)}"
        else:
            try:
                value = out.json()
            except ValueError:
                why = "the answer is not JSON"
            else:
                if spec.pick is not None:
                    value = value.get(spec.pick) if isinstance(value, dict) else None
        if why is not None:
            partial.append(name)
            errors[name] = why
        doc[name] = value
    if partial and len(partial) == len(agg.parts) and len(statuses) == 1 and (s := statuses.pop()) in (401, 403, 429):
        return s, {"error": next(iter(errors.values())), "partial": partial}
    doc["partial"] = partial
    if errors:
        doc["errors"] = errors
    return 200, doc


def _reason(out: SubResponse) -> str:
    try:
        doc = out.json()
    except ValueError:
        return "no reason given"
    return str(doc.get("error") or doc.get("message") or "no reason given") if isinstance(doc, dict) else "no reason given"


def page_items(doc: Any) -> list[Any]:
    """The items of one page of a Chariot list: every list in the answer (``assets``, ``risks``…),
    in the answer's order; a bare list is its own items."""
    if isinstance(doc, list):
        return doc
    if not isinstance(doc, dict):
        return []
    return [item for v in doc.values() if isinstance(v, list) for item in v]


def next_page_query(query: str, doc: Any) -> str | None:
    """The query of the next page: the client's, with ``offset`` set to the answer's offset as the
    real client sends it back (``offset=json.dumps(offset)``); None on the last page."""
    offset = doc.get("offset") if isinstance(doc, dict) else None
    if offset in (None, "", {}, []):
        return None
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "offset"]
    pairs.append(("offset", offset if isinstance(offset, str) else json.dumps(offset)))
    return urlencode(pairs, quote_via=quote)


# --- IO ---------------------------------------------------------------------------------------


@dataclass
class _Caches:
    by_path: dict[str, TTLCache] = field(default_factory=dict)

    def of(self, agg: Aggregate) -> TTLCache | None:
        if agg.cache_s <= 0:
            return None
        c = self.by_path.get(agg.path)
        if c is None or c.ttl != agg.cache_s:
            c = self.by_path[agg.path] = TTLCache(maxsize=10_000, ttl=agg.cache_s)
        return c


class Bff:
    """Serves BFF answers by calling ``handle`` (the proxy's pipeline) once per part or page."""

    def __init__(self, handle: Handle) -> None:
        self.handle = handle
        self.caches = _Caches()

    async def serve(self, m: BffMatch, cfg: RoutesFile, scope: dict, receive, send) -> None:
        if m.kind == "ndjson":
            return await self._stream(m, cfg, scope, send)
        if m.kind == "graphql":
            return await self._graphql(cfg, scope, receive, send)
        agg = m.aggregate
        assert agg is not None
        if scope["method"] not in ("GET", "HEAD"):
            return await _send(send, 405, {"error": f"{agg.path} answers GET only"}, [(b"allow", b"GET, HEAD")])
        cache = self.caches.of(agg)
        key = identity_key(scope["headers"])
        if cache is not None and (hit := cache.get(key)) is not None:
            metrics.BFF_PARTS.labels(agg.path, "*", "cached").inc()
            return await _send(send, 200, hit, [(b"x-bff-cache", b"hit")])
        names = list(agg.parts)
        results = await asyncio.gather(*(self._part(scope, cfg.stage_prefix, agg, n) for n in names))
        status, doc = assemble(agg, dict(zip(names, results, strict=True)))
        if cache is not None and status == 200 and not doc["partial"]:
            cache[key] = doc
        await _send(send, status, doc, [(b"x-bff-cache", b"miss")] if cache is not None else [])

    async def _part(self, scope: dict, stage: str, agg: Aggregate, name: str) -> SubResponse | str:
        spec = agg.parts[name]
        timeout = spec.timeout_s or agg.timeout_s
        try:
            out: SubResponse | str = await asyncio.wait_for(
                self.call(scope, stage + spec.path, urlencode(spec.query, quote_via=quote)), timeout)
        except TimeoutError:
            out = f"no answer within {timeout:g}s"
        result = "ok" if isinstance(out, SubResponse) and out.status < 400 else "failed"
        metrics.BFF_PARTS.labels(agg.path, name, result).inc()
        return out

    async def call(self, scope: dict, path: str, query: str, method: str = "GET", body: bytes = b"") -> SubResponse:
        """One request through the proxy's pipeline with the caller's identity; the whole answer."""
        status, headers, chunks = 500, [], []
        done = asyncio.Event()

        async def receive() -> dict:
            if done.is_set():
                await asyncio.Event().wait()  # as a server does: block until the exchange is over
            done.set()
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(msg: dict) -> None:
            nonlocal status, headers
            if msg["type"] == "http.response.start":
                status, headers = msg["status"], list(msg.get("headers") or [])
            elif msg["type"] == "http.response.body":
                chunks.append(msg.get("body", b""))

        await self.handle(subrequest_scope(scope, path, query, method, body), receive, send)
        return SubResponse(status, headers, b"".join(chunks))

    async def _graphql(self, cfg: RoutesFile, scope: dict, receive, send) -> None:
        """GraphQL over HTTP: POST a JSON document (queries and mutations) or GET ?query= (queries
        only). Each resolver's REST call is a sub-request as the caller, under the stage."""
        gql = cfg.bff.graphql
        assert gql is not None
        method = scope["method"]
        if method == "POST":
            ctype = _header(scope, b"content-type").split(";")[0].strip().lower()
            if ctype != "application/json":
                return await _send(send, 415, {"errors": [{"message": "send the GraphQL request as application/json"}]}, [])
            raw = await _read_all(receive, cfg.defaults.max_body_bytes)
            if raw is None:
                return await _send(send, 413, {"errors": [{"message": f"request body exceeds {cfg.defaults.max_body_bytes} bytes"}]}, [])
            try:
                doc = bounded_json.loads(raw)
            except ValueError as e:
                return await _send(send, 400, {"errors": [{"message": f"request body is not valid JSON: {e}"}]}, [])
        elif method == "GET":
            q = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
            doc = {k: q[k] for k in ("query", "operationName") if k in q}
            if "variables" in q:
                try:
                    doc["variables"] = bounded_json.loads(q["variables"])
                except ValueError as e:
                    return await _send(send, 400, {"errors": [{"message": f"variables are not valid JSON: {e}"}]}, [])
        else:
            return await _send(send, 405, {"errors": [{"message": "GraphQL is served on GET and POST"}]},
                               [(b"allow", b"GET, POST")])
        stage = cfg.stage_prefix

        async def fetch(m: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
            payload = b"" if body is None else json.dumps(body).encode()
            r = await self.call(scope, stage + path, urlencode(query, quote_via=quote), m, payload)
            metrics.BFF_PARTS.labels(gql.path, f"{m} {path}", "ok" if r.status < 400 else "failed").inc()
            try:
                return r.status, r.json()
            except ValueError:
                return r.status, None

        status, answer = await load_endpoint(gql.endpoint).execute(doc, fetch, read_only=method == "GET")
        await _send(send, status, answer, [])

    async def _stream(self, m: BffMatch, cfg: RoutesFile, scope: dict, send) -> None:
        """Every page of a list as NDJSON, one item per line. The next page is fetched only once
        the previous one has been written: the server's ``send`` waits while the client is not
        reading, so a slow reader holds one page in memory, not the whole list."""
        query = scope.get("query_string", b"").decode("latin-1")
        path = cfg.stage_prefix + m.path
        first = await self.call(scope, path, query)
        if first.status >= 400 or not _is_json(first):
            return await _send_raw(send, first)  # the list's own answer, as it came
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", NDJSON.encode()), (b"cache-control", b"no-store"),
                                *[(k, v) for k, v in first.headers if k in (b"x-correlation-id",)]]})
        pages, page = 0, first
        try:
            async for chunk in _lines(self, scope, path, query, page, cfg.bff.ndjson_max_pages):
                pages += 1
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except _BrokenPage as e:  # the status is sent: say so on the last line instead
            await send({"type": "http.response.body", "body": json.dumps({"error": str(e), "partial": True}).encode()
                        + b"\n", "more_body": True})
        metrics.BFF_PARTS.labels(m.path, "ndjson", "pages").inc(pages)
        await send({"type": "http.response.body", "body": b""})


class _BrokenPage(Exception):
    pass


async def _lines(bff: Bff, scope: dict, path: str, query: str, page: SubResponse, max_pages: int) -> AsyncIterator[bytes]:
    for n in range(max_pages):
        doc = page.json()
        items = page_items(doc)
        if items:
            yield b"".join(json.dumps(i, separators=(",", ":")).encode() + b"\n" for i in items)
        nxt = next_page_query(query, doc)
        if nxt is None:
            return
        if n + 1 == max_pages:
            raise _BrokenPage(f"stopped after {max_pages} pages (bff.ndjson_max_pages)")
        query = nxt
        page = await bff.call(scope, path, query)
        if page.status >= 400 or not _is_json(page):
            raise _BrokenPage(f"page {n + 2} failed with status {page.status}: {_reason(page)}")


def _is_json(r: SubResponse) -> bool:
    try:
        r.json()
    except ValueError:
        return False
    return True


@functools.cache
def load_endpoint(spec: str) -> Any:
    """The GraphQL endpoint named in routes.yaml (``module:factory``), made once per process."""
    module, _, factory = spec.partition(":")
    return getattr(importlib.import_module(module), factory)()


def _header(scope: dict, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == name), "")


async def _read_all(receive, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        msg = await receive()
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not msg.get("more_body"):
            return b"".join(chunks)


def subrequest_scope(scope: dict, path: str, query: str, method: str = "GET", body: bytes = b"") -> dict:
    """A request for ``path`` (under the stage: matched as v1, as today's clients are) carrying the caller's
    identity and connection facts, marked so it is never itself taken for a BFF answer."""
    headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _NOT_INHERITED]
    headers.append((b"accept", b"application/json"))
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return {**scope, "method": method, "path": path, "raw_path": quote(path).encode(), "root_path": "",
            "query_string": query.encode("latin-1"), "headers": headers,
            "extensions": {**(scope.get("extensions") or {}), SUBREQUEST: True}}


async def _send(send, status: int, doc: dict, extra: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps(doc).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"private, no-store"), *extra]})
    await send({"type": "http.response.body", "body": body})


async def _send_raw(send, r: SubResponse) -> None:
    await send({"type": "http.response.start", "status": r.status, "headers": r.headers})
    await send({"type": "http.response.body", "body": r.body})
