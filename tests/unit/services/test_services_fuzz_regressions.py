"""Regressions from the schemathesis run (tests/integration/services/test_services_schemathesis.py):
JSON the stores cannot hold is a 400 with the field, never a 500, and the OpenAPI documents the
bodies and query parameters routes read by hand."""

from __future__ import annotations

import json
import math

import pytest
import svc_c_testkit as kit
from hypothesis import given
from hypothesis import strategies as st
from svc_c_testkit import Stack, call_service

from chariot_migrate.services.integration_hub.app import IntegrationHubSettings
from chariot_migrate.services.integration_hub.app import create_app as create_hub
from chariot_migrate.services.kit.repository import deserialize_item, serialize_item
from chariot_migrate.services.kit.request import unstorable
from chariot_migrate.services.notification.app import NotificationSettings
from chariot_migrate.services.notification.app import create_app as create_notification

stack, _moto_stack = kit.stack, kit._moto_stack


# ---- the pure check --------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "reason"), [
    ({"value": "\udb5d"}, "body.value: text must be valid Unicode"),
    ({"config": {"a\udb5d": 1}}, "body.config: field names must be valid Unicode"),
    ({"config": {"": {"a": {}}}}, "body.config: field names inside objects must not be empty"),
    ({"config": {"x": [1, 1e200]}}, "body.config.x[1]: number 1e+200 is out of range"),
    ({"config": {"x": 3.7e-304}}, "body.config.x: number 3.7e-304 is out of range"),
    ({"n": 123456789012345678901234567890123456789012}, "body.n: number"),
])
def test_unstorable_names_the_field_and_the_problem(body: dict, reason: str) -> None:
    assert (unstorable(body) or "").startswith(reason)


def test_storable_bodies_pass() -> None:
    assert unstorable({"": None, "a": "\U0001f600", "n": [0, -1.5, 10**40, 1e125, 1e-130], "m": {"k": {}}}) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(min_size=1, max_size=5), json_values, max_size=5))
def test_what_unstorable_accepts_round_trips_the_item_codec(body: dict) -> None:
    # The invariant behind the check: an accepted body survives serialisation for DynamoDB.
    if unstorable(body) is None:
        item = {"username": "u", "key": "k", "body": body}
        assert _same(deserialize_item(serialize_item(item))["body"], json.loads(json.dumps(body)))


def _same(a: object, b: object) -> bool:
    """Equal, floats within their decimal rendering (the codec stores str(float))."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-15)
    return a == b


# ---- through the services (which 500'd before) -------------------------------------------------


@pytest.fixture
def notification(stack: Stack):
    with kit.service(create_notification, settings=NotificationSettings.from_env("notification")) as client:
        yield client


@pytest.fixture
def hub(stack: Stack):
    with kit.service(create_hub, settings=IntegrationHubSettings.from_env("integration-hub")) as client:
        yield client


def test_notification_rejects_a_lone_surrogate_with_the_field(notification, stack: Stack) -> None:
    status, body = call_service(notification, stack, "POST", "/account/hook", raw=b'{"value": "p\\udb5d"}',
                                headers={"content-type": "application/json"})
    assert status == 400 and body["message"].startswith("body.value: text must be valid Unicode"), body


def test_hub_rejects_a_nested_empty_field_name_before_storing_it(hub, stack: Stack) -> None:
    # Stored, such a row could not be read back: unlinking it answered 500.
    status, body = call_service(hub, stack, "POST", "/account/jira", {"config": {"": {"a": {}}}})
    assert status == 400 and body == {"message": "body.config: field names inside objects must not be empty"}
    status, body = call_service(hub, stack, "POST", "/account/jira", {"config": {"a": {"b": {}}}})
    assert status == 200 and body["config"] == {"a": {"b": {}}}


def test_services_openapi_documents_hand_read_bodies_and_queries() -> None:
    from chariot_migrate.services.asset_discovery.app import create_app as create_assets
    from chariot_migrate.services.configuration.app import create_app as create_configuration

    assets = create_assets().openapi()
    put_asset = assets["paths"]["/asset"]["put"]["requestBody"]["content"]["application/json"]["schema"]
    assert {s["title"] for s in put_asset["anyOf"]} == {"AssetAdd", "AssetUpdate"}
    graph = assets["paths"]["/my"]["post"]
    assert {p["name"] for p in graph["parameters"]} == {"tree", "global"}
    assert {"Node", "Filter", "Relationship"} <= set(assets["components"]["schemas"])  # GraphQuery's $refs resolve
    my = create_configuration().openapi()["paths"]["/my"]["get"]["parameters"]
    assert [p["name"] for p in my if p["required"]] == ["key"]
