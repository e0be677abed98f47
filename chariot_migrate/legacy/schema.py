"""``GET /schema``: JSON schemas of the entity request bodies, keyed by entity type."""

from __future__ import annotations

from typing import Any

from chariot_migrate.model import requests as rq

from .auth import Caller, secured
from .http import Request, dispatch

SCHEMAS = {"asset": rq.AssetAdd, "risk": rq.RiskAdd, "attribute": rq.AttributeAdd, "seed": rq.SeedAdd,
           "preseed": rq.PreseedAdd, "job": rq.JobAdd, "account": rq.AccountLink, "key": rq.ApiKeyAdd,
           "setting": rq.NamedValue, "configuration": rq.NamedValue}


def get(req: Request, caller: Caller) -> Any:
    return {name: model.model_json_schema(by_alias=True) for name, model in SCHEMAS.items()}


@secured
def handler(req: Request, caller: Caller) -> Any:
    return dispatch(req, {("GET", "/schema"): get}, caller)
