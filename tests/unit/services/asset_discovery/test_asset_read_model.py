"""The read-model fold keeps the newest version whatever order events arrive in (property)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chariot_migrate.services.kit.graph.readmodel import newer, version_of


def _versions(n: int) -> list[dict]:
    # n successive writes of one entity: the second ticks sometimes, history grows on each status change
    out, second, history = [], 0, []
    for i in range(n):
        second += i % 3 == 0
        history = [*history, {"to": str(i)}]
        out.append({"key": "#risk#a#b", "updated": f"2026-01-01T00:00:{second:02d}Z", "history": history,
                    "status": f"T{i}"})
    return out


@given(st.integers(min_value=1, max_value=12).flatmap(
    lambda n: st.tuples(st.just(n), st.lists(st.integers(0, n - 1), min_size=1, max_size=30))))
def test_fold_converges_to_the_latest_version(case):
    n, order = case
    versions = _versions(n)
    current = None
    for i in [*order, n - 1]:  # any arrival order (duplicates included) that contains the latest
        if newer(versions[i], current):
            current = versions[i]
    assert current == versions[n - 1]


def test_version_order_examples():
    assert version_of({"updated": "b", "history": []}) > version_of({"updated": "a", "history": [1, 2]})
    assert version_of({"updated": "a", "history": [1, 2]}) > version_of({"updated": "a", "history": [1]})
    assert newer({"updated": "a"}, None) and newer({"updated": "a"}, {"updated": "a"})
