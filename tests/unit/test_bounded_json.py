"""The bounded JSON loader (issue 15 item 9): depth is measured exactly, strings do not count, and a
document past the bound is a ValueError with the reason — never a RecursionError."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chariot_migrate.bounded_json import MAX_DEPTH, JsonTooDeep, loads, too_deep

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(alphabet="[]{}\"\\ab,:"),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                     max_leaves=40)


def depth(v) -> int:
    if isinstance(v, list):
        return 1 + max((depth(x) for x in v), default=0)
    if isinstance(v, dict):
        return 1 + max((depth(x) for x in v.values()), default=0)
    return 0


@given(doc=_json, limit=st.integers(0, 6), as_bytes=st.booleans())
def test_property_too_deep_is_exactly_depth_over_the_limit(doc, limit, as_bytes):
    text = json.dumps(doc)
    data = text.encode() if as_bytes else text
    assert too_deep(data, limit) == (depth(doc) > limit)
    if depth(doc) > limit:
        with pytest.raises(JsonTooDeep):
            loads(data, max_depth=limit)
    else:
        assert loads(data, max_depth=limit) == doc


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_ten_thousand_levels_are_refused_with_the_reason(opener):
    closer = "]" if opener == "[" else "}"
    deep = opener * 10_000 + "1" + closer * 10_000
    with pytest.raises(ValueError, match=f"deeper than {MAX_DEPTH} levels"):
        loads(deep.encode())
    assert loads(opener * MAX_DEPTH + "1" + closer * MAX_DEPTH) is not None
