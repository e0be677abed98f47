"""Two-phase commit coordinator with a decision log.

Phase 1: every participant prepares (concurrently, bounded by a timeout). Any "no", error or
timeout → the decision is ABORT and every participant that may have prepared is told to abort.
Phase 2: the decision COMMIT is logged *before* any commit is sent; commits are then retried
until each participant acknowledges. ``recover()`` re-drives undelivered decisions after a
coordinator restart (the decision log is the source of truth).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

log = logging.getLogger("chariot.kit.two_phase")
Decision = Literal["commit", "abort"]
TxState = Literal["preparing", "committing", "committed", "aborting", "aborted"]


class Participant(Protocol):
    name: str

    async def prepare(self, txid: str) -> bool: ...

    async def commit(self, txid: str) -> None: ...

    async def abort(self, txid: str) -> None: ...


@dataclass
class TxRecord:
    txid: str
    participants: list[str]
    state: TxState = "preparing"
    decision: Decision | None = None
    votes: dict[str, str] = field(default_factory=dict)  # name → yes | no | error: … | timeout
    acknowledged: list[str] = field(default_factory=list)


class DecisionLog(Protocol):
    async def write(self, record: TxRecord) -> None: ...

    async def unfinished(self) -> list[TxRecord]: ...


class MemoryDecisionLog:
    def __init__(self) -> None:
        self.records: dict[str, TxRecord] = {}
        self.entries: list[tuple[str, str]] = []  # (txid, state) in write order

    async def write(self, record: TxRecord) -> None:
        self.records[record.txid] = TxRecord(
            record.txid,
            list(record.participants),
            record.state,
            record.decision,
            dict(record.votes),
            list(record.acknowledged),
        )
        self.entries.append((record.txid, record.state))

    async def unfinished(self) -> list[TxRecord]:
        return [r for r in self.records.values() if r.state in ("preparing", "committing", "aborting")]


class TransactionAborted(Exception):
    def __init__(self, record: TxRecord) -> None:
        super().__init__(f"transaction {record.txid} aborted: votes {record.votes}")
        self.record = record


class TwoPhaseCoordinator:
    def __init__(
        self,
        log: DecisionLog | None = None,
        *,
        prepare_timeout: float = 5.0,
        retry_base: float = 0.05,
        retry_cap: float = 2.0,
        max_commit_attempts: int | None = None,  # None: retry until acknowledged
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.log = log or MemoryDecisionLog()
        self.prepare_timeout = prepare_timeout
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.max_commit_attempts = max_commit_attempts
        self._sleep = sleep

    async def execute(self, participants: Sequence[Participant], *, txid: str | None = None) -> TxRecord:
        """Run one transaction; returns the committed record or raises :class:`TransactionAborted`."""
        names = [p.name for p in participants]
        if len(set(names)) != len(names):
            raise ValueError("participant names must be unique")
        record = TxRecord(txid or str(uuid.uuid4()), names)
        await self.log.write(record)
        votes = await asyncio.gather(*(self._prepare(p, record.txid) for p in participants))
        record.votes = dict(zip(names, votes, strict=True))
        if all(v == "yes" for v in votes):
            record.state, record.decision = "committing", "commit"
            await self.log.write(record)  # the decision is durable before anyone hears it
            await self._finish(record, participants)
            return record
        record.state, record.decision = "aborting", "abort"
        await self.log.write(record)
        # Abort everyone who said yes or did not answer: a timed-out participant may have
        # prepared late. "no" voters have nothing to undo.
        await self._finish(record, [p for p in participants if record.votes[p.name] != "no"])
        raise TransactionAborted(record)

    async def _prepare(self, p: Participant, txid: str) -> str:
        try:
            ok = await asyncio.wait_for(p.prepare(txid), self.prepare_timeout)
        except TimeoutError:
            return "timeout"
        except Exception as exc:
            return f"error: {type(exc).__name__}: {exc}"
        return "yes" if ok else "no"

    async def _finish(self, record: TxRecord, participants: Sequence[Participant]) -> None:
        await asyncio.gather(
            *(self._deliver(record, p) for p in participants if p.name not in record.acknowledged)
        )
        record.state = "committed" if record.decision == "commit" else "aborted"
        await self.log.write(record)

    async def _deliver(self, record: TxRecord, p: Participant) -> None:
        attempt = 0
        while True:
            try:
                if record.decision == "commit":
                    await p.commit(record.txid)
                else:
                    await p.abort(record.txid)
                record.acknowledged.append(p.name)
                await self.log.write(record)  # logged acks: recovery does not resend them
                return
            except Exception as exc:
                attempt += 1
                log.warning(
                    "2pc delivery failed",
                    extra={
                        "txid": record.txid,
                        "participant": p.name,
                        "decision": record.decision,
                        "attempt": attempt,
                    },
                )
                if self.max_commit_attempts is not None and attempt >= self.max_commit_attempts:
                    raise RuntimeError(
                        f"{p.name} did not acknowledge {record.decision} of {record.txid}; recover() will retry"
                    ) from exc
                await self._sleep(min(self.retry_cap, self.retry_base * 2 ** min(attempt, 16)))

    async def recover(self, participants: Sequence[Participant]) -> list[TxRecord]:
        """Re-deliver logged decisions that were not acknowledged by everyone (after a crash)."""
        by_name: dict[str, Any] = {p.name: p for p in participants}
        finished = []
        for record in await self.log.unfinished():
            if record.decision is None:  # died before deciding: presumed abort
                record.state, record.decision = "aborting", "abort"
                await self.log.write(record)
            targets = [by_name[n] for n in record.participants if n in by_name]
            if record.decision == "abort":
                targets = [p for p in targets if record.votes.get(p.name) != "no"]
            await self._finish(record, targets)
            finished.append(record)
        return finished
