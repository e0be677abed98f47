"""``GET /my``, the legacy search function's rules, once for legacy and the services.

A request is ``key=#prefix…`` (a key condition: prefix, ``exact``, or a ``to`` range) or
``key=field:value`` (a GSI query when the field has one, else a filtered partition scan), with
``desc``, ``label``, ``global`` (the shared partition) and ``offset`` (the DynamoDB
LastEvaluatedKey of the previous page, round-tripped by the client as a JSON object). The answer
buckets items by plural kind, plus ``offset`` when there is a next page.

Pure: :func:`search_page` runs the query against anything with the legacy ``query_page``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from chariot_migrate import bounded_json

from .keys import kind_of, plural
from .table import GLOBAL_USERNAME

OFFSET_MESSAGE = "offset must be the JSON object a previous page returned"
KEY_REQUIRED_MESSAGE = "query parameter 'key' is required (a key prefix like #job# or field:value)"
TERM_MESSAGE = "key must be a key prefix starting with '#' or field:value"


class SearchError(ValueError):
    """Bad search input; the message is the legacy API's 400 message."""


def parse_offset(raw: str | None, username: str) -> dict[str, Any] | None:
    """``offset=<json>`` → the ExclusiveStartKey of the next page (an error unless it is ours)."""
    if not raw:
        return None
    try:
        start = bounded_json.loads(raw)
    except ValueError:
        raise SearchError(OFFSET_MESSAGE) from None
    if not isinstance(start, dict) or start.get("username") != username or not isinstance(start.get("key"), str):
        raise SearchError(OFFSET_MESSAGE)
    return start


def field_match(actual: Any, value: str, exact: bool) -> bool:
    if actual is None:
        return False
    s = str(actual)
    return s == value if exact else s.startswith(value)


def bucketize(items: Sequence[Mapping[str, Any]], last: Mapping[str, Any] | None) -> dict[str, Any]:
    """``{"<plural kind>": [...], "offset": {...}}`` exactly like the legacy search function."""
    out: dict[str, Any] = {}
    for item in items:
        out.setdefault(plural(kind_of(str(item["key"])) or "other"), []).append(item)
    if last:
        out["offset"] = dict(last)
    return out


@dataclass(frozen=True, slots=True)
class MyQuery:
    """A parsed ``GET /my`` request (see :func:`parse_my_query`)."""

    username: str  # the partition read: the caller's account, or ``global``
    term: str  # ``#prefix…`` (a key condition) or ``field:value`` (a filtered partition scan)
    exact: bool = False
    desc: bool = False
    to: str | None = None  # upper bound of a key range
    label: str = ""  # kind a field:value search is limited to (lowercase)
    start: dict[str, Any] | None = None  # ExclusiveStartKey from ``offset``
    field_filter: tuple[str, str] | None = None

    @property
    def key_prefix(self) -> str:
        """The ``begins_with`` prefix of a field:value scan or of a ``#prefix…`` term."""
        if self.field_filter is not None:
            return f"#{self.label}#" if self.label else "#"
        return self.term


def parse_my_query(param: Callable[[str], str | None], account: str) -> MyQuery:
    """The request read through ``param(name)`` (the last value of a query parameter, or None);
    flags are true only for the (case-insensitive) string ``true``, like the legacy."""

    def flag(name: str) -> bool:
        return (param(name) or "").lower() == "true"

    term = param("key")
    if not term:
        raise SearchError(KEY_REQUIRED_MESSAGE)
    username = GLOBAL_USERNAME if flag("global") else account
    start = parse_offset(param("offset"), username)
    exact, desc = flag("exact"), flag("desc")
    label = (param("label") or "").lower()
    if term.startswith("#"):
        return MyQuery(username, term, exact, desc, param("to"), label, start)
    field, sep, value = term.partition(":")
    if not sep or not field:
        raise SearchError(TERM_MESSAGE)
    return MyQuery(username, term, exact, desc, None, label, start, (field, value))


def filter_my_items(items: list[dict[str, Any]], q: MyQuery) -> list[dict[str, Any]]:
    """What ``GET /my`` keeps of the rows its key condition read (without a GSI)."""
    if q.field_filter is not None:
        f, v = q.field_filter
        return [i for i in items if field_match(i.get(f), v, q.exact)]
    if q.label:
        return [i for i in items if kind_of(str(i["key"])) == q.label]
    return items


class Pages(Protocol):
    """One DynamoDB query page of a legacy-shaped table: the legacy store module and kit's table."""

    def query_page(self, username: str, *, prefix: str | None = None, exact: str | None = None,
                   between: tuple[str, str] | None = None, index_field: str | None = None,
                   index_value: str | None = None, index_exact: bool = False, start: dict[str, Any] | None = None,
                   limit: int | None = None, descending: bool = False,
                   key_prefix_filter: str | None = None) -> tuple[list[dict[str, Any]], Any]: ...


def search_page(pages: Pages, q: MyQuery, *, page_size: int,
                indexed: Collection[str]) -> tuple[list[dict[str, Any]], Any]:
    """One page of ``q``: (items, LastEvaluatedKey or None); ``indexed`` are the fields with a GSI."""
    common: dict[str, Any] = {"start": q.start, "limit": page_size, "descending": q.desc}
    if q.field_filter is None:
        if q.exact:
            items, last = pages.query_page(q.username, exact=q.term, **common)
        elif q.to:
            items, last = pages.query_page(q.username, between=(q.term, q.to), **common)
        else:
            items, last = pages.query_page(q.username, prefix=q.term, **common)
        return filter_my_items(items, q), last
    field, value = q.field_filter
    if field in indexed:
        kind_prefix = f"#{q.label}#" if q.label else None
        return pages.query_page(q.username, index_field=field, index_value=value, index_exact=q.exact,
                                key_prefix_filter=kind_prefix, **common)
    rows, last = pages.query_page(q.username, prefix=q.key_prefix, **common)
    return filter_my_items(rows, q), last


def search_my(pages: Pages, param: Callable[[str], str | None], account: str, *, page_size: int,
              indexed: Collection[str]) -> dict[str, Any]:
    """``GET /my`` answered like the legacy search function (raises :class:`SearchError`)."""
    q = parse_my_query(param, account)
    return bucketize(*search_page(pages, q, page_size=page_size, indexed=indexed))
