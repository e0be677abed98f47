"""model/assets.py: the asset row rules that legacy and asset-discovery share (one copy)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chariot_migrate.model import assets
from chariot_migrate.model.errors import ApiError
from chariot_migrate.model.files import checked_name

NOW = "2026-12-03T10:00:00Z"


def test_a_new_asset_row_is_shaped_as_legacy_stores_it():
    row = assets.new_asset("acct@x.com", "bob@x.com", "#asset#Ex.com#Ex.com", "Ex.com", "Ex.com", NOW,
                           status=None, source="self", surface=["", "internal"], kind="asset", origin="",
                           capability="nuclei", comment="first", created=NOW, extra={"tags": ["t"]})
    assert (row["username"], row["dns"], row["name"], row["status"]) == ("acct@x.com", "ex.com", "ex.com", "A")
    assert row["attackSurface"] == ["internal"] and row["isInternal"] and not row["isExternal"]
    assert row["capability"] == ["nuclei"] and row["origin"] == "self" and row["tags"] == ["t"]
    assert row["history"][0]["to"] == "A" and row["history"][0]["by"] == "bob@x.com"


def test_an_asset_seen_again_keeps_its_history_and_leaves_the_stored_row_alone():
    first = assets.new_asset("a", "p", "#asset#x#x", "x", "x", NOW, status="A", source="self", surface=None,
                             kind="asset", origin="", capability="", comment=None, created=NOW, extra=None)
    later = "2026-12-03T11:00:00Z"
    again = assets.merge_asset(first, "q", later, status="F", surface=["cloud"], capability="whois",
                               comment="frozen", extra=None)
    assert [h["to"] for h in again["history"]] == ["A", "F"] and again["status"] == "F"
    assert again["attackSurface"] == ["cloud", "external"] and again["capability"] == ["whois"]
    assert again["updated"] == again["visited"] == later
    assert [h["to"] for h in first["history"]] == ["A"] and first["status"] == "A"  # not mutated


@given(st.one_of(st.none(), st.lists(st.text(max_size=5), max_size=4)), st.one_of(st.none(), st.text(max_size=5)))
def test_update_fields_writes_only_what_was_given(surface, secret):
    got = assets.update_fields(surface, secret)
    if surface is None and secret is None:
        assert got is None
        return
    assert got is not None
    assert ("attackSurface" in got) == (surface is not None) and ("secret" in got) == (secret is not None)
    if surface is not None:
        assert got["attackSurface"] == [s for s in surface if s]


def test_checked_name_refuses_what_cannot_be_a_path():
    assert checked_name("home/report.pdf") == "home/report.pdf"
    for bad in (None, "", "/etc/passwd", "a/../b", "a\x01b"):
        with pytest.raises(ApiError) as e:
            checked_name(bad)
        assert e.value.status == 400
