"""``GET /schema``: JSON schemas of the entity request bodies, keyed by entity type."""

from __future__ import annotations

from typing import Any

from chariot_migrate.model import requests as rq

from .auth import Caller, secured
from .http import Request, dispatch


def get(req: Request, caller: Caller) -> Any:
    return rq.entity_schemas()


@secured
def handler(req: Request, caller: Caller) -> Any:
    return dispatch(req, {("GET", "/schema"): get}, caller)
