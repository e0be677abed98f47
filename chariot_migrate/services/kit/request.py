"""Request helpers with the legacy API's behaviour: the JSON body with its 400 messages, query
parameters and flags. Errors and model validation are :mod:`chariot_migrate.model`'s (one
``ApiError`` for every service, re-exported here for the routes)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import Request

from chariot_migrate import bounded_json
from chariot_migrate.model.errors import ApiError, bad_request, not_found
from chariot_migrate.model.requests import parse_model

__all__ = ["ApiError", "bad_request", "not_found", "parse_model", "json_body", "unstorable", "param",
           "param_flag", "prefix_overlaps", "narrowest_prefix"]


async def json_body(request: Request, default: dict[str, Any] | None = None) -> dict[str, Any]:
    """The request body as a JSON object, with the legacy's exact 400 messages.

    ``default`` is used for an empty body (else an empty body is a 400). The parsed body is kept
    on ``request.state.json_body`` so :func:`replay_values` can read it.
    """
    raw = await request.body()
    if not raw.strip():
        if default is not None:
            request.state.json_body = default
            return default
        raise bad_request("request body must be a JSON object")
    try:
        body = bounded_json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise bad_request(f"request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    problem = unstorable(body)
    if problem:
        raise bad_request(problem)
    request.state.json_body = body
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# DynamoDB numbers: 38 significant digits, magnitude 1e-130 .. 9.99…e125.
_MAX_NUMBER, _MIN_NUMBER = Decimal("9.9999999999999999999999999999999999999E+125"), Decimal("1E-130")


def unstorable(value: Any, where: str = "body") -> str | None:
    """Why a parsed JSON value cannot be stored as is, or ``None`` (pure).

    JSON allows what the stores reject: lone UTF-16 surrogates (``"\\ud800"`` is not UTF-8),
    numbers DynamoDB cannot hold, and empty field names in nested objects (stored maps lose them).
    Caught here they are a 400 with the field, not a 500 later.
    """
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, str):
            if not _utf8(v):
                return f"{path}: text must be valid Unicode (it contains a lone surrogate escape like \\ud800)"
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, int | float):
            d = Decimal(str(v)) if isinstance(v, float) else Decimal(v)
            digits = "".join(map(str, d.as_tuple().digits)).strip("0")  # significant digits, exactly
            if d and (abs(d) > _MAX_NUMBER or abs(d) < _MIN_NUMBER or len(digits) > 38):
                return f"{path}: number {v!r} is out of range (at most 38 digits, magnitude 1e-130 to 1e125)"
        elif isinstance(v, dict):
            for k, item in v.items():
                if not _utf8(k):
                    return f"{path}: field names must be valid Unicode (one contains a lone surrogate escape)"
                if not k and path != where:  # nested maps with an empty key do not round-trip the store
                    return f"{path}: field names inside objects must not be empty"
                stack.append((f"{path}.{k}" if len(path) < 200 else path, item))
        elif isinstance(v, list):
            stack.extend((f"{path}[{i}]" if len(path) < 200 else path, item) for i, item in enumerate(v))
    return None


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True



def param_flag(request: Request, name: str) -> bool:
    """Legacy boolean query flags: only the (case-insensitive) string ``true`` is true."""
    values = request.query_params.getlist(name)
    return bool(values) and values[-1].lower() == "true"


def prefix_overlaps(prefix: str, kind_prefix: str) -> bool:
    """Can a key under ``kind_prefix`` (``#risk#``) start with ``prefix`` (``#``, ``#r``, ``#risk#x``)?"""
    return kind_prefix.startswith(prefix) or prefix.startswith(kind_prefix)


def narrowest_prefix(prefix: str, kind_prefix: str) -> str:
    """The key prefix to query for the rows of one kind under ``prefix`` (the two overlap)."""
    return prefix if prefix.startswith(kind_prefix) else kind_prefix


def param(request: Request, name: str, default: str | None = None) -> str | None:
    """The last value of a query parameter (API Gateway keeps the last one), like the legacy."""
    values = request.query_params.getlist(name)
    return values[-1] if values else default
