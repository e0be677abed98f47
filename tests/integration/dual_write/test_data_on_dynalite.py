"""`data backfill` / `data verify` on dynalite (issue 21: the local DynamoDB engine, swappable by
endpoint URL): a real dynalite process, the legacy table as `up` provisions it (GSIs) and
asset-discovery's tables as the service creates them (streams requested), the real CLI commands
in subprocesses.

The commands find DynamoDB only through ``AWS_ENDPOINT_URL_DYNAMODB``; ``AWS_ENDPOINT_URL`` points
at a closed port (standing in for moto), so a code path that ignored the DynamoDB-only endpoint
would fail here instead of passing against the wrong server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import boto3
import pytest

from chariot_migrate import dynalite
from chariot_migrate.legacy.resources import create_table
from chariot_migrate.lifecycle import bind
from chariot_migrate.model.table import GSI_FIELDS, gsi_name
from chariot_migrate.services.asset_discovery.migration import AssetDiscoveryMigration
from chariot_migrate.services.asset_discovery.store import table_specs
from chariot_migrate.services.kit.repository import ensure_tables

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(dynalite.module_path() is None, reason=dynalite.missing_reason())]

ROOT = Path(__file__).resolve().parents[3]
ACCOUNT = "dyn@example.com"
N = 2000


@pytest.fixture(scope="module")
def server() -> Iterator[dynalite.Dynalite]:
    with dynalite.Dynalite() as d:
        yield d


@pytest.fixture
def stores(server, tmp_path) -> dict[str, Any]:
    prefix = f"dyn{uuid4().hex[:8]}-"
    legacy_name = prefix + "chariot"
    client = boto3.client("dynamodb", endpoint_url=server.endpoint_url, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    create_table(client, legacy_name)
    created = ensure_tables(client, table_specs(prefix))
    assert len(created) == len(table_specs(prefix))
    closed = bind("127.0.0.1", 0)  # bound, never listening: connections to it are refused
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AWS_ENDPOINT_URL_DYNAMODB": server.endpoint_url,
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed.getsockname()[1]}",
           "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
           "CHARIOT_TABLE": legacy_name, "TABLE_PREFIX": prefix, "CHARIOT_MIGRATE_STATE_DIR": str(tmp_path),
           "REDIS_URL": f"redis://127.0.0.1:{closed.getsockname()[1]}/0"}  # no Redis: the cache flush says so
    for var in ("CHARIOT_MIGRATE_LEGACY_ENDPOINT_URL", "CHARIOT_MIGRATE_STATE"):
        env.pop(var, None)
    ddb = boto3.resource("dynamodb", endpoint_url=server.endpoint_url, region_name="us-east-1",
                         aws_access_key_id="x", aws_secret_access_key="x")
    mig = AssetDiscoveryMigration(table_prefix=prefix)
    yield {"env": env, "legacy": ddb.Table(legacy_name), "assets": ddb.Table(mig.assets), "cwd": tmp_path,
           "client": client, "legacy_name": legacy_name}
    closed.close()


def seed(legacy: Any, start: int, stop: int) -> None:
    with legacy.batch_writer() as bw:
        for i in range(start, stop):
            bw.put_item(Item={"username": ACCOUNT, "key": f"#asset#d{i % 13}.com#h{i:05d}.d{i % 13}.com",
                              "dns": f"d{i % 13}.com", "name": f"h{i:05d}.d{i % 13}.com", "status": "A",
                              "source": "seed", "class": "domain", "created": "2026-01-01T00:00:00Z"})
        for i in range(start // 10, stop // 10):  # another service's rows: scanned past, never copied
            bw.put_item(Item={"username": ACCOUNT, "key": f"#risk#d.com#r{i:05d}", "status": "TH"})


def cm(stores: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chariot_migrate.cli.main", *args, "--routes",
                           str(ROOT / "routes.yaml")], cwd=stores["cwd"], env=stores["env"], capture_output=True,
                          text=True, timeout=300)


def count(table: Any) -> int:
    pages = table.meta.client.get_paginator("scan").paginate(TableName=table.name, Select="COUNT")
    return sum(page["Count"] for page in pages)


def verify(stores: dict[str, Any]) -> dict[str, Any]:
    p = cm(stores, "data", "verify", "asset-discovery", "--json")
    doc = json.loads(p.stdout)
    assert p.returncode == (0 if doc["ok"] else 1), p.stderr
    return doc


def test_tables_as_created_on_dynalite(stores):
    table = stores["client"].describe_table(TableName=stores["legacy_name"])["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert {g["IndexName"] for g in table["GlobalSecondaryIndexes"]} == {gsi_name(f) for f in GSI_FIELDS}
    assert all(g["IndexStatus"] == "ACTIVE" for g in table["GlobalSecondaryIndexes"])


def test_backfill_then_verify_clean_and_a_second_backfill_copies_only_new_items(stores):
    seed(stores["legacy"], 0, N)
    assert not verify(stores)["ok"]  # nothing copied yet: the new store misses every asset

    first = cm(stores, "data", "backfill", "asset-discovery")
    assert first.returncode == 0, first.stderr
    assert f"wrote {N}," in first.stdout, first.stdout
    assert count(stores["assets"]) == N
    clean = verify(stores)
    assert clean["ok"] and clean["matched"] == clean["legacy_items"] == N, clean

    seed(stores["legacy"], N, N + 150)
    second = cm(stores, "data", "backfill", "asset-discovery")
    assert second.returncode == 0, second.stderr
    assert "wrote 150," in second.stdout, second.stdout  # the rows already copied are skipped
    assert count(stores["assets"]) == N + 150
    again = verify(stores)
    assert again["ok"] and again["matched"] == again["legacy_items"] == N + 150, again
