"""OpenAPI documentation of hand-read bodies and query parameters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

# ---- OpenAPI documentation of hand-read bodies and query parameters ---------------------------
#
# Routes read their JSON body with json_body + parse_model (to keep the legacy's exact 400s), so
# FastAPI cannot see what they accept. ``openapi_doc`` describes it in the schema (clients, and
# the schemathesis run in tests/integration/services, then know the real contract).

# Nested models' schemas (pydantic ``$defs``), served under components/schemas by every service.
OPENAPI_COMPONENTS: dict[str, dict[str, Any]] = {}
_REF_TEMPLATE = "#/components/schemas/{model}"


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema (by alias) with nested definitions moved to components."""
    schema = model.model_json_schema(by_alias=True, ref_template=_REF_TEMPLATE)
    OPENAPI_COMPONENTS.update(schema.pop("$defs", {}))
    return schema


def query_param(name: str, description: str, *, required: bool = False,
                schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema or {"type": "string"}}


FLAG = {"type": "boolean"}  # legacy flags: only the string "true" is true
GLOBAL_PARAM = query_param("global", "read the shared 'global' partition instead of the account's", schema=FLAG)
MY_QUERY = (
    query_param("key", "a key prefix like #job# (or field:value)", required=True),
    query_param("exact", "match the key exactly", schema=FLAG),
    query_param("to", "upper bound of a key range"),
    query_param("desc", "newest/last keys first", schema=FLAG),
    query_param("label", "entity kind a field:value search is limited to"),
    GLOBAL_PARAM,
    query_param("offset", "the JSON 'offset' object a previous page returned"),
)


def openapi_doc(body: type[BaseModel] | Sequence[type[BaseModel]] | dict[str, Any] | None = None, *,
                body_required: bool = True, query: Sequence[dict[str, Any]] = (),
                media_type: str = "application/json") -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its body / query parameters by hand.

    ``body`` is a model, several models (any of them is accepted) or a raw JSON schema.
    """
    extra: dict[str, Any] = {}
    if query:
        extra["parameters"] = list(query)
    if body is not None:
        if isinstance(body, dict):
            schema = body
        elif isinstance(body, type):
            schema = model_schema(body)
        else:
            schema = {"anyOf": [model_schema(m) for m in body]}
        extra["requestBody"] = {"required": body_required, "content": {media_type: {"schema": schema}}}
    return extra


def serve_components(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # cached by FastAPI
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in OPENAPI_COMPONENTS.items():
            components.setdefault(name, definition)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema
