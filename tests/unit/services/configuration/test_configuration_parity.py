"""Parity: the configuration service answers its routes exactly like the legacy functions."""

from __future__ import annotations

import json

import legacy_testkit
import pytest
from chariot_parity_kit import Pair, make_client, service_settings  # noqa: F401
from fastapi.testclient import TestClient

from chariot_migrate.legacy import account, schema, search, setting
from chariot_migrate.services.configuration.app import create_app

stack, _moto_stack = legacy_testkit.stack, legacy_testkit._moto_stack  # fixtures
HANDLERS = {"/setting": setting.handler, "/configuration": setting.handler, "/my": search.handler,
            "/schema": schema.handler, "/account/{member}": account.handler}


@pytest.fixture(scope="module")
def client(make_client) -> TestClient:  # noqa: F811
    return make_client(create_app(service_settings("configuration")))


@pytest.fixture
def pair(stack, client) -> Pair:
    return Pair(stack, client, HANDLERS)


def test_setting_lifecycle_matches(pair: Pair):
    for value in ("false", 3, 2.5, True, {"nested": [1, "a", None]}, ["x"]):
        row = pair.same("PUT", "/setting", {"name": "frozen", "value": value})
        assert row.body["key"] == "#setting#frozen" and row.body["value"] == value
    pair.same("PUT", "/setting", {"name": "display-name", "value": "Acme"})
    listing = pair.same("GET", "/my", query={"key": "#setting#"})
    assert [r["name"] for r in listing.body["settings"]] == ["display-name", "frozen"]
    pair.same("GET", "/my", query={"key": "#setting#frozen", "exact": "true"})
    assert pair.same("DELETE", "/setting", {"name": "frozen"}).status == 200
    assert pair.same("DELETE", "/setting", {"name": "frozen"}).status == 404
    pair.same("GET", "/my", query={"key": "#setting#"})


def test_configuration_lifecycle_matches(pair: Pair):
    row = pair.same("PUT", "/configuration", {"name": "scan", "value": {"ports": [80, 443], "rate": 1.5}})
    assert row.body["key"] == "#configuration#scan"
    assert pair.same("PUT", "/configuration", {"name": "scan", "value": "text"}).status == 400
    pair.same("GET", "/my", query={"key": "#configuration#"})
    assert pair.same("DELETE", "/configuration", {"name": "scan"}).status == 200
    assert pair.same("DELETE", "/configuration", {"name": "scan"}).status == 404


@pytest.mark.parametrize("path", ["/setting", "/configuration"])
@pytest.mark.parametrize("body", [None, "nope", "[]", {}, {"name": ""}, {"name": "a"},
                                  {"name": "a#b", "value": {}}, {"name": 5, "value": "x"}])
def test_put_validation_errors_match(pair: Pair, path, body):
    reply = pair.same("PUT", path, body)
    assert reply.status == 400 and reply.body["message"]


@pytest.mark.parametrize("body", [None, {}, {"name": ""}, "{"])
def test_delete_validation_errors_match(pair: Pair, body):
    assert pair.same("DELETE", "/setting", body).status == 400


def test_schema_matches(pair: Pair):
    reply = pair.same("GET", "/schema")
    assert reply.status == 200 and set(reply.body) >= {"asset", "risk", "setting", "configuration", "key"}


def test_readonly_collaborator_can_read_not_write(pair: Pair):
    reader = pair.stack.other("reader")
    assert pair.legacy("POST", f"/account/{reader}", {"role": "readonly"}, template="/account/{member}").status == 200
    # the service asks the membership lookup; give it the same answer the account service would
    pair.client.app.state.auth.membership = lambda account, principal: (
        "readonly" if (account, principal) == (pair.user, reader) else None)
    pair.same("PUT", "/setting", {"name": "a", "value": "1"})
    assert pair.same("GET", "/my", query={"key": "#setting#"}, principal=reader, account=pair.user).status == 200
    no = pair.same("PUT", "/setting", {"name": "a", "value": "2"}, principal=reader, account=pair.user)
    assert (no.status, no.body) == (403, {"message": "Forbidden: the readonly role cannot write"})
    stranger = pair.stack.other("stranger")
    assert pair.same("GET", "/my", query={"key": "#setting#"}, principal=stranger, account=pair.user).status == 403


def test_paging_matches(pair: Pair, monkeypatch, client):
    monkeypatch.setenv("CHARIOT_PAGE_SIZE", "2")
    monkeypatch.setattr(client.app.state.settings, "page_size", 2)
    for i in range(5):
        pair.same("PUT", "/setting", {"name": f"s{i}", "value": str(i)})
    names, offset = [], None
    while True:
        page = pair.same("GET", "/my", query={"key": "#setting#"} | ({"offset": offset} if offset else {}))
        names += [r["name"] for r in page.body.get("settings", [])]
        if "offset" not in page.body:
            break
        offset = json.dumps(page.body["offset"])
    assert names == [f"s{i}" for i in range(5)]
    pair.same("GET", "/my", query={"key": "#setting#", "desc": "true"})
