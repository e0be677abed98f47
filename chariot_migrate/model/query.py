"""The graph query of ``POST /my``: request models and pure evaluation over plain dicts.

Chariot runs these on Neo4j; here the same semantics are evaluated over entity dicts, with the
edges derived from keys (see ``related``), so legacy and new services answer alike.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .keys import kind_of, plural
from .requests import parse_model

Operator = Literal["=", "CONTAINS", "<", "<=", ">", ">=", "STARTS WITH", "ENDS WITH", "IN", "AND", "OR"]
MAX_LIMIT = 10000
DEFAULT_LIMIT = 4096

# label → (key kind, extra predicate); unknown labels map to their lowercase kind.
_LABEL_KIND = {"Seed": "asset", "Asset": "asset", "Risk": "risk", "Attribute": "attribute", "Preseed": "preseed"}


class Filter(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")
    field: str = ""
    operator: Operator
    value: Any = None
    not_: bool = Field(False, alias="not")

    @field_validator("not_", mode="before")
    @classmethod
    def _none_is_false(cls, v: Any) -> Any:
        return False if v is None else v


class Relationship(BaseModel):
    model_config = ConfigDict(extra="ignore")
    label: str | list[str] | None = None
    source: Node | None = None
    target: Node | None = None
    optional: bool = False
    length: int = 0

    @property
    def labels(self) -> list[str]:
        if self.label is None:
            return []
        return [self.label] if isinstance(self.label, str) else list(self.label)


class Node(BaseModel):
    model_config = ConfigDict(extra="ignore")
    labels: list[str] = Field(default_factory=list)
    filters: list[Filter] = Field(default_factory=list)
    relationships: list[Relationship] = Field(default_factory=list)
    search: str | None = None


Relationship.model_rebuild()


class GraphQuery(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    node: Node = Field(default_factory=Node)
    filters: list[Filter] = Field(default_factory=list)
    page: int = Field(0, ge=0)
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    order_by: str | None = Field(None, alias="orderBy")
    descending: bool = False
    shortest: int = 0


# --- labels and edges ------------------------------------------------------------------

def label_kind(label: str) -> str:
    return _LABEL_KIND.get(label, label.lower())


def has_label(entity: dict[str, Any], label: str) -> bool:
    kind = kind_of(entity.get("key", ""))
    if label == "Seed":
        return kind in ("asset", "seed") and entity.get("source") == "seed"
    if label == "TTL":
        return True
    return kind == label_kind(label)


def bucket_of(entity: dict[str, Any], labels: Iterable[str] = ()) -> str:
    """Results are bucketed by the plural of the lowercase type ("Seed" queries → seeds)."""
    if "Seed" in labels and entity.get("source") == "seed":
        return "seeds"
    return plural(kind_of(entity.get("key", "")) or "other")


def related(label: str, src: dict[str, Any], dst: dict[str, Any]) -> bool:
    """Does the edge ``src -[label]-> dst`` exist? Edges are derived from keys and fields."""
    sk, dk = kind_of(src.get("key", "")), kind_of(dst.get("key", ""))
    if label == "HAS_VULNERABILITY":
        if dk != "risk":
            return False
        if sk == "asset":
            return bool(src.get("dns")) and src.get("dns") == dst.get("dns")
        if sk == "attribute":
            # A risk raised against an attribute records it as its target.
            return dst.get("target") == src.get("key")
        return False
    if label == "HAS_ATTRIBUTE":
        return dk == "attribute" and dst.get("source") == src.get("key")
    if label == "DISCOVERED":
        return (
            sk == "asset" and dk == "asset" and src.get("source") == "seed"
            and src.get("dns") == dst.get("dns") and src.get("key") != dst.get("key")
        )
    return False


# --- filters ---------------------------------------------------------------------------

def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return float(str(v))
    except (TypeError, ValueError):
        return None


def _compare(actual: Any, op: str, expected: Any) -> bool:
    a, e = _num(actual), _num(expected)
    if a is not None and e is not None:
        return _ORDER[op](a, e)
    if actual is None:
        return False
    return _ORDER[op](str(actual), str(expected))


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _eq(actual: Any, expected: Any) -> bool:
    if isinstance(actual, list):
        return expected in actual or actual == expected
    if isinstance(actual, bool) or isinstance(expected, bool):
        return str(actual).lower() == str(expected).lower()
    a, e = _num(actual), _num(expected)
    if a is not None and e is not None and not isinstance(actual, str) and not isinstance(expected, str):
        return a == e
    return actual == expected or (actual is not None and str(actual) == str(expected))


def _flatten(values: Any) -> list[Any]:
    out: list[Any] = []
    for v in values if isinstance(values, list) else [values]:
        out.extend(_flatten(v) if isinstance(v, list) else [v])
    return out


def matches_filter(entity: dict[str, Any], f: Filter) -> bool:
    result = _matches(entity, f)
    return not result if f.not_ else result


def _matches(entity: dict[str, Any], f: Filter) -> bool:
    op = f.operator
    if op in ("AND", "OR"):
        subs = [s if isinstance(s, Filter) else Filter.model_validate(s) for s in (f.value or [])]
        results = (matches_filter(entity, s) for s in subs)
        return all(results) if op == "AND" else any(results)
    actual = entity.get(f.field)
    if op == "=":
        return _eq(actual, f.value)
    if op == "IN":
        return any(_eq(actual, v) for v in _flatten(f.value))
    if op in ("<", "<=", ">", ">="):
        return _compare(actual, op, f.value)
    if actual is None:
        return False
    items = actual if isinstance(actual, list) else [actual]
    needle = str(f.value)
    if op == "CONTAINS":
        return any(needle.lower() in str(x).lower() for x in items)
    if op == "STARTS WITH":
        return any(str(x).startswith(needle) for x in items)
    if op == "ENDS WITH":
        return any(str(x).endswith(needle) for x in items)
    return False


_SEARCH_FIELDS = ("key", "name", "dns", "title", "value", "group", "identifier")


def matches_search(entity: dict[str, Any], term: str | None) -> bool:
    if not term:
        return True
    t = term.lower()
    return any(t in str(entity.get(f, "")).lower() for f in _SEARCH_FIELDS)


# --- evaluation ------------------------------------------------------------------------

Loader = Callable[[str], list[dict[str, Any]]]  # label → candidate entities of that label


def node_matches(entity: dict[str, Any], node: Node, load: Loader, extra: Iterable[Filter] = ()) -> bool:
    if node.labels and not any(has_label(entity, lb) for lb in node.labels):
        return False
    if not all(matches_filter(entity, f) for f in list(node.filters) + list(extra)):
        return False
    if not matches_search(entity, node.search):
        return False
    return all(rel.optional or relationship_targets(entity, rel, load) for rel in node.relationships)


def relationship_targets(
    entity: dict[str, Any], rel: Relationship, load: Loader
) -> list[tuple[str, dict[str, Any]]]:
    """Neighbours of ``entity`` through ``rel``: [(edge label, neighbour)]."""
    other = rel.source if rel.source is not None else (rel.target or Node())
    root_is_target = rel.source is not None
    candidates = _candidates(other, load)
    found = []
    for cand in candidates:
        for label in rel.labels:
            src, dst = (cand, entity) if root_is_target else (entity, cand)
            if related(label, src, dst) and node_matches(cand, other, load):
                found.append((label, cand))
                break
    return found


def _candidates(node: Node, load: Loader) -> list[dict[str, Any]]:
    labels = node.labels or ["Asset", "Risk", "Attribute", "Preseed"]
    seen: dict[str, dict[str, Any]] = {}
    for label in labels:
        for e in load(label):
            seen.setdefault(e["key"], e)
    return list(seen.values())


def evaluate(query: GraphQuery, load: Loader) -> list[dict[str, Any]]:
    """All root entities matching the query, ordered (key order unless orderBy)."""
    rows = [e for e in _candidates(query.node, load) if node_matches(e, query.node, load, query.filters)]
    if query.order_by:
        field = query.order_by
        rows.sort(key=lambda e: (e.get(field) is None, str(e.get(field, "")), e["key"]), reverse=query.descending)
    else:
        rows.sort(key=lambda e: e["key"], reverse=query.descending)
    return rows


def page_of(rows: list[dict[str, Any]], page: int, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """Slice one page; the next offset is the next page number as a string (None at the end)."""
    start = page * limit
    chunk = rows[start : start + limit]
    return chunk, (str(page + 1) if start + limit < len(rows) else None)


def bucketize(rows: Iterable[dict[str, Any]], labels: Iterable[str] = ()) -> dict[str, list[dict[str, Any]]]:
    labels = list(labels)
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(bucket_of(r, labels), []).append(r)
    return out


# ---- answering POST /my (legacy and the graph services) -----------------------------------------

TOO_LARGE = "query result too large: reduce page size"
KindSource = Callable[[str], list[dict[str, Any]]]  # kind ("asset", "risk", …) → that kind's entities


class ResultTooLarge(ValueError):
    """The page is over the response-size limit (the API answers 413 ``TOO_LARGE``)."""


def make_loader(source: KindSource) -> Loader:
    """A label loader that fetches each kind once per request (relationships need whole kinds)."""
    cache: dict[str, list[dict[str, Any]]] = {}

    def load(label: str) -> list[dict[str, Any]]:
        kind = label_kind(label)
        if kind not in cache:
            cache[kind] = source(kind)
        return [e for e in cache[kind] if has_label(e, label)]

    return load


def parse_query(body: Any) -> GraphQuery:
    """The ``POST /my`` body as a query (400 with the legacy message), old seed keys rewritten."""
    query = parse_model(GraphQuery, body)
    if "Seed" in query.node.labels:
        seed_compat(query)
    return query


def seed_compat(query: GraphQuery) -> None:
    """Older seed keys were ``#seed#<dns>``; seeds are now ``#asset#<dns>#<dns>``."""
    for f in list(query.node.filters) + list(query.filters):
        if f.field == "key" and isinstance(f.value, str) and f.value.startswith("#seed#"):
            f.value = "#asset#" + f.value[len("#seed#"):]


def answer(query: GraphQuery, load: Loader, *, tree: bool, max_response_bytes: int) -> Any:
    """The ``POST /my`` answer: one page bucketed by label (with ``offset`` when more follow), or
    the tree of related entities; :class:`ResultTooLarge` over ``max_response_bytes``."""
    rows = evaluate(query, load)
    if tree:
        return tree_rows(query, rows, load)
    chunk, next_page = page_of(rows, query.page, query.limit)
    out: dict[str, Any] = bucketize(chunk, query.node.labels)
    if next_page is not None:
        out["offset"] = next_page
    if query.limit > 1 and len(json.dumps(out, separators=(",", ":"))) > max_response_bytes:
        raise ResultTooLarge(TOO_LARGE)
    return out


def tree_rows(query: GraphQuery, rows: list[dict[str, Any]], load: Loader) -> list[dict[str, Any]]:
    tree = []
    for row in rows[query.page * query.limit : (query.page + 1) * query.limit]:
        rels = []
        for rel in query.node.relationships:
            for label, other in relationship_targets(row, rel, load):
                edge = {"label": label, "created": other.get("created"), "visited": other.get("visited")}
                rels.append({"label": label, "result": {"relationships": [edge]},
                             "target": {"result": {bucket_of(other): [other]}}})
        tree.append({"node": {"result": {"count": 1, bucket_of(row, query.node.labels): [row]},
                              "relationships": rels}})
    return tree
