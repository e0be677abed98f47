"""Search: ``GET /my`` (table prefix / field queries), ``POST /my`` (graph query), ``GET /my/count``."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from chariot_migrate.model import query as gq
from chariot_migrate.model import search as my_search
from chariot_migrate.model.keys import kind_of
from chariot_migrate.model.search import field_match
from chariot_migrate.model.table import GLOBAL_USERNAME, GSI_FIELDS

from . import store
from .auth import Caller, secured
from .http import ApiError, Request, bad_request, dispatch, plain

# Fields served by a GSI; any other field:value is a filtered partition scan.
INDEXED = set(GSI_FIELDS)


def page_size() -> int:
    return int(os.environ.get("CHARIOT_PAGE_SIZE", "1000"))


def max_response_bytes() -> int:
    # Lambda's synchronous response limit is 6 MB; stay under it like the real API does.
    return int(os.environ.get("CHARIOT_MAX_RESPONSE_BYTES", str(5_500_000)))


def _partition(req: Request, caller: Caller) -> str:
    return GLOBAL_USERNAME if req.flag("global") else caller.username


def get_my(req: Request, caller: Caller) -> Any:
    try:
        return my_search.search_my(store, req.param, caller.username, page_size=page_size(), indexed=INDEXED)
    except my_search.SearchError as e:
        raise bad_request(str(e)) from None


def post_my(req: Request, caller: Caller) -> Any:
    query = gq.parse_query(req.body_dict())
    username = _partition(req, caller)
    # Loads a whole kind once per request: relationship sides need the full set, not a key range.
    load = gq.make_loader(lambda kind: [plain(i) for i in store.query_all(username, f"#{kind}#")])
    try:
        return gq.answer(query, load, tree=req.flag("tree"), max_response_bytes=max_response_bytes())
    except gq.ResultTooLarge as e:
        raise ApiError(413, str(e)) from None


def count_my(req: Request, caller: Caller) -> Any:
    # The CLI's `search -c` sends whatever term it was given: a key prefix or field:value.
    term = req.param("key") or "#"
    username = _partition(req, caller)
    if term.startswith("#"):
        items = store.query_all(username, term)
    else:
        field, sep, value = term.partition(":")
        if not sep or not field:
            raise bad_request(my_search.TERM_MESSAGE)
        label = (req.param("label") or "").lower()
        rows = store.query_all(username, f"#{label}#" if label else "#")
        items = [r for r in rows if field_match(r.get(field), value, req.flag("exact"))]
    status = Counter(str(i.get("status", "")).split("#")[0] for i in items)
    source = Counter(str(i.get("source", "")) for i in items if kind_of(i["key"]) != "attribute")
    attributes = Counter(str(i.get("name", "")) for i in items if kind_of(i["key"]) == "attribute")
    return {"count": len(items), "status": dict(status), "source": dict(source), "attributes": dict(attributes)}


ROUTES = {("GET", "/my"): get_my, ("POST", "/my"): post_my, ("GET", "/my/count"): count_my,
          ("GET", "/my/{count}"): count_my}


@secured(read_routes=frozenset({("POST", "/my")}))
def handler(req: Request, caller: Caller) -> Any:
    return dispatch(req, ROUTES, caller)
