"""Verify's merge-join: sorted runs on disk merged in key order give exactly the right
missing / extra / differing keys, whatever the key sets and the run size."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from chariot_migrate.dual_write.merge_join import RunWriter, dedupe_last, merge_join, merged

keys = st.text(alphabet="ab#c1", min_size=1, max_size=4)


def _runs(directory: Path, prefix: str, records: list[tuple[str, int]], run_size: int) -> list[str]:
    w = RunWriter(directory, prefix, run_size)
    for k, v in records:
        w.add(k, v)
        if w.full:
            w.flush()
    w.flush()
    return w.runs


@settings(max_examples=60, deadline=None)
@given(left=st.dictionaries(keys, st.integers(0, 3), max_size=40),
       right=st.dictionaries(keys, st.integers(0, 3), max_size=40),
       run_size=st.integers(1, 7), data=st.data())
def test_merge_join_over_sorted_runs_finds_exactly_the_differences(left, right, run_size, data):
    # Scan order is arbitrary: shuffle both sides before they become runs.
    lrec = data.draw(st.permutations(sorted(left.items())))
    rrec = data.draw(st.permutations(sorted(right.items())))
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        joined = list(merge_join(dedupe_last(merged(root, _runs(root, "l", lrec, run_size))),
                                 merged(root, _runs(root, "r", rrec, run_size))))
    assert [k for k, _, _ in joined] == sorted(set(left) | set(right))  # every key once, in key order
    assert {k for k, _, b in joined if b is None} == set(left) - set(right)  # missing in new
    assert {k for k, a, _ in joined if a is None} == set(right) - set(left)  # missing in legacy
    assert {k for k, a, b in joined if a is not None and b is not None and a != b} == \
        {k for k in set(left) & set(right) if left[k] != right[k]}


def test_duplicate_keys_keep_the_last_record_and_runs_never_hold_more_than_their_size(tmp_path):
    w = RunWriter(tmp_path, "x", run_size=2)
    for k, v in [("b", 1), ("a", 1), ("b", 2)]:
        w.add(k, v)
        assert len(w.buffer) <= 2
        if w.full:
            w.flush()
    w.flush()
    assert list(dedupe_last(merged(tmp_path, w.runs))) == [("a", 1), ("b", 2)]
    assert RunWriter(tmp_path, "y").flush() is None
