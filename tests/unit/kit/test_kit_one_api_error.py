"""One ``ApiError`` (``chariot_migrate.model.errors``): a validation error is a 400 with its reason
whichever path raises it — a kit route, ``request.parse_model``, a graph operation run through
``run_blocking`` (where the old kit error type became a 500), or a legacy Lambda function."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel

from chariot_migrate.legacy.http import api
from chariot_migrate.model import errors
from chariot_migrate.model.requests import parse_model as model_parse
from chariot_migrate.services.kit import request as kit_request
from chariot_migrate.services.kit.app import create_service_app
from chariot_migrate.services.kit.graph import contract
from chariot_migrate.services.kit.graph.routes import run_blocking
from chariot_migrate.services.kit.settings import ServiceSettings


class Body(BaseModel):
    name: str


def test_there_is_one_error_type_and_one_parse_model():
    assert kit_request.ApiError is errors.ApiError
    assert kit_request.bad_request is errors.bad_request
    assert kit_request.parse_model is model_parse and contract.validate is model_parse


def _app() -> TestClient:
    router = APIRouter()

    @router.post("/raised")
    async def raised():
        raise kit_request.bad_request("name: Field required")

    @router.post("/parsed")
    async def parsed(request: Request):
        return kit_request.parse_model(Body, await kit_request.json_body(request)).model_dump()

    @router.post("/graph-op")
    async def graph_op(request: Request):
        body = await kit_request.json_body(request)
        return await run_blocking(request, lambda: kit_request.parse_model(Body, body).model_dump(), inline=True)

    @router.post("/conflict")
    async def conflict():
        raise kit_request.ApiError(409, "already running")

    app = create_service_app("unit", settings=ServiceSettings(), routers=[router], configure_logging=False)
    return TestClient(app)


def test_a_validation_error_is_a_400_with_its_reason_on_every_service_path():
    client = _app()
    for path in ("/raised", "/parsed", "/graph-op"):
        r = client.post(path, json={"other": 1})
        assert r.status_code == 400, (path, r.text)
        assert "name" in r.json()["message"], (path, r.text)
    assert client.post("/parsed", json={"name": "x"}).json() == {"name": "x"}
    r = client.post("/conflict")
    assert r.status_code == 409 and r.json() == {"message": "already running"}


def test_a_legacy_function_answers_the_same_400():
    @api
    def handler(req):
        return req.model(Body).model_dump()

    out = handler({"httpMethod": "POST", "path": "/x", "headers": {}, "body": '{"other": 1}'}, None)
    assert out["statusCode"] == 400 and "name" in out["body"]
