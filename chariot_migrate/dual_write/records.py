"""The replay record: one acknowledged write that still has to reach the other side.

A record is created by whoever saw the primary succeed (the proxy's hot path, or
``MigrationRepository``) and is immutable apart from its delivery bookkeeping (attempts,
next_attempt_at, last_error, state). ``seq`` is assigned by the outbox at append time, so
concurrent writers (several proxy processes) still get one gap-free order per lane.

A *lane* is ``(service, account, target)``: records of one lane are delivered strictly in
``seq`` order; lanes are independent of each other.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from chariot_migrate.redact import is_sensitive
from chariot_migrate.transport import Headers, HttpRequest, HttpResponse

Side = Literal["new", "legacy"]
RecordState = Literal["pending", "dead"]
Lane = tuple[str, str, str]  # (service, account, target)

# Credentials never go into the outbox: the worker authenticates as the replay identity.
# Hop-by-hop headers and our own control headers are meaningless (or dangerous) on replay.
_DROP_REQUEST_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-api-key",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "expect",
        "idempotency-key",
    }
)
_DROP_RESPONSE_HEADERS = frozenset(
    {"set-cookie", "connection", "keep-alive", "transfer-encoding", "content-length", "trailer", "upgrade"}
)

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_id_lock = threading.Lock()
_last_id_ms = 0
_last_id_rand = 0


def _b32(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def encode_ulid(ms: int, rand: int) -> str:
    """Crockford base32 of (48-bit ms, 80-bit random): string order == (ms, rand) order."""
    return _b32(ms, 10) + _b32(rand, 16)


def new_record_id(now_ms: int | None = None) -> str:
    """A 26-character ULID: 48-bit millisecond time + 80 random bits, Crockford base32.

    Lexicographic order is time order; within one millisecond of one process the random
    part is incremented, so ids made by one process are strictly increasing.
    """
    global _last_id_ms, _last_id_rand
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    with _id_lock:
        if ms <= _last_id_ms:
            ms = _last_id_ms
            rand = (_last_id_rand + 1) & ((1 << 80) - 1)
        else:
            rand = int.from_bytes(os.urandom(10), "big")
        _last_id_ms, _last_id_rand = ms, rand
    return encode_ulid(ms, rand)


def scrub_request_headers(headers: Headers) -> Headers:
    """Drop credentials (any header named like one, e.g. X-GUARD-API-KEY-SECRET), hop-by-hop and
    control headers; keep order and duplicates."""
    return [
        (k.lower(), v)
        for k, v in headers
        if k.lower() not in _DROP_REQUEST_HEADERS and not k.lower().startswith("x-migrate-") and not is_sensitive(k)
    ]


def scrub_response_headers(headers: Headers) -> Headers:
    return [(k.lower(), v) for k, v in headers if k.lower() not in _DROP_RESPONSE_HEADERS]


class _Model(BaseModel):
    # Bodies are arbitrary bytes: base64 in JSON keeps the stored form lossless.
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64", extra="forbid")


class ReplayRequest(_Model):
    """The primary request as the other side must receive it (credentials removed)."""

    method: str
    path: str
    query: str = ""
    headers: list[tuple[str, str]] = Field(default_factory=list)
    body: bytes = b""
    # Routing context a Lambda transport needs to reach the right function.
    route_template: str | None = None
    path_params: dict[str, str] = Field(default_factory=dict)
    function: str | None = None
    stage: str = ""


class PrimaryResult(_Model):
    """The primary side's answer; the receiving side adopts generated ids/timestamps from it."""

    status: int
    headers: list[tuple[str, str]] = Field(default_factory=list)
    body: bytes = b""


class ReplayRecord(_Model):
    id: str = Field(default_factory=new_record_id)
    service: str
    account: str
    target: Side
    seq: int = 0  # assigned by the outbox on append; 0 = not yet appended
    route_id: str = ""
    request: ReplayRequest
    primary: PrimaryResult
    idempotency_key: str = ""  # defaults to the record id
    created_at: float = Field(default_factory=time.time)
    attempts: int = 0
    next_attempt_at: float = 0.0  # epoch seconds; 0 = now
    last_error: str | None = None
    state: RecordState = "pending"

    @property
    def lane(self) -> Lane:
        return (self.service, self.account, self.target)

    @property
    def effective_idempotency_key(self) -> str:
        return self.idempotency_key or self.id

    @classmethod
    def from_exchange(
        cls,
        *,
        service: str,
        account: str,
        target: Side,
        request: HttpRequest,
        response: HttpResponse,
        route_id: str = "",
        idempotency_key: str = "",
        function: str | None = None,
    ) -> ReplayRecord:
        """Build a record from the primary exchange. ``response.body`` must be read already.

        ``function`` overrides ``request.function``: when the primary was the new side, the
        proxy passes the legacy function the replay must reach.
        """
        if response.stream is not None:
            raise ValueError("read the primary response body before building a replay record")
        return cls(
            service=service,
            account=account,
            target=target,
            route_id=route_id,
            idempotency_key=idempotency_key,
            request=ReplayRequest(
                method=request.method.upper(),
                path=request.path,
                query=request.query,
                headers=scrub_request_headers(request.headers),
                body=request.body,
                route_template=request.route_template,
                path_params=dict(request.path_params),
                function=function if function is not None else request.function,
                stage=request.stage,
            ),
            primary=PrimaryResult(
                status=response.status,
                headers=scrub_response_headers(response.headers),
                body=response.body,
            ),
        )
