"""Event bus: envelope, versioned JSON-schema registry, in-process and Redis Streams buses.

Delivery is at least once. Every event is validated against its schema on publish *and* on
consume (a producer on an older build cannot poison consumers: invalid events go to the dead
letter). Consumers apply each event once with their store's own transaction (the reporting read
model: row, counters and the processed mark in one DynamoDB transaction; for Redis effects, a
MULTI/EXEC guarded by WATCH, as the streams-bus tests' ``redis_once`` shows).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import jsonschema
from pydantic import BaseModel, ConfigDict, Field

from ...observability import tracing
from ...redis_keys import deployment_namespace
from .context import current_correlation_id, current_trace, parse_traceparent, trace_context_var

log = logging.getLogger("chariot.kit.events")
SCHEMA_DIR = Path(__file__).parent / "schemas"
EVENT_TYPES = (
    "asset.discovered",
    "risk.assessed",
    "job.completed",
    "user.action",
    "integration.linked",
    "config.changed",
)


class Event(BaseModel):
    """The envelope every event travels in."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: str
    version: int = 1
    occurred_at: str
    account: str
    correlation_id: str = ""
    data: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def new(
        cls,
        type: str,
        account: str,
        data: Mapping[str, Any],
        *,
        version: int = 1,
        correlation_id: str | None = None,
    ) -> Event:
        return cls(
            id=str(uuid.uuid4()),
            type=type,
            version=version,
            occurred_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            account=account,
            correlation_id=correlation_id or current_correlation_id() or "",
            data=dict(data),
        )

    def to_json(self) -> str:
        return self.model_dump_json()


class InvalidEventError(ValueError):
    """The event does not match its registered schema (or its type/version is unknown)."""


class SchemaRegistry:
    """(type, version) → JSON schema. Loads ``<type>.v<version>.json`` files from a directory."""

    def __init__(self) -> None:
        self._validators: dict[tuple[str, int], jsonschema.protocols.Validator] = {}

    @classmethod
    def default(cls) -> SchemaRegistry:
        return cls().load_dir(SCHEMA_DIR)

    def load_dir(self, directory: Path | str) -> SchemaRegistry:
        for path in sorted(Path(directory).glob("*.v*.json")):
            type_, _, version = path.name[: -len(".json")].rpartition(".v")
            self.register(type_, int(version), json.loads(path.read_text()))
        return self

    def register(self, type: str, version: int, schema: Mapping[str, Any]) -> None:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        self._validators[(type, version)] = cls(schema, format_checker=cls.FORMAT_CHECKER)

    def versions(self, type: str) -> list[int]:
        return sorted(v for t, v in self._validators if t == type)

    def types(self) -> list[str]:
        return sorted({t for t, _ in self._validators})

    def validate(self, event: Mapping[str, Any] | Event) -> Event:
        """Validate a raw envelope (or an Event) and return it as an Event."""
        raw = event.model_dump() if isinstance(event, Event) else dict(event)
        type_, version = raw.get("type"), raw.get("version")
        validator = self._validators.get((str(type_), version)) if isinstance(version, int) else None
        if validator is None:
            known = self.versions(str(type_))
            hint = f" (known versions: {known})" if known else ""
            raise InvalidEventError(f"unknown event type/version {type_!r} v{version}{hint}")
        error = jsonschema.exceptions.best_match(validator.iter_errors(raw))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "envelope"
            raise InvalidEventError(f"{type_} v{version}: {where}: {error.message}")
        return Event.model_validate(raw)


Handler = Callable[[Event], Awaitable[Any]]


def _publishing(event: Event) -> tuple[Any, str | None]:
    """(PRODUCER span or None, traceparent to send with the event).

    The trace context travels beside the envelope (the schemas forbid extra envelope fields).
    """
    span = tracing.start_span(f"publish {event.type}", kind=tracing.SpanKind.PRODUCER,
                              attributes={"messaging.operation.type": "publish", "messaging.destination.name":
                                          event.type, "messaging.message.id": event.id})
    tp = tracing.traceparent_of(span)
    if tp is None and (trace := current_trace()) is not None:
        tp = trace.traceparent
    return span, tp


@contextlib.asynccontextmanager
async def _consuming(event: Event, group: str, traceparent: str | None) -> Any:
    """Handle an event inside the producer's trace: a CONSUMER span, and the trace id on logs."""
    incoming = parse_traceparent(traceparent)
    trace = incoming.child() if incoming else None
    token = trace_context_var.set(trace) if trace is not None else None
    with tracing.span(f"process {event.type}", kind=tracing.SpanKind.CONSUMER, parent=traceparent,
                      attributes={"messaging.operation.type": "process", "messaging.destination.name": event.type,
                                  "messaging.consumer.group.name": group, "messaging.message.id": event.id}):
        try:
            yield
        finally:
            if token is not None:
                trace_context_var.reset(token)


class EventBus(Protocol):
    async def publish(self, event: Event) -> str: ...

    def subscribe(self, group: str, types: Sequence[str], handler: Handler) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def healthy(self) -> None: ...


@dataclass
class DeadLetter:
    event_id: str | None
    type: str | None
    group: str
    reason: str
    payload: str
    deliveries: int


@dataclass
class _Subscription:
    group: str
    types: tuple[str, ...]
    handler: Handler
    queue: asyncio.Queue[tuple[str, int, str | None]] = field(default_factory=asyncio.Queue)


class InProcessBus:
    """Embedded default: one worker task per subscriber group, retries, then dead letter."""

    def __init__(
        self, registry: SchemaRegistry | None = None, *, max_deliveries: int = 3, retry_delay: float = 0.05
    ) -> None:
        self.registry = registry or SchemaRegistry.default()
        self.max_deliveries = max_deliveries
        self.retry_delay = retry_delay
        self.dead_letters: list[DeadLetter] = []
        self._subs: list[_Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []

    def subscribe(self, group: str, types: Sequence[str], handler: Handler) -> None:
        self._subs.append(_Subscription(group, tuple(types), handler))

    async def publish(self, event: Event) -> str:
        payload = self.registry.validate(event).to_json()
        span, tp = _publishing(event)
        for sub in self._subs:
            if event.type in sub.types:
                sub.queue.put_nowait((payload, 0, tp))
        tracing.end_span(span)
        return event.id

    async def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._work(s), name=f"bus:{s.group}") for s in self._subs]

    async def _work(self, sub: _Subscription) -> None:
        while True:
            payload, deliveries, tp = await sub.queue.get()
            try:
                await self._deliver(sub, payload, deliveries + 1, tp)
            finally:
                sub.queue.task_done()

    async def _deliver(self, sub: _Subscription, payload: str, attempt: int, traceparent: str | None = None) -> None:
        try:
            event = self.registry.validate(json.loads(payload))
        except (InvalidEventError, ValueError) as exc:
            self.dead_letters.append(DeadLetter(None, None, sub.group, f"invalid: {exc}", payload, attempt))
            return
        while True:
            try:
                async with _consuming(event, sub.group, traceparent):
                    await sub.handler(event)
                return
            except Exception as exc:
                log.warning(
                    "event handler failed",
                    extra={"group": sub.group, "event_id": event.id, "attempt": attempt},
                )
                if attempt >= self.max_deliveries:
                    reason = f"handler failed {attempt} times: {type(exc).__name__}: {exc}"
                    self.dead_letters.append(
                        DeadLetter(event.id, event.type, sub.group, reason, payload, attempt)
                    )
                    return
                attempt += 1
                await asyncio.sleep(self.retry_delay)

    async def drain(self) -> None:
        """Wait until every published event has been handled (tests, graceful shutdown)."""
        await asyncio.gather(*(s.queue.join() for s in self._subs))

    async def stop(self, grace_s: float = 5.0) -> None:
        """Handle what is queued (up to ``grace_s``: nothing else keeps in-process events), then stop."""
        if self._tasks and grace_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drain(), grace_s)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def healthy(self) -> None:
        dead = [t for t in self._tasks if t.done()]
        if dead:
            raise RuntimeError(f"{len(dead)} bus worker(s) stopped")


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


class RedisStreamsBus:
    """Redis Streams: one stream per event type, one consumer group per subscribing service.

    * new messages: XREADGROUP ``>``; success → XACK; handler error → left pending;
    * pending messages idle longer than ``visibility_timeout`` (a crashed or stuck consumer)
      are taken over with XAUTOCLAIM and redelivered;
    * after ``max_deliveries`` deliveries, or when the payload fails validation, the message
      goes to the dead-letter stream and is acked.
    """

    def __init__(
        self,
        redis: Any,
        *,
        prefix: str | None = None,
        registry: SchemaRegistry | None = None,
        consumer: str | None = None,
        visibility_timeout: float = 30.0,
        max_deliveries: int = 5,
        batch_size: int = 10,
        block: float = 0.5,
        maxlen: int = 100_000,
    ) -> None:
        self.redis = redis
        # Streams are ``<prefix>events:<type>``; the prefix starts with the deployment's namespace
        # (REDIS_NAMESPACE, see chariot_migrate/redis_keys.py) so stacks sharing a Redis never
        # consume each other's events. Services pass ``<namespace><TABLE_PREFIX>chariot:``.
        self.prefix = prefix if prefix is not None else deployment_namespace() + "chariot:"
        self.registry = registry or SchemaRegistry.default()
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.visibility_timeout = visibility_timeout
        self.max_deliveries = max_deliveries
        self.batch_size = batch_size
        self.block = block
        self.maxlen = maxlen
        self.dead_letter_stream = f"{self.prefix}events:dead-letter"
        self._subs: list[_Subscription] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    def stream(self, type: str) -> str:
        return f"{self.prefix}events:{type}"

    async def publish(self, event: Event) -> str:
        payload = self.registry.validate(event).to_json()
        span, tp = _publishing(event)
        fields = {"event": payload, "traceparent": tp} if tp else {"event": payload}
        try:
            msg_id = await self.redis.xadd(self.stream(event.type), fields, maxlen=self.maxlen, approximate=True)
        except BaseException as e:
            tracing.end_span(span, error=e)
            raise
        tracing.end_span(span)
        return _s(msg_id)

    def subscribe(self, group: str, types: Sequence[str], handler: Handler) -> None:
        self._subs.append(_Subscription(group, tuple(types), handler))

    async def ensure_groups(self) -> None:
        for sub in self._subs:
            for type_ in sub.types:
                try:
                    await self.redis.xgroup_create(self.stream(type_), sub.group, id="0", mkstream=True)
                except Exception as exc:  # BUSYGROUP: the group exists already
                    if "BUSYGROUP" not in str(exc):
                        raise

    async def start(self) -> None:
        await self.ensure_groups()
        self._stopping.clear()
        self._tasks = [asyncio.create_task(self._consume(s), name=f"bus:{s.group}") for s in self._subs]

    async def stop(self) -> None:
        self._stopping.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=self.block + 2)
            for t in pending:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def healthy(self) -> None:
        await self.redis.ping()
        if any(t.done() for t in self._tasks):
            raise RuntimeError("an event consumer stopped")

    async def _consume(self, sub: _Subscription) -> None:
        streams = {self.stream(t): ">" for t in sub.types}
        loop = asyncio.get_running_loop()
        next_claim = 0.0
        while not self._stopping.is_set():
            try:
                if loop.time() >= next_claim:
                    await self._claim_stale(sub)
                    next_claim = loop.time() + max(self.visibility_timeout / 2, 0.05)
                batches = await self.redis.xreadgroup(
                    sub.group, self.consumer, streams, count=self.batch_size, block=int(self.block * 1000)
                )
                for stream, messages in batches or []:
                    for msg_id, fields in messages:
                        await self._handle(sub, _s(stream), _s(msg_id), fields, deliveries=1)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "event consumer error",
                    extra={"group": sub.group, "error": f"{type(exc).__name__}: {exc}"},
                )
                await asyncio.sleep(0.5)

    async def _claim_stale(self, sub: _Subscription) -> None:
        idle_ms = int(self.visibility_timeout * 1000)
        for type_ in sub.types:
            stream, start = self.stream(type_), "0-0"
            for _ in range(100):  # bounded per cycle; the rest waits for the next cycle
                result = await self.redis.xautoclaim(
                    stream,
                    sub.group,
                    self.consumer,
                    min_idle_time=idle_ms,
                    start_id=start,
                    count=self.batch_size,
                )
                start, messages = _s(result[0]), result[1]
                for msg_id, fields in messages:
                    msg_id = _s(msg_id)
                    info = await self.redis.xpending_range(stream, sub.group, min=msg_id, max=msg_id, count=1)
                    deliveries = int(info[0]["times_delivered"]) if info else self.max_deliveries + 1
                    await self._handle(sub, stream, msg_id, fields, deliveries=deliveries)
                if start == "0-0" or not messages:
                    break

    async def _handle(
        self, sub: _Subscription, stream: str, msg_id: str, fields: Mapping[Any, Any], *, deliveries: int
    ) -> None:
        raw = fields.get(b"event", fields.get("event"))
        payload = _s(raw) if raw is not None else ""
        try:
            event = self.registry.validate(json.loads(payload))
        except (InvalidEventError, ValueError) as exc:
            await self._dead_letter(sub, stream, msg_id, payload, f"invalid: {exc}", deliveries)
            return
        if deliveries > self.max_deliveries:
            await self._dead_letter(
                sub, stream, msg_id, payload, f"gave up after {deliveries - 1} deliveries", deliveries
            )
            return
        raw_tp = fields.get(b"traceparent", fields.get("traceparent"))
        try:
            async with _consuming(event, sub.group, _s(raw_tp) if raw_tp is not None else None):
                await sub.handler(event)
        except Exception as exc:
            # Left pending: XAUTOCLAIM redelivers it after the visibility timeout.
            log.warning(
                "event handler failed",
                extra={
                    "group": sub.group,
                    "event_id": event.id,
                    "deliveries": deliveries,
                    "error": type(exc).__name__,
                },
            )
            return
        await self.redis.xack(stream, sub.group, msg_id)

    async def _dead_letter(
        self, sub: _Subscription, stream: str, msg_id: str, payload: str, reason: str, deliveries: int
    ) -> None:
        log.error("event dead-lettered", extra={"group": sub.group, "stream": stream, "reason": reason[:300]})
        await self.redis.xadd(
            self.dead_letter_stream,
            {
                "stream": stream,
                "message_id": msg_id,
                "group": sub.group,
                "reason": reason[:1000],
                "deliveries": str(deliveries),
                "event": payload,
            },
            maxlen=self.maxlen,
            approximate=True,
        )
        await self.redis.xack(stream, sub.group, msg_id)

    async def dead_letters(self, count: int = 100) -> list[dict[str, str]]:
        rows = await self.redis.xrange(self.dead_letter_stream, count=count)
        return [{_s(k): _s(v) for k, v in fields.items()} for _, fields in rows]


# A subscription a service app declares: (consumer group, event types, handler(event) or
# handler(event, app)).
Subscription = tuple[str, list[str], Callable[..., Awaitable[Any]]]
