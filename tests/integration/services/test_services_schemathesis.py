"""schemathesis against each of the eight services' OpenAPI: no 5xx, and every 4xx says why.

Each service runs in-process (ASGI, its lifespan started by schemathesis) over a moto *server*
holding the legacy table, bucket and signing key. Every operation gets a bounded, derandomized
set of schema-conforming and schema-violating requests with a valid bearer token (an internal
service token for ``/internal/api/*``), then a few without any token.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from chariot_services_procs import clean_redis, moto_estate, service_env
from fastapi import FastAPI
from schemathesis import APIOperation, GenerationMode
from schemathesis.python import asgi as st_asgi
from schemathesis_driver import fuzz
from svc_c_procs import listeners, start_all
from svc_c_procs import urls as urls_of

from chariot_migrate.model import tokens

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 12  # per operation and generation mode
UNAUTHENTICATED_EXAMPLES = 3
PUBLIC_PATHS = ("/health", "/ready", "/metrics", "/token", "/.well-known/jwks.json", "/hook/")


def _account(estate: dict[str, Any], prefix: str) -> FastAPI:
    from chariot_migrate.services.account.app import create_app
    from chariot_migrate.services.kit.settings import ChariotSettings

    return create_app(ChariotSettings(service_name="account", **_common(estate, prefix)))


def _asset_discovery(estate: dict[str, Any], prefix: str) -> FastAPI:
    from chariot_migrate.services.asset_discovery.app import AssetDiscoverySettings, create_app

    return create_app(AssetDiscoverySettings(service_name="asset-discovery", files_bucket=f"{prefix}files",
                                             **_common(estate, prefix)))


def _risk_assessment(estate: dict[str, Any], prefix: str) -> FastAPI:
    from chariot_migrate.services.risk_assessment.app import RiskAssessmentSettings, create_app

    return create_app(RiskAssessmentSettings(service_name="risk-assessment", files_bucket=f"{prefix}files",
                                             **_common(estate, prefix)))


def _capabilities(estate: dict[str, Any], prefix: str) -> FastAPI:
    from chariot_migrate.services.capabilities.app import CapabilitiesSettings, create_app

    peers = estate["peers"]()
    return create_app(CapabilitiesSettings(service_name="capabilities", schedule_interval_s=0,
                                           resume_queued_jobs=False, asset_url=peers["asset-discovery"],
                                           risk_url=peers["risk-assessment"], **_common(estate, prefix)))


def _integration_hub(estate: dict[str, Any], prefix: str) -> FastAPI:
    from chariot_migrate.services.integration_hub.app import IntegrationHubSettings, create_app

    peers = estate["peers"]()
    return create_app(IntegrationHubSettings(service_name="integration-hub", notification_url=peers["notification"],
                                             asset_url=peers["asset-discovery"], risk_url=peers["risk-assessment"],
                                             **_common(estate, prefix)))


def _notification(estate: dict[str, Any], prefix: str) -> FastAPI:
    from chariot_migrate.services.notification.app import NotificationSettings, create_app

    # no allowed hosts: alert delivery is refused locally, nothing leaves the machine
    return create_app(NotificationSettings(service_name="notification", **_common(estate, prefix)))


def _reporting(estate: dict[str, Any], prefix: str) -> FastAPI:
    from chariot_migrate.services.reporting.app import ReportingSettings, create_app

    return create_app(ReportingSettings(service_name="reporting", files_bucket=estate["bucket"],
                                        **_common(estate, prefix)))


def _configuration(estate: dict[str, Any], prefix: str) -> FastAPI:
    from chariot_migrate.services.configuration.app import create_app
    from chariot_migrate.services.kit.settings import ChariotSettings

    return create_app(ChariotSettings(service_name="configuration", **_common(estate, prefix)))


def _common(estate: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {"aws_endpoint_url": estate["endpoint"], "signing_secret_id": estate["secret_id"], "table_prefix": prefix}


SERVICES: dict[str, Callable[[dict[str, Any], str], FastAPI]] = {
    "account": _account,
    "asset-discovery": _asset_discovery,
    "risk-assessment": _risk_assessment,
    "capabilities": _capabilities,
    "integration-hub": _integration_hub,
    "notification": _notification,
    "reporting": _reporting,
    "configuration": _configuration,
}


PEER_SERVICES = ("asset-discovery", "risk-assessment", "notification")


@pytest.fixture(scope="module")
def estate() -> Iterator[dict[str, Any]]:
    """The moto server, plus (started on first use) the peers capabilities and integration-hub
    call, as real `chariot-migrate service run` processes: ``estate["peers"]()`` → name → URL."""
    with moto_estate() as e:
        prefix = f"fzp{uuid.uuid4().hex[:8]}-"
        started: dict[str, Any] = {}

        def peers() -> dict[str, str]:
            if not started:
                ports = listeners(PEER_SERVICES)
                urls = urls_of(ports)
                env = service_env(e, prefix, EVENT_BUS="inprocess")
                specs = {"asset-discovery": {"RISK_ASSESSMENT_URL": urls["risk-assessment"]},
                         "risk-assessment": {"ASSET_DISCOVERY_URL": urls["asset-discovery"]},
                         "notification": {}}
                started.update(start_all(specs, env, ports))
            return {name: proc.url for name, proc in started.items()}

        try:
            yield {**e, "bucket": "chariot-it", "peers": peers, "peer_prefix": prefix}
        finally:
            for proc in started.values():
                proc.stop()
            clean_redis(prefix)


@pytest.fixture
def running(estate: dict[str, Any], request: pytest.FixtureRequest) -> Iterator[tuple[FastAPI, Any]]:
    """The service app (lifespan started by schemathesis) and its schema; stopped afterwards."""
    name = request.param
    app = SERVICES[name](estate, f"fz{uuid.uuid4().hex[:8]}-")
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        yield app, schema
    finally:
        st_asgi.shutdown_lifespans()


def _variants(app: FastAPI, estate: dict[str, Any], user: str,
              bearer: dict[str, str]) -> Callable[[APIOperation], list[dict[str, Any]]]:
    """Runs per operation: fuzzed as drawn, and for the inbound webhook also with the path of a
    real hook (registered on the notification peer) so the body is fuzzed past the pin check."""
    if app.title != "chariot integration-hub":
        return lambda op: [{}]
    pin = f"pin{uuid.uuid4().hex[:8]}"
    resp = httpx.post(f"{estate['peers']()['notification']}/account/hook", json={"value": pin}, headers=bearer,
                      timeout=10)
    assert resp.status_code == 200, resp.text
    hook = {"path_parameters": {"principal": base64.b64encode(user.encode()).decode().rstrip("="), "pin": pin}}
    return lambda op: [{}, hook] if op.path.startswith("/hook/") else [{}]


@pytest.mark.parametrize("running", list(SERVICES), indirect=True)
def test_service_openapi_fuzz_finds_no_5xx(running: tuple[FastAPI, Any], estate: dict[str, Any]) -> None:
    app, schema = running
    user = f"fuzz-{uuid.uuid4().hex[:8]}@example.com"
    bearer = {"Authorization": f"Bearer {tokens.issue(user, estate['key'])}"}

    def headers_for(op: APIOperation) -> dict[str, str]:
        if op.path.startswith("/internal/"):
            return {"Authorization": f"Bearer {app.state.service_token()}"}
        return bearer

    variants = _variants(app, estate, user, bearer)
    report = fuzz(schema, headers_for=headers_for, max_examples=MAX_EXAMPLES, variants_for=variants)
    print(f"{app.title}: {report.summary()}")
    assert report.operations, "the schema lists no operations"
    assert not report.server_errors and not report.silent_rejections, report.failures()
    # the fuzzer got past authentication: most answers are not 401s
    assert report.statuses[401] < report.examples / 2, report.summary()

    anonymous = fuzz(schema, headers_for=lambda op: {}, max_examples=UNAUTHENTICATED_EXAMPLES,
                     modes=[GenerationMode.POSITIVE], skip=lambda op: op.path.startswith(PUBLIC_PATHS))
    print(f"{app.title} without a token: {anonymous.summary()}")
    assert not anonymous.server_errors and not anonymous.silent_rejections, anonymous.failures()
    assert set(anonymous.statuses) <= {401, 403}, anonymous.summary()
