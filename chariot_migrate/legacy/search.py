"""Search: ``GET /my`` (table prefix / field queries), ``POST /my`` (graph query), ``GET /my/count``."""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

from pydantic import ValidationError

from chariot_migrate.model import query as gq
from chariot_migrate.model.keys import kind_of, plural
from chariot_migrate.model.requests import describe

from . import store
from .auth import Caller, secured
from .http import ApiError, Request, bad_request, dispatch, plain

GLOBAL_USERNAME = "global"
# Fields served by a GSI; any other field:value is a filtered partition scan.
INDEXED = set(store.GSI_FIELDS)


def page_size() -> int:
    return int(os.environ.get("CHARIOT_PAGE_SIZE", "1000"))


def max_response_bytes() -> int:
    # Lambda's synchronous response limit is 6 MB; stay under it like the real API does.
    return int(os.environ.get("CHARIOT_MAX_RESPONSE_BYTES", str(5_500_000)))


def _partition(req: Request, caller: Caller) -> str:
    return GLOBAL_USERNAME if req.flag("global") else caller.username


def _offset(req: Request, username: str) -> dict[str, Any] | None:
    raw = req.param("offset")
    if not raw:
        return None
    try:
        start = json.loads(raw)
    except ValueError:
        raise bad_request("offset must be the JSON object a previous page returned") from None
    if not isinstance(start, dict) or start.get("username") != username or not isinstance(start.get("key"), str):
        raise bad_request("offset must be the JSON object a previous page returned")
    return start


def get_my(req: Request, caller: Caller) -> Any:
    term = req.param("key")
    if not term:
        raise bad_request("query parameter 'key' is required (a key prefix like #job# or field:value)")
    username = _partition(req, caller)
    start = _offset(req, username)
    exact = req.flag("exact")
    desc = req.flag("desc")
    label = (req.param("label") or "").lower()
    limit = page_size()
    if term.startswith("#"):
        to = req.param("to")
        if exact:
            items, last = store.query_page(username, exact=term, start=start, limit=limit, descending=desc)
        elif to:
            items, last = store.query_page(username, between=(term, to), start=start, limit=limit, descending=desc)
        else:
            items, last = store.query_page(username, prefix=term, start=start, limit=limit, descending=desc)
        if label:
            items = [i for i in items if kind_of(i["key"]) == label]
    else:
        field, sep, value = term.partition(":")
        if not sep or not field:
            raise bad_request("key must be a key prefix starting with '#' or field:value")
        kind_prefix = f"#{label}#" if label else None
        if field in INDEXED:
            items, last = store.query_page(username, index_field=field, index_value=value, index_exact=exact,
                                           start=start, limit=limit, descending=desc,
                                           key_prefix_filter=kind_prefix)
        else:
            rows, last = store.query_page(username, prefix=kind_prefix or "#", start=start, limit=limit,
                                          descending=desc)
            items = [r for r in rows if _field_match(r.get(field), value, exact)]
    out: dict[str, Any] = {}
    for item in items:
        out.setdefault(plural(kind_of(item["key"]) or "other"), []).append(item)
    if last:
        out["offset"] = last
    return out


def _field_match(actual: Any, value: str, exact: bool) -> bool:
    if actual is None:
        return False
    s = str(actual)
    return s == value if exact else s.startswith(value)


def _loader(username: str):
    # Loads a whole kind once per request: relationship sides need the full set, not a key range.
    cache: dict[str, list[dict[str, Any]]] = {}

    def load(label: str) -> list[dict[str, Any]]:
        kind = gq.label_kind(label)
        prefix = f"#{kind}#"
        if kind not in cache:
            cache[kind] = [plain(i) for i in store.query_all(username, prefix)]
        return [e for e in cache[kind] if gq.has_label(e, label)]

    return load


def _seed_compat(query: gq.GraphQuery) -> None:
    # Older seed keys were #seed#<dns>; seeds are now #asset#<dns>#<dns>.
    for f in list(query.node.filters) + list(query.filters):
        if f.field == "key" and isinstance(f.value, str) and f.value.startswith("#seed#"):
            rest = f.value[len("#seed#"):]
            f.value = "#asset#" + rest


def post_my(req: Request, caller: Caller) -> Any:
    body = req.body_dict()
    try:
        query = gq.GraphQuery.model_validate(body)
    except ValidationError as e:
        raise bad_request(describe(e)) from None
    if "Seed" in query.node.labels:
        _seed_compat(query)
    username = _partition(req, caller)
    load = _loader(username)
    rows = gq.evaluate(query, load)
    if req.flag("tree"):
        return _tree(query, rows, load)
    chunk, next_page = gq.page_of(rows, query.page, query.limit)
    out: dict[str, Any] = gq.bucketize(chunk, query.node.labels)
    if next_page is not None:
        out["offset"] = next_page
    if query.limit > 1 and len(json.dumps(out, separators=(",", ":"))) > max_response_bytes():
        raise ApiError(413, "query result too large: reduce page size")
    return out


def _tree(query: gq.GraphQuery, rows: list[dict[str, Any]], load: gq.Loader) -> list[dict[str, Any]]:
    tree = []
    for row in rows[query.page * query.limit : (query.page + 1) * query.limit]:
        rels = []
        for rel in query.node.relationships:
            for label, other in gq.relationship_targets(row, rel, load):
                edge = {"label": label, "created": other.get("created"), "visited": other.get("visited")}
                rels.append({"label": label, "result": {"relationships": [edge]},
                             "target": {"result": {gq.bucket_of(other): [other]}}})
        tree.append({"node": {"result": {"count": 1, gq.bucket_of(row, query.node.labels): [row]},
                              "relationships": rels}})
    return tree


def count_my(req: Request, caller: Caller) -> Any:
    # The CLI's `search -c` sends whatever term it was given: a key prefix or field:value.
    term = req.param("key") or "#"
    username = _partition(req, caller)
    if term.startswith("#"):
        items = store.query_all(username, term)
    else:
        field, sep, value = term.partition(":")
        if not sep or not field:
            raise bad_request("key must be a key prefix starting with '#' or field:value")
        label = (req.param("label") or "").lower()
        rows = store.query_all(username, f"#{label}#" if label else "#")
        items = [r for r in rows if _field_match(r.get(field), value, req.flag("exact"))]
    status = Counter(str(i.get("status", "")).split("#")[0] for i in items)
    source = Counter(str(i.get("source", "")) for i in items if kind_of(i["key"]) != "attribute")
    attributes = Counter(str(i.get("name", "")) for i in items if kind_of(i["key"]) == "attribute")
    return {"count": len(items), "status": dict(status), "source": dict(source), "attributes": dict(attributes)}


ROUTES = {("GET", "/my"): get_my, ("POST", "/my"): post_my, ("GET", "/my/count"): count_my,
          ("GET", "/my/{count}"): count_my}


@secured(read_routes=frozenset({("POST", "/my")}))
def handler(req: Request, caller: Caller) -> Any:
    return dispatch(req, ROUTES, caller)
