"""``PUT/GET/DELETE /file?name=…`` (presigned S3 URLs) and ``PUT/GET /encrypted-file`` (inline bytes)."""

from __future__ import annotations

import base64
from typing import Any

from chariot_migrate.model.keys import file_key
from chariot_migrate.model.table import GLOBAL_USERNAME

from . import blobs, store
from .auth import Caller, secured
from .http import Request, dispatch, not_found


def _owner(req: Request, caller: Caller) -> str:
    return GLOBAL_USERNAME if req.flag("global") and req.method == "GET" else caller.username


def put(req: Request, caller: Caller) -> Any:
    name = blobs.check_name(req.param("name"))
    # The real API records the file on the S3 event; we record it when the upload is granted.
    blobs.record(caller.username, name, caller.now)
    return {"url": blobs.presign("PUT", caller.username, name)}


def get(req: Request, caller: Caller) -> Any:
    name = blobs.check_name(req.param("name"))
    owner = _owner(req, caller)
    if not store.get(owner, file_key(name)):
        raise not_found(f"file {name} not found")
    return {"url": blobs.presign("GET", owner, name)}


def delete(req: Request, caller: Caller) -> Any:
    name = blobs.check_name(req.param("name"))
    row = store.get(caller.username, file_key(name))
    if not row:
        raise not_found(f"file {name} not found")
    blobs.remove(caller.username, name)
    return row


def put_encrypted(req: Request, caller: Caller) -> Any:
    name = blobs.check_name(req.param("name"))
    return blobs.write(caller.username, name, req.raw_body, caller.now)


def get_encrypted(req: Request, caller: Caller) -> Any:
    name = blobs.check_name(req.param("name"))
    if not store.get(caller.username, file_key(name)):
        raise not_found(f"file {name} not found")
    data = blobs.read(caller.username, name)
    if data is None:
        raise not_found(f"file {name} has no content yet: upload it to the URL PUT /file returned")
    return {"statusCode": 200, "headers": {"Content-Type": "application/octet-stream"},
            "body": base64.b64encode(data).decode(), "isBase64Encoded": True}


ROUTES = {("PUT", "/file"): put, ("GET", "/file"): get, ("DELETE", "/file"): delete,
          ("PUT", "/encrypted-file"): put_encrypted, ("GET", "/encrypted-file"): get_encrypted}


@secured
def handler(req: Request, caller: Caller) -> Any:
    return dispatch(req, ROUTES, caller)
