"""`up --dynamodb dynalite` (issue 21): DynamoDB alone on dynalite, every other AWS API on moto.

The real stack (legacy Lambdas on moto, the proxy) with CHARIOT_MIGRATE_DYNAMODB=dynalite (the
option's env var): the legacy table is provisioned on dynalite and not on moto, the legacy
functions read it there (an API key written by `up`'s demo account gets a token, GET /my and
/my/count answer), and `data backfill` / `data verify` run next to the stack find dynalite through
its stack.json although their environment names only moto.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import httpx
import pytest
from guard_harness import Stack, StackMode, start_stack
from real_stack_kit import cm

from chariot_migrate import dynalite
from chariot_migrate.services.asset_discovery.migration import AssetDiscoveryMigration
from chariot_migrate.services.asset_discovery.store import table_specs
from chariot_migrate.services.kit.repository import ensure_tables

pytestmark = [pytest.mark.e2e, pytest.mark.integration,
              pytest.mark.skipif(dynalite.module_path() is None, reason=dynalite.missing_reason())]

REGION = "us-east-1"


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    s = start_stack(tmp_path_factory.mktemp("up-dynalite"),
                    StackMode("up-dynalite", env=(("CHARIOT_MIGRATE_DYNAMODB", "dynalite"),)))
    try:
        yield s
    finally:
        s.stop()


def client(endpoint: str):
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="local",
                        aws_secret_access_key="local")


def test_dynamodb_alone_goes_to_dynalite(stack):
    ddb_url = stack.info["dynamodb"]
    assert ddb_url != stack.moto
    assert "chariot" in client(ddb_url).list_tables()["TableNames"]
    assert "chariot" not in client(stack.moto).list_tables()["TableNames"]
    # The rest stays on moto: the legacy estate's bucket is there.
    s3 = boto3.client("s3", endpoint_url=stack.moto, region_name=REGION, aws_access_key_id="local",
                      aws_secret_access_key="local")
    assert s3.list_buckets()["Buckets"]


def test_legacy_functions_read_dynalite(stack):
    token = httpx.get(f"{stack.api}/token", timeout=60, headers={
        "X-GUARD-API-KEY-ID": stack.env["PRAETORIAN_CLI_API_KEY_ID"],
        "X-GUARD-API-KEY-SECRET": stack.env["PRAETORIAN_CLI_API_KEY_SECRET"]})
    assert token.status_code == 200, token.text  # the key lives only in dynalite's table
    auth = {"authorization": f"Bearer {token.json()['token']}"}
    page = httpx.get(f"{stack.api}/my", params={"key": "#"}, headers=auth, timeout=60)
    assert page.status_code == 200, page.text
    count = httpx.get(f"{stack.api}/my/count", params={"key": "#"}, headers=auth, timeout=60)
    assert count.status_code == 200, count.text
    assert count.json()["count"] >= 1


def test_data_commands_next_to_the_stack_use_dynalite(stack):
    ddb = client(stack.info["dynamodb"])
    ensure_tables(ddb, table_specs())  # what asset-discovery creates on start (not started here)
    key = "#asset#dyn.example.com#dyn.example.com"
    ddb.put_item(TableName="chariot", Item={"username": {"S": "dyn@example.com"}, "key": {"S": key},
                                            "dns": {"S": "dyn.example.com"}, "name": {"S": "dyn.example.com"},
                                            "status": {"S": "A"}, "source": {"S": "seed"}})
    out = cm(stack, "data", "backfill", "asset-discovery", state=False)
    assert "wrote 0," not in out.stdout and "wrote" in out.stdout, out.stdout
    assets = AssetDiscoveryMigration(table_prefix="").assets
    assert "Item" in ddb.get_item(TableName=assets, Key={"username": {"S": "dyn@example.com"}, "key": {"S": key}})
    p = cm(stack, "data", "verify", "asset-discovery", "--json", state=False, ok=None)
    doc = json.loads(p.stdout)
    assert p.returncode == 0 and doc["ok"] and doc["matched"] == doc["legacy_items"] >= 1, doc
