"""Saga: steps with actions and compensations; on failure, compensate completed steps in reverse.

The saga log records the state of every step (for inspection, e.g. ``GET /job/{id}/saga``).
Compensations are retried a few times; one that still fails is recorded as
``compensation_failed`` (needs an operator) and the remaining compensations still run.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

log = logging.getLogger("chariot.kit.saga")
StepState = Literal[
    "pending", "running", "done", "failed", "compensating", "compensated", "compensation_failed"
]
SagaState = Literal["running", "completed", "compensated", "failed"]
# An action/compensation receives the saga context (dict shared across steps); sync or async.
StepFn = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Step:
    name: str
    action: StepFn
    compensation: StepFn | None = None  # None: nothing to undo (e.g. a read)


@dataclass
class StepRecord:
    name: str
    state: StepState = "pending"
    error: str | None = None
    updated: str = ""


@dataclass
class SagaRecord:
    saga_id: str
    name: str
    state: SagaState = "running"
    steps: list[StepRecord] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "saga_id": self.saga_id,
            "name": self.name,
            "state": self.state,
            "error": self.error,
            "steps": [vars(s).copy() for s in self.steps],
        }


class SagaLog(Protocol):
    def save(self, record: SagaRecord) -> Any: ...


class MemorySagaLog:
    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.history: list[tuple[str, str, str]] = []  # (saga_id, step, state) in order

    def save(self, record: SagaRecord) -> None:
        snapshot = record.to_dict()
        previous = self.records.get(record.saga_id)
        for i, step in enumerate(snapshot["steps"]):
            if previous is None or previous["steps"][i]["state"] != step["state"]:
                self.history.append((record.saga_id, step["name"], step["state"]))
        self.records[record.saga_id] = snapshot


class SagaFailed(Exception):
    def __init__(self, record: SagaRecord) -> None:
        super().__init__(f"saga {record.name} {record.state}: {record.error}")
        self.record = record


async def _run(fn: StepFn, ctx: dict[str, Any]) -> Any:
    result = fn(ctx)
    if inspect.isawaitable(result):
        result = await result
    return result


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Saga:
    def __init__(
        self,
        name: str,
        steps: Sequence[Step],
        *,
        log: SagaLog | None = None,
        compensation_attempts: int = 3,
        retry_delay: float = 0.05,
    ) -> None:
        if len({s.name for s in steps}) != len(steps):
            raise ValueError("saga step names must be unique")
        self.name = name
        self.steps = list(steps)
        self.log = log or MemorySagaLog()
        self.compensation_attempts = compensation_attempts
        self.retry_delay = retry_delay

    async def _save(self, record: SagaRecord) -> None:
        result = self.log.save(record)
        if inspect.isawaitable(result):
            await result

    async def run(self, ctx: dict[str, Any] | None = None, *, saga_id: str | None = None) -> SagaRecord:
        """Run every step; raises :class:`SagaFailed` (with the record) after compensating."""
        ctx = ctx if ctx is not None else {}
        record = SagaRecord(
            saga_id or str(uuid.uuid4()), self.name, steps=[StepRecord(s.name) for s in self.steps]
        )
        await self._save(record)
        done: list[int] = []
        for i, step in enumerate(self.steps):
            rec = record.steps[i]
            rec.state, rec.updated = "running", _now()
            await self._save(record)
            try:
                ctx[step.name] = await _run(step.action, ctx)
            except Exception as exc:
                rec.state, rec.error, rec.updated = "failed", f"{type(exc).__name__}: {exc}", _now()
                record.error = f"step {step.name} failed: {rec.error}"
                await self._save(record)
                await self._compensate(record, done, ctx)
                raise SagaFailed(record) from exc
            rec.state, rec.updated = "done", _now()
            done.append(i)
            await self._save(record)
        record.state = "completed"
        await self._save(record)
        return record

    async def _compensate(self, record: SagaRecord, done: list[int], ctx: dict[str, Any]) -> None:
        all_ok = True
        for i in reversed(done):
            step, rec = self.steps[i], record.steps[i]
            if step.compensation is None:
                rec.state = "compensated"
                continue
            rec.state, rec.updated = "compensating", _now()
            await self._save(record)
            for attempt in range(1, self.compensation_attempts + 1):
                try:
                    await _run(step.compensation, ctx)
                    rec.state, rec.updated = "compensated", _now()
                    break
                except Exception as exc:
                    rec.error = f"compensation: {type(exc).__name__}: {exc}"
                    if attempt == self.compensation_attempts:
                        rec.state, rec.updated = "compensation_failed", _now()
                        all_ok = False
                        log.error(
                            "saga compensation failed", extra={"saga": record.saga_id, "step": step.name}
                        )
                    else:
                        await asyncio.sleep(self.retry_delay * attempt)
            await self._save(record)
        record.state = "compensated" if all_ok else "failed"
        await self._save(record)
