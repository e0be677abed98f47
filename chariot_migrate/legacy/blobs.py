"""Files: S3 objects under ``{username}/{path}`` plus a ``#file#{path}`` row per file."""

from __future__ import annotations

from typing import Any

from chariot_migrate.model.files import checked_name, object_key
from chariot_migrate.model.keys import file_key

from . import aws, store

PRESIGN_SECONDS = 3600


def check_name(name: str | None) -> str:
    return checked_name(name)


def record(username: str, name: str, now: str, size: int | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"username": username, "key": file_key(name), "name": name, "updated": now}
    if size is not None:
        item["bytes"] = size
    store.put(item)
    return item


def write(username: str, name: str, data: bytes, now: str, content_type: str = "application/octet-stream"
          ) -> dict[str, Any]:
    aws.s3().put_object(Bucket=aws.bucket_name(), Key=object_key(username, name), Body=data,
                        ContentType=content_type)
    return record(username, name, now, len(data))


def read(username: str, name: str) -> bytes | None:
    """The file's bytes, or None when its row exists but nothing was uploaded yet."""
    s3 = aws.s3()
    try:
        return s3.get_object(Bucket=aws.bucket_name(), Key=object_key(username, name))["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None


def presign(method: str, username: str, name: str) -> str:
    op = {"GET": "get_object", "PUT": "put_object"}[method]
    return aws.s3().generate_presigned_url(op, Params={"Bucket": aws.bucket_name(), "Key": object_key(username, name)},
                                           ExpiresIn=PRESIGN_SECONDS)


def remove(username: str, name: str) -> None:
    aws.s3().delete_object(Bucket=aws.bucket_name(), Key=object_key(username, name))
    store.delete(username, file_key(name))
