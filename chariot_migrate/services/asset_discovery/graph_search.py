"""``POST /my`` over the entities a graph service can see, exactly as legacy answers it.

Pure: the caller passes a ``kind → entities`` source (its own tables, a read model or a peer
service); query semantics, ordering, page offsets, the tree shape and the 413
"reduce page size" contract come from :mod:`chariot_migrate.model.query`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from chariot_migrate.model import query as gq
from chariot_migrate.model.requests import describe

from .contract import ApiError, bad_request

KindSource = Callable[[str], list[dict[str, Any]]]  # kind ("asset", "risk", …) → that kind's entities
DEFAULT_MAX_RESPONSE_BYTES = 5_500_000  # under Lambda's 6 MB synchronous response limit, like legacy
TOO_LARGE = "query result too large: reduce page size"


def make_loader(source: KindSource) -> gq.Loader:
    """A label loader that fetches each kind once per request (relationships need whole kinds)."""
    cache: dict[str, list[dict[str, Any]]] = {}

    def load(label: str) -> list[dict[str, Any]]:
        kind = gq.label_kind(label)
        if kind not in cache:
            cache[kind] = source(kind)
        return [e for e in cache[kind] if gq.has_label(e, label)]

    return load


def parse_query(body: dict[str, Any]) -> gq.GraphQuery:
    try:
        query = gq.GraphQuery.model_validate(body)
    except ValidationError as e:
        raise bad_request(describe(e)) from None
    if "Seed" in query.node.labels:
        _seed_compat(query)
    return query


def _seed_compat(query: gq.GraphQuery) -> None:
    # Older seed keys were #seed#<dns>; seeds are now #asset#<dns>#<dns>.
    for f in list(query.node.filters) + list(query.filters):
        if f.field == "key" and isinstance(f.value, str) and f.value.startswith("#seed#"):
            f.value = "#asset#" + f.value[len("#seed#"):]


def run_query(query: gq.GraphQuery, source: KindSource, *, tree: bool = False,
              max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> Any:
    load = make_loader(source)
    rows = gq.evaluate(query, load)
    if tree:
        return tree_rows(query, rows, load)
    chunk, next_page = gq.page_of(rows, query.page, query.limit)
    out: dict[str, Any] = gq.bucketize(chunk, query.node.labels)
    if next_page is not None:
        out["offset"] = next_page
    if query.limit > 1 and len(json.dumps(out, separators=(",", ":"))) > max_response_bytes:
        raise ApiError(413, TOO_LARGE)
    return out


def tree_rows(query: gq.GraphQuery, rows: list[dict[str, Any]], load: gq.Loader) -> list[dict[str, Any]]:
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


def kinds_needed(query: gq.GraphQuery) -> set[str]:
    """Every entity kind the query can touch (roots and relationship ends, recursively)."""
    kinds: set[str] = set()

    def walk(node: gq.Node) -> None:
        labels = node.labels or ["Asset", "Risk", "Attribute", "Preseed"]
        kinds.update(gq.label_kind(lb) for lb in labels)
        for rel in node.relationships:
            walk(rel.source if rel.source is not None else (rel.target or gq.Node()))

    walk(query.node)
    return kinds
