"""``POST /my`` over the entities a graph service can see, exactly as legacy answers it.

Pure: the caller passes a ``kind → entities`` source (its own tables, a read model or a peer
service); query semantics, ordering, page offsets, the tree shape and the 413
"reduce page size" contract come from :mod:`chariot_migrate.model.query`.
"""

from __future__ import annotations

from typing import Any

from chariot_migrate.model import query as gq
from chariot_migrate.model.errors import ApiError

KindSource = gq.KindSource
DEFAULT_MAX_RESPONSE_BYTES = 5_500_000  # under Lambda's 6 MB synchronous response limit, like legacy
TOO_LARGE = gq.TOO_LARGE


def run_query(query: gq.GraphQuery, source: KindSource, *, tree: bool = False,
              max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> Any:
    try:
        return gq.answer(query, gq.make_loader(source), tree=tree, max_response_bytes=max_response_bytes)
    except gq.ResultTooLarge as e:
        raise ApiError(413, str(e)) from None


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
