"""`chariot-migrate up` starts asset-discovery's gRPC API (issue 19 part 4): its address on its
own line, on a port `up` holds, so a killed service comes back on the same port."""

from __future__ import annotations

import os
import signal

import grpc
import pytest
from conftest import Proc, cli
from faults_kit import UpStack, wait_for
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chariot_migrate.model.tokens import generate_signing_key

pytestmark = pytest.mark.integration

ROUTES = """\
version: 1
bucket_by: [header:account]
legacy: {{invoker: http, url: "{legacy}"}}
services:
  asset-discovery: {{phase: 2, url: "http://127.0.0.1:9", grpc: "127.0.0.1:9",
                    app: "chariot_migrate.services.asset_discovery.app:create_app"}}
routes:
  - {{path: /asset, methods: [PUT], service: asset-discovery}}
"""


def serving(address: str) -> bool:
    try:
        with grpc.insecure_channel(address) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
    except grpc.RpcError:
        return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def test_up_prints_the_grpc_address_and_keeps_its_port_across_a_restart(tmp_path):
    legacy = Proc(cli("example-upstream", "legacy", "--port", "0"))
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(legacy=legacy.url))
    # No legacy estate here to hold the signing key: the service verifies with a public key.
    env = {"JWT_PUBLIC_KEY": generate_signing_key().public_pem}
    stack = None
    try:
        stack = UpStack(tmp_path, routes, env=env)
        port = stack.info["grpc"]["asset-discovery"]
        address = f"127.0.0.1:{port}"
        assert f"grpc asset-discovery {address}" in stack.lines
        assert serving(address)
        victim = stack.child_pid("service run asset-discovery")
        os.kill(victim, signal.SIGKILL)

        def restarted() -> bool:
            try:
                return stack.child_pid("service run asset-discovery") != victim
            except LookupError:  # between the kill and the restart
                return False

        wait_for(restarted, timeout=30, what="a new asset-discovery process")
        wait_for(lambda: serving(address), timeout=60, what="gRPC serving again on the same port")
    finally:
        if stack is not None:
            stack.stop()
        legacy.stop()
