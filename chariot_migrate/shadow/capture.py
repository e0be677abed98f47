"""Capture → replay → diff: persist sampled request/response pairs, re-send them later.

``CaptureWriter`` appends redacted JSON lines with the side that answered (the attribution
GoReplay lacks). ``replay`` re-sends each captured request to a URL (e.g. a new container build),
compares the answer with the captured one using the same normalisation and signatures as live
shadowing, records into a diff store and returns the usual ``Report``.
"""

from __future__ import annotations

import asyncio
import base64
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel, Field

from chariot_migrate.transport import HttpRequest, HttpResponse, UpstreamError, UpstreamErrorKind

from ..redact import (
    redact_body,
    redact_headers,
    redact_known,
    redact_path,
    redact_path_value,
    redact_query,
    secrets_in,
)
from .compare import compare_pair
from .normalise import NormaliseRules
from .records import HitRecord, PairRecord
from .report import Report, build_report
from .store import DiffStore, SQLiteDiffStore

CAPTURE_BODY_LIMIT = 1024 * 1024


class CapturedRequest(BaseModel):
    method: str
    path: str
    query: str = ""
    headers: list[tuple[str, str]] = Field(default_factory=list)
    body: str = ""
    body_base64: bool = False


class CapturedResponse(BaseModel):
    status: int
    headers: list[tuple[str, str]] = Field(default_factory=list)
    body: str = ""
    body_base64: bool = False


class CaptureRecord(BaseModel):
    ts: float
    service: str
    route: str
    side: str  # "legacy" | "new": who answered
    latency_ms: float | None = None
    request: CapturedRequest
    response: CapturedResponse


def _body_out(body: bytes, limit: int) -> tuple[str, bool]:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(body[:limit]).decode(), True
    return redact_body(body, limit=limit), False


def _text_of(body: bytes) -> str:
    return body.decode("utf-8", "replace")


def _body_in(text: str, is_b64: bool) -> bytes:
    return base64.b64decode(text) if is_b64 else text.encode()


class CaptureWriter:
    """Appends a sampled share of pairs to a JSONL file (thread-safe; one line per pair)."""

    def __init__(self, path: str | Path, sample: float = 1.0, *, body_limit: int = CAPTURE_BODY_LIMIT, seed: int | None = None):
        if not 0 <= sample <= 1:
            raise ValueError("capture sample must be between 0 and 1")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sample = sample
        self.body_limit = body_limit
        self.written = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._file: TextIO | None = self.path.open("a", encoding="utf-8")

    def write(
        self, *, service: str, route: str, side: str, request: HttpRequest, response: HttpResponse, latency_s: float | None = None
    ) -> bool:
        """Record one pair (response body already buffered). False when not sampled or closed."""
        if self._file is None or self._rng.random() >= self.sample:
            return False
        req_body, req_b64 = _body_out(request.body, self.body_limit)
        resp_body, resp_b64 = _body_out(response.body, self.body_limit)
        rec = CaptureRecord(
            ts=time.time(), service=service, route=route, side=side,
            latency_ms=None if latency_s is None else round(latency_s * 1000, 3),
            request=CapturedRequest(method=request.method, path=redact_path(request.path, request.path_params),
                                    query=redact_query(request.query), headers=redact_headers(request.headers),
                                    body=req_body, body_base64=req_b64),
            response=CapturedResponse(status=response.status, headers=redact_headers(response.headers),
                                      body=resp_body, body_base64=resp_b64),
        )
        # A credential known by its place in one part (the webhook pin in a key of the answer) also
        # leaves the other parts (the pin as the request body's `value`).
        known = secrets_in(_text_of(request.body), _text_of(response.body), path_params=request.path_params)
        line = redact_known(rec.model_dump_json(), known) + "\n"
        with self._lock:
            if self._file is None:
                return False
            self._file.write(line)
            self._file.flush()
            self.written += 1
        return True

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_capture(path: str | Path) -> Iterator[CaptureRecord]:
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield CaptureRecord.model_validate_json(line)
            except ValueError as e:
                raise ValueError(f"{path}:{n}: not a capture record ({str(e).splitlines()[0]})") from e


# Hop-by-hop and per-connection headers are not replayed.
_NOT_REPLAYED = {"host", "content-length", "connection", "transfer-encoding", "keep-alive", "accept-encoding"}


async def replay_async(
    file: str | Path,
    against_url: str,
    *,
    rules: NormaliseRules | Callable[[str], NormaliseRules] | None = None,
    store: DiffStore | None = None,
    against_side: str = "new",
    headers: dict[str, str] | None = None,
    concurrency: int = 8,
    timeout_s: float = 10.0,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Re-send every captured request to ``against_url`` and compare with the captured answer.

    ``headers`` are set on every replayed request (e.g. a fresh Authorization, since captures are
    redacted). Records go to ``store`` (a temporary SQLite file when None); the report covers them.
    """
    import httpx

    def rules_for(route: str) -> NormaliseRules:
        if callable(rules):
            return rules(route)
        return rules or NormaliseRules()

    own_store = store is None
    tmpdir = tempfile.TemporaryDirectory(prefix="chariot-replay-") if own_store else None
    store = store or SQLiteDiffStore(Path(tmpdir.name) / "replay.db")  # type: ignore[union-attr]  # tmpdir set when own_store
    sem = asyncio.Semaphore(concurrency)
    batch: list[PairRecord] = []
    done = 0
    try:
        async with httpx.AsyncClient(base_url=against_url.rstrip("/"), timeout=timeout_s) as client:

            async def one(rec: CaptureRecord) -> None:
                nonlocal done
                req = rec.request
                send_headers = {k: v for k, v in req.headers if k.lower() not in _NOT_REPLAYED}
                send_headers.update(headers or {})
                send_headers["x-migrate-shadow"] = "1"
                async with sem:
                    t0 = time.perf_counter()
                    try:
                        r = await client.request(req.method, req.path + (f"?{req.query}" if req.query else ""),
                                                 headers=send_headers, content=_body_in(req.body, req.body_base64) or None)
                        # Captures are redacted: redact the fresh answer alike, or every secret field differs.
                        body, b64 = _body_out(r.content, CAPTURE_BODY_LIMIT)
                        answer: HttpResponse | BaseException = HttpResponse(
                            r.status_code, redact_headers(list(r.headers.items())), _body_in(body, b64)
                        )
                    except httpx.TimeoutException as e:
                        answer = _err("timeout", e)
                    except httpx.HTTPError as e:
                        answer = _err("connect", e)
                    lat = time.perf_counter() - t0
                captured = HttpResponse(rec.response.status, rec.response.headers, _body_in(rec.response.body, rec.response.body_base64))
                by_side: dict[str, Any] = {rec.side: captured, against_side: answer}
                latency = {rec.side: (rec.latency_ms or 0) / 1000 if rec.latency_ms is not None else None, against_side: lat}
                legacy, new = by_side.get("legacy", captured), by_side.get("new", answer)
                cmp = compare_pair(rec.route, legacy, new, rules_for(rec.route))
                pr = PairRecord(
                    service=rec.service, route=rec.route, ts=time.time(),
                    hits=[HitRecord(h.signature, h.path, h.kind, h.value_class) for h in cmp.hits],
                    latency=latency,
                    error={rec.side: captured.status >= 500,
                           against_side: isinstance(answer, BaseException) or answer.status >= 500},
                )
                for h in cmp.hits:
                    pr.examples.append((h.signature, {
                        "signature": h.signature, "path": h.first.path, "kind": h.kind,
                        "legacy_value": redact_path_value(h.first.path, h.first.left),
                        "new_value": redact_path_value(h.first.path, h.first.right),
                        "method": req.method, "request_path": req.path, "query": req.query,
                    }))
                batch.append(pr)
                done += 1
                if progress:
                    progress(done)

            await asyncio.gather(*(one(r) for r in read_capture(file)))
        await asyncio.to_thread(store.record, batch)
        return build_report(store)
    finally:
        if own_store:
            store.close()
            tmpdir.cleanup()  # type: ignore[union-attr]  # set when own_store


def _err(kind: UpstreamErrorKind, e: Exception) -> BaseException:
    return UpstreamError(kind, type(e).__name__)


def replay(file: str | Path, against_url: str, **kwargs: Any) -> Report:
    """Synchronous ``replay_async`` for the CLI."""
    return asyncio.run(replay_async(file, against_url, **kwargs))
