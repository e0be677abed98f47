"""What a replay looks like on the wire, and the worker's pure decisions (sans-IO).

A replayed write is the original request (credentials removed) plus these headers:

``Idempotency-Key: <key>``
    Stable across retries of one record; the receiver must apply a key at most once and
    answer a repeat with 2xx or ``409`` ("already applied"), both of which count as success.
``X-Migrate-Replay: 1``
    Marks the request as a replay (receivers must not dual-write it back: no ping-pong).
``Authorization: Bearer <token>``
    The trusted replay identity (from ``replay_token_provider``). Receivers honour the
    headers below only when this identity is verified.
``X-Migrate-Replay-Account: <account>``
    The account the original caller acted for.
``X-Migrate-Replay-Seq: <seq>`` / ``X-Migrate-Record-Id: <id>``
    Position in the account's lane, for receivers that want to assert order.
``X-Migrate-Primary-Result: z1.<base64url(zlib(json))>``
    The primary side's answer, so the receiver adopts server-generated values (ids,
    timestamps) instead of minting its own. JSON: ``{"status": int, "headers": [[k, v], ...],
    "body": str}`` where the body is UTF-8 text, or ``"body_b64"`` for binary bodies. If the
    encoded value would exceed ``max_header_bytes`` the body is left out and
    ``"truncated": true`` is set (the receiver then cannot adopt values; ``verify`` will show
    any drift). Decode with :func:`decode_primary_result`.

A header (not a JSON envelope around the body) keeps the original request byte-identical,
so a legacy Lambda handler and a new service parse it exactly as they parsed the original.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Literal

from chariot_migrate.dual_write.records import PrimaryResult, ReplayRecord
from chariot_migrate.transport import HttpRequest

PRIMARY_RESULT_HEADER = "x-migrate-primary-result"
REPLAY_HEADER = "x-migrate-replay"
REPLAY_ACCOUNT_HEADER = "x-migrate-replay-account"
REPLAY_SEQ_HEADER = "x-migrate-replay-seq"
RECORD_ID_HEADER = "x-migrate-record-id"
IDEMPOTENCY_HEADER = "idempotency-key"
DEFAULT_MAX_HEADER_BYTES = 6144  # under the usual 8 KiB per-header limits (aiohttp, nginx)

Outcome = Literal["delivered", "retry", "permanent"]


def encode_primary_result(result: PrimaryResult, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES) -> str:
    doc: dict[str, object] = {"status": result.status, "headers": [list(h) for h in result.headers]}
    try:
        doc["body"] = result.body.decode("utf-8")
    except UnicodeDecodeError:
        doc["body_b64"] = base64.b64encode(result.body).decode("ascii")
    value = _pack(doc)
    if len(value) > max_header_bytes:
        doc.pop("body", None)
        doc.pop("body_b64", None)
        doc["truncated"] = True
        value = _pack(doc)
    return value


def _pack(doc: dict[str, object]) -> str:
    raw = json.dumps(doc, separators=(",", ":")).encode()
    return "z1." + base64.urlsafe_b64encode(zlib.compress(raw, 6)).decode("ascii").rstrip("=")


def decode_primary_result(value: str) -> tuple[PrimaryResult, bool]:
    """Decode the header; returns ``(result, truncated)``. Raises ``ValueError`` on garbage."""
    if not value.startswith("z1."):
        raise ValueError("unknown X-Migrate-Primary-Result encoding (expected 'z1.' prefix)")
    data = value[3:]
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
        doc = json.loads(raw)
    except (ValueError, zlib.error) as exc:
        raise ValueError(f"malformed X-Migrate-Primary-Result: {exc}") from exc
    if "body_b64" in doc:
        body = base64.b64decode(doc["body_b64"])
    else:
        body = doc.get("body", "").encode("utf-8")
    result = PrimaryResult(status=doc["status"], headers=[tuple(h) for h in doc.get("headers", [])], body=body)
    return result, bool(doc.get("truncated"))


def build_replay_request(
    record: ReplayRecord,
    token: str | None,
    *,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
) -> HttpRequest:
    req = record.request
    headers = [(k, v) for k, v in req.headers]
    headers += [
        (IDEMPOTENCY_HEADER, record.effective_idempotency_key),
        (REPLAY_HEADER, "1"),
        (REPLAY_ACCOUNT_HEADER, record.account),
        (REPLAY_SEQ_HEADER, str(record.seq)),
        (RECORD_ID_HEADER, record.id),
        (PRIMARY_RESULT_HEADER, encode_primary_result(record.primary, max_header_bytes)),
    ]
    if token:
        headers.append(("authorization", f"Bearer {token}"))
    return HttpRequest(
        method=req.method,
        path=req.path,
        query=req.query,
        headers=headers,
        body=req.body,
        route_template=req.route_template,
        path_params=dict(req.path_params),
        function=req.function,
        principal=record.account,
        stage=req.stage,
        request_id=record.id,
    )


# 408/425/429 are "try later"; 409 is the receiver saying "already applied".
_RETRYABLE_4XX = frozenset({408, 425, 429})


def classify_status(status: int) -> Outcome:
    """2xx and 409 are delivered; 5xx and throttling retry; other 4xx can never succeed."""
    if 200 <= status < 300 or status == 409:
        return "delivered"
    if status in _RETRYABLE_4XX or status >= 500:
        return "retry"
    if 400 <= status < 500:
        return "permanent"
    return "retry"  # 1xx/3xx from a write endpoint: unexpected, try again later


def backoff_delay(attempt: int, base_s: float, cap_s: float, rand: float) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**(attempt-1))].

    ``attempt`` is the number of attempts made so far (>= 1); ``rand`` is uniform in [0, 1).
    """
    ceiling = min(cap_s, base_s * (2 ** max(0, attempt - 1)))
    return ceiling * rand


def next_state(attempts: int, max_attempts: int, outcome: Outcome) -> Literal["delivered", "pending", "dead"]:
    """Bookkeeping after an attempt; ``attempts`` already counts the attempt just made."""
    if outcome == "delivered":
        return "delivered"
    if outcome == "permanent" or attempts >= max_attempts:
        return "dead"
    return "pending"
