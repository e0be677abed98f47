"""Verify's flat-memory core: both sides as streams sorted by key, joined in one pass.

Neither store scans in the order of the *new* key (legacy keys map to new keys arbitrarily), so
each side is written as sorted runs of at most ``run_size`` records to files and the runs are
merged (``heapq.merge``): memory is one run plus one record per run, whatever the data size.
A record is ``(key_id, payload)`` with a JSON-able payload; ``key_id`` is a string both sides
build alike.
"""

from __future__ import annotations

import heapq
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

Record = tuple[str, Any]


def dedupe_last(records: Iterable[Record]) -> Iterator[Record]:
    """A sorted stream with one record per key: the last one (two legacy items mapping to the same
    new key leave the later one, as a dict would)."""
    pending: Record | None = None
    for rec in records:
        if pending is not None and pending[0] != rec[0]:
            yield pending
        pending = rec
    if pending is not None:
        yield pending


def merge_join(left: Iterable[Record], right: Iterable[Record]) -> Iterator[tuple[str, Any, Any]]:
    """``(key_id, left_payload | None, right_payload | None)`` for every key of either sorted,
    duplicate-free stream, in key order (pure)."""
    lit, rit = iter(left), iter(right)
    a, b = next(lit, None), next(rit, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            assert a is not None
            yield a[0], a[1], None
            a = next(lit, None)
        elif a is None or b[0] < a[0]:
            yield b[0], None, b[1]
            b = next(rit, None)
        else:
            yield a[0], a[1], b[1]
            a, b = next(lit, None), next(rit, None)


class RunWriter:
    """Collects records and writes them as sorted JSON-lines runs of at most ``run_size``."""

    def __init__(self, directory: Path, prefix: str, run_size: int = 5_000, runs: list[str] | None = None) -> None:
        self.directory, self.prefix, self.run_size = directory, prefix, run_size
        self.buffer: list[Record] = []
        self.runs: list[str] = list(runs or [])  # a resumed scan keeps the runs it had written

    def add(self, key_id: str, payload: Any) -> None:
        self.buffer.append((key_id, payload))

    @property
    def full(self) -> bool:
        return len(self.buffer) >= self.run_size

    def flush(self) -> str | None:
        """Write the buffer as one sorted run; its file name (None when empty)."""
        if not self.buffer:
            return None
        self.buffer.sort(key=lambda r: r[0])
        name = f"{self.prefix}-{len(self.runs):05d}.jsonl"
        tmp = self.directory / (name + ".tmp")
        with open(tmp, "w") as f:
            for key_id, payload in self.buffer:
                f.write(json.dumps([key_id, payload], separators=(",", ":")) + "\n")
        os.replace(tmp, self.directory / name)  # a run file exists whole or not at all
        self.buffer = []
        self.runs.append(name)
        return name


def _read_run(path: Path) -> Iterator[Record]:
    with open(path) as f:
        for line in f:
            key_id, payload = json.loads(line)
            yield key_id, payload


def merged(directory: Path, runs: Iterable[str]) -> Iterator[Record]:
    """All runs as one sorted stream (stable: equal keys keep run order, so the last run wins)."""
    return heapq.merge(*(_read_run(directory / r) for r in runs), key=lambda r: r[0])
