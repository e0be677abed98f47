import pytest
from hypothesis import given
from hypothesis import strategies as st

from chariot_migrate.shadow.paths import PathSet, collapse, compile_pattern, render


def test_render_and_collapse():
    assert render(("a", "b", 3, "c")) == "$.a.b[3].c"
    assert render(("a", 3), collapsed=True) == "$.a[*]"
    assert render(("x.y", 0)) == '$["x.y"][0]'
    assert collapse("$.a.b[3].c[10]") == "$.a.b[*].c[*]"
    assert collapse('$["k[1]"][2]') == '$["k[1]"][*]'
    assert collapse("status") == "status"


@pytest.mark.parametrize(
    "pattern,path,expected",
    [
        ("$.items[*].updated", ("items", 4, "updated"), True),
        ("$.items[*].updated", ("items", "x", "updated"), False),
        ("$.items[*].updated", ("items", 4, "updated", "x"), False),
        ("**.requestId", ("requestId",), True),
        ("**.requestId", ("a", 1, "b", "requestId"), True),
        ("$..requestId", ("a", "requestId"), True),
        ("$.a.**", ("a", "b", 2), True),
        ("$.a.*", ("a", "b"), True),
        ("$.a.*", ("a", 1), False),
        ("$.a[2]", ("a", 2), True),
        ("$.a[2]", ("a", 3), False),
        ("$['odd.key']", ("odd.key",), True),
        ("meta.id", ("meta", "id"), True),
        ("**", ("anything", 1), True),
    ],
)
def test_pattern_matching(pattern, path, expected):
    assert PathSet.of([pattern]).matches(path) is expected


@pytest.mark.parametrize("bad", ["", "$.a[", "$.a[x]", "$.a..", "$['a"])
def test_bad_patterns_raise(bad):
    with pytest.raises(ValueError):
        compile_pattern(bad)


keys = st.text("abcxyz_", min_size=1, max_size=3)
segs = st.lists(st.one_of(keys, st.integers(0, 5)), max_size=6)


@given(segs)
def test_collapse_is_idempotent_and_matches_rendered(path):
    s = render(tuple(path))
    assert collapse(collapse(s)) == collapse(s) == render(tuple(path), collapsed=True)
    # A pattern written as the collapsed path matches the concrete path it came from.
    assert PathSet.of([collapse(s)]).matches(tuple(path))
