"""AWS (moto) unreachable: a legacy function answers a clear 503 quickly — no hang, no 502."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration

SCRIPT = """
import json, sys
from chariot_migrate.legacy import setting
event = {"httpMethod": "PUT", "path": "/setting", "resource": "/setting",
         "headers": {"authorization": "Bearer x.y.z"}, "multiValueHeaders": None,
         "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None,
         "body": json.dumps({"name": "a", "value": "b"}), "isBase64Encoded": False, "requestContext": {}}
print(json.dumps(setting.handler(event, None)))
"""


def test_unreachable_store_is_a_503_within_seconds():
    env = {**os.environ, "AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ACCESS_KEY_ID": "x",
           "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "2"}
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60)
    elapsed = time.monotonic() - t0
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["statusCode"] == 503, result
    assert "unreachable" in json.loads(result["body"])["message"]
    assert elapsed < 30
