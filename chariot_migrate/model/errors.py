"""The one API error of the Chariot code: the client sees ``status`` + ``{"message": message}``.

Raised by the legacy functions, the graph services' pure operations and every service route
alike; the kit's app factories and the legacy ``api`` wrapper each map it to that answer, so a
validation error is a 4xx with its reason wherever it is raised (never a 500).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError


class ApiError(Exception):
    """An error the client sees as ``status`` + ``{"message": message}`` (legacy format)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


REQUEST_PARTS = frozenset({"body", "query", "path", "header", "cookie"})  # FastAPI's location prefixes


def describe_errors(errors: Iterable[Mapping[str, Any]]) -> str:
    """Validation errors (pydantic's, or FastAPI's with a location prefix) → the legacy API's one
    sentence naming each bad field: ``status: invalid asset status 'X'; limit: too big``."""
    parts = []
    for e in errors:
        if e.get("type") == "json_invalid":
            parts.append("body: invalid JSON")
            continue
        loc = [str(x) for x in e.get("loc", ())]
        if len(loc) > 1 and loc[0] in REQUEST_PARTS:
            loc = loc[1:]
        msg = str(e.get("msg", "invalid value")).removeprefix("Value error, ")
        parts.append(f"{'.'.join(loc) or 'body'}: {msg}")
    return "; ".join(parts) or "invalid request"


def describe(err: ValidationError) -> str:
    """:func:`describe_errors` of one pydantic ``ValidationError``."""
    return describe_errors(err.errors())


def error_of(exc: Exception) -> ApiError | None:
    """The answer the legacy API gives for ``exc`` (None: a real 500). Pure.

    Key-format and status rules raise ``ValueError`` with the reason, pydantic a
    ``ValidationError``: both are the client's fault, a 400 naming what is wrong.
    """
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ValidationError):
        return ApiError(400, describe(exc))
    if isinstance(exc, ValueError):
        return ApiError(400, str(exc))
    return None
