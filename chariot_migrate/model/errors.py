"""The one API error of the Chariot code: the client sees ``status`` + ``{"message": message}``.

Raised by the legacy functions, the graph services' pure operations and every service route
alike; the kit's app factories and the legacy ``api`` wrapper each map it to that answer, so a
validation error is a 4xx with its reason wherever it is raised (never a 500).
"""

from __future__ import annotations

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


def describe(err: ValidationError) -> str:
    """One sentence naming each bad field: ``status: invalid asset status 'X'``."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "body"
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


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
