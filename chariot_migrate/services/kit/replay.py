"""Dual-write replays: the trusted replay identity, and adopting the primary side's generated
values (identifier adoption, DESIGN §6)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request

from chariot_migrate.model.replay import HEADER as PRIMARY_HEADER
from chariot_migrate.model.replay import author, primary_entity

from .auth import Caller
from .settings import DEFAULT_REPLAY_PRINCIPAL

REPLAY_HEADER = "x-migrate-replay"


# ---- replay (dual-write identifier adoption) ---------------------------------------------------


def is_replay(request: Request) -> bool:
    """A dual-write replay: ``X-Migrate-Replay: 1`` from the verified trusted replay identity."""
    who: Caller | None = getattr(request.state, "caller", None)
    settings = getattr(request.app.state, "settings", None)
    principal = getattr(settings, "replay_principal", DEFAULT_REPLAY_PRINCIPAL)
    return (
        who is not None
        and not who.internal
        and who.principal == principal
        and request.headers.get(REPLAY_HEADER) == "1"
    )


def replay_values(request: Request, body: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """When this request is a replay: the body's non-empty values to adopt (key, id, created,
    updated, _salt, _hash, ...). ``None`` for every other request, which mints its own values.

    ``body`` defaults to what :func:`json_body` parsed. Call after the caller was authenticated.
    """
    if not is_replay(request):
        return None
    source = body if body is not None else getattr(request.state, "json_body", None)
    own = {k: v for k, v in source.items() if v not in (None, "")} if isinstance(source, Mapping) else {}
    # The primary's answer holds the generated values (the client's body rarely does, and its
    # fields may mean something else, e.g. PUT /attribute's "key" is the source asset): it wins.
    return {**own, **primary_values(request)}


def primary_values(request: Request) -> dict[str, Any]:
    """During a replay: the entity the primary side answered with (``X-Migrate-Primary-Result``),
    so generated values (key, id, timestamps, history authors) match the primary's; ``{}`` when
    this is no replay, the header is absent/truncated/garbled, or the answer is not one object."""
    if not is_replay(request):
        return {}
    return primary_entity(request.headers.get(PRIMARY_HEADER))


def replay_author(primary: Mapping[str, Any]) -> str | None:
    """Who the primary recorded as the author of this change (its last history entry's ``by``)."""
    return author(primary)


def adopt(values: Mapping[str, Any] | None, field: str, default: Any) -> Any:
    """``values[field]`` during a replay (the primary's generated value), else ``default``."""
    if values and values.get(field) not in (None, ""):
        return values[field]
    return default
