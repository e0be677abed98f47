"""Provision the legacy stack's AWS resources (table, bucket, signing key) and a demo account.

Idempotent: running it twice changes nothing (the signing key is generated once).
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.exceptions import ClientError

from chariot_migrate.aws_resources import dynamodb_endpoint, ensure_bucket
from chariot_migrate.model import apikeys, tokens
from chariot_migrate.model.clock import now_iso
from chariot_migrate.model.table import GSI_FIELDS, gsi_name

from . import aws


def _clients(endpoint_url: str | None, region: str) -> tuple[Any, Any, Any]:
    kw: dict[str, Any] = {"region_name": region}
    if endpoint_url:
        kw["endpoint_url"] = endpoint_url
    ddb_kw = {**kw, "endpoint_url": dynamodb_endpoint(endpoint_url)} if endpoint_url else kw
    return boto3.client("dynamodb", **ddb_kw), boto3.client("s3", **kw), boto3.client("secretsmanager", **kw)


def provision(endpoint_url: str | None = None, region: str = "us-east-1", *, table: str | None = None,
              bucket: str | None = None, secret_id: str | None = None) -> dict[str, str]:
    ddb, s3, sm = _clients(endpoint_url, region)
    table = table or aws.table_name()
    bucket = bucket or aws.bucket_name()
    secret_id = secret_id or aws.secret_id()
    create_table(ddb, table)
    ensure_bucket(s3, bucket, region)
    try:
        sm.describe_secret(SecretId=secret_id)
    except ClientError as e:
        if e.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        key = tokens.generate_signing_key()
        sm.create_secret(Name=secret_id, SecretString=json.dumps({"private_pem": key.private_pem, "kid": key.kid}))
    return {"table": table, "bucket": bucket, "secret_id": secret_id}


def create_table(ddb: Any, table: str) -> None:
    """The legacy single table with its GSIs, unless it exists (also what tests create alone)."""
    attrs = [{"AttributeName": n, "AttributeType": "S"} for n in ("username", "key", *GSI_FIELDS)]
    gsis = [{"IndexName": gsi_name(f),
             "KeySchema": [{"AttributeName": "username", "KeyType": "HASH"}, {"AttributeName": f, "KeyType": "RANGE"}],
             "Projection": {"ProjectionType": "ALL"}} for f in GSI_FIELDS]
    try:
        ddb.create_table(TableName=table, AttributeDefinitions=attrs, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "username", "KeyType": "HASH"},
                                    {"AttributeName": "key", "KeyType": "RANGE"}],
                         GlobalSecondaryIndexes=gsis)
        ddb.get_waiter("table_exists").wait(TableName=table)
    except ClientError as e:
        if e.response["Error"]["Code"] != "ResourceInUseException":
            raise


def public_key_pem(endpoint_url: str | None = None, region: str = "us-east-1", secret_id: str | None = None) -> str:
    """The public half of the signing key (for services and the proxy to verify tokens)."""
    _, _, sm = _clients(endpoint_url, region)
    data = json.loads(sm.get_secret_value(SecretId=secret_id or aws.secret_id())["SecretString"])
    return tokens.public_pem_of(data["private_pem"])


def create_api_key(username: str, *, name: str = "demo", endpoint_url: str | None = None, region: str = "us-east-1",
                   table: str | None = None, key_id: str | None = None, secret: str | None = None
                   ) -> tuple[str, str]:
    """Write an API key for ``username`` straight into the table; returns (id, secret)."""
    import uuid

    endpoint_url = dynamodb_endpoint(endpoint_url) if endpoint_url else None
    kw: dict[str, Any] = {"region_name": region} | ({"endpoint_url": endpoint_url} if endpoint_url else {})
    tbl = boto3.resource("dynamodb", **kw).Table(table or aws.table_name())
    key_id = key_id or str(uuid.uuid4())
    secret = secret or apikeys.new_secret()
    salt = apikeys.new_salt()
    now = now_iso()
    record = {"username": username, "key": f"#key#{key_id}", "id": key_id, "name": name, "creator": username,
              "created": now, "updated": now, "expires": "2099-01-01T00:00:00Z", "status": "A", "role": "admin",
              "_salt": salt, "_hash": apikeys.hash_secret(secret, salt)}
    tbl.put_item(Item=record)
    tbl.put_item(Item=record | {"username": apikeys.LOOKUP_PARTITION, "owner": username})
    return key_id, secret


def seed_demo(endpoint_url: str | None = None, email: str = "demo@example.com", region: str = "us-east-1",
              *, key_id: str = "demo-key", secret: str | None = None) -> tuple[str, str]:
    """A demo account with one API key (id ``demo-key``); returns (api_key_id, api_key_secret).

    Idempotent in effect: re-running keeps one demo key but rotates its secret (only the hash is
    stored, so the old secret cannot be shown again)."""
    provision(endpoint_url, region)
    return create_api_key(email, name="demo", endpoint_url=endpoint_url, region=region, key_id=key_id, secret=secret)
