"""Helpers for the asset-discovery / risk-assessment process tests: a moto server holding the
legacy signing key, and the services as real `chariot-migrate service run` processes."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import redis
from conftest import eventually  # noqa: F401  (the process tests call kit.eventually)
from moto.server import ThreadedMotoServer

from chariot_migrate.legacy import resources
from chariot_migrate.model import tokens
from chariot_migrate.model.tokens import SigningKey

ROOT = Path(__file__).resolve().parents[3]
REDIS_URL = "redis://127.0.0.1:6379/0"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null"}


@contextmanager
def moto_with_signing_key() -> Iterator[dict[str, Any]]:
    for k, v in AWS_ENV.items():
        os.environ.setdefault(k, v)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    secret_id = f"chariot/graph-it-{uuid.uuid4().hex[:8]}"
    try:
        resources.provision(endpoint, table="chariot-graph-it", bucket="chariot-graph-it", secret_id=secret_id)
        sm = boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1")
        data = json.loads(sm.get_secret_value(SecretId=secret_id)["SecretString"])
        yield {"endpoint": endpoint, "secret_id": secret_id, "key": SigningKey(data["private_pem"], data["kid"])}
    finally:
        server.stop()


def env_for(estate: dict[str, Any], prefix: str, **extra: str) -> dict[str, str]:
    return {**AWS_ENV, "PYTHONPATH": str(ROOT), "AWS_ENDPOINT_URL": estate["endpoint"],
            "CHARIOT_SIGNING_SECRET_ID": estate["secret_id"], "TABLE_PREFIX": prefix, "REDIS_URL": REDIS_URL,
            "EVENT_BUS": "redis", **extra}


def headers(key: SigningKey, principal: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {tokens.issue(principal, key)}", **extra}


def clean_redis(prefix: str) -> None:
    r = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(r.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            r.delete(*keys)
    finally:
        r.close()
