"""Invariant: after any sequence of status changes, each ``#statistic#my#status:<S>#total`` row
counts exactly the entities whose current status is S (the running totals never drift)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from chariot_migrate.model.statistics import record_status


class FakeStats:
    """In-memory stand-in for the statistics table (counters + daily rows)."""

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self.rows: dict[str, dict] = {}

    def add_counter(self, username: str, key: str, delta: int, attrs: dict) -> int:
        self.counters[key] += delta
        return self.counters[key]

    def put(self, item: dict) -> dict:
        self.rows[item["key"]] = item
        return item


STATUSES = st.sampled_from(["A", "P", "F", "FR", "D", "AH"])


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 4), STATUSES), max_size=40))
def test_totals_equal_current_status_counts(changes):
    stats, current = FakeStats(), {}
    for i, (entity, status) in enumerate(changes):
        now = f"2026-01-{1 + i // 10:02d}T00:00:{i % 60:02d}Z"
        record_status(stats, "u", "asset", current.get(entity), status, now)  # type: ignore[arg-type]
        current[entity] = status
    want = Counter(current.values())
    got = {k.split(":")[1].split("#")[0]: v for k, v in stats.counters.items() if k.endswith("#total") and v}
    assert got == dict(want)
    # each day's snapshot row carries the total as it was at that moment, never negative
    assert all(row["data"]["count"] >= 0 for row in stats.rows.values())
