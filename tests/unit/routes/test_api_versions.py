"""API versions at the edge: /api/<version>/… prefixes, /internal/api, Deprecation/Sunset headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chariot_migrate.routes.matcher import RequestPath, RequestView, RouteTable, split_raw_path, split_version
from chariot_migrate.routes.models import Deprecation, RoutesFile


def _table(routes: list[dict]) -> RouteTable:
    return RouteTable(RoutesFile.model_validate({"version": 1, "legacy": {"invoker": "http", "url": "http://127.0.0.1:9"},
                                                "services": {"a": {"phase": 1}}, "routes": routes}))


def test_v1_prefix_is_taken_off_both_forms_later_versions_keep_it_for_the_upstream():
    rp, _ = split_raw_path("/chariot/api/v1/my%20x", "/chariot")
    assert split_version(rp) == (RequestPath("/my x", "/my%20x"), "v1")
    rp, _ = split_raw_path("/api/v2/my", "")
    assert split_version(rp) == (RequestPath("/my", "/api/v2/my"), "v2")
    assert split_version(RequestPath("/my", "/my")) == (RequestPath("/my", "/my"), None)
    assert split_version(RequestPath("/api/vx/my", "/api/vx/my"))[1] is None  # not a version: a path


@pytest.mark.parametrize("path", ["/internal/api/entities", "/internal/api", "/internal/api/"])
def test_the_internal_api_is_never_routed(path):
    rp, _ = split_raw_path(path)
    assert split_version(rp) == (None, None)


@given(st.lists(st.sampled_from(["a", "my", "api", "v1", "v2", "internal", "x%2Fy"]), max_size=5))
def test_splitting_keeps_the_rest_of_the_path_byte_for_byte(segs):
    rp, _ = split_raw_path("/" + "/".join(segs))
    out, version = split_version(rp)
    if out is None:
        assert segs[:2] == ["internal", "api"]
    elif version == "v1":
        assert out.raw == "/" + "/".join(segs[2:])
    else:
        assert out.raw == rp.raw


def test_routes_answer_only_their_versions_and_the_table_names_them():
    t = _table([{"path": "/my", "methods": ["GET"], "service": "a"},
                {"path": "/my", "methods": ["GET"], "service": "a", "versions": ["v2"], "name": "cursor /my"},
                {"path": "/schema", "methods": ["GET"], "service": "a", "versions": ["v1", "v2"]}])
    assert t.match(RequestView("GET", "/my")).route.versions == {"v1"}
    assert t.match(RequestView("GET", "/my", version="v2")).route.id == "cursor /my"
    assert t.match(RequestView("GET", "/my", version="v3")) is None
    assert t.versions_of(RequestView("GET", "/my", version="v3")) == ["v1", "v2"]
    assert t.versions_of(RequestView("POST", "/my", version="v3")) == []


def test_same_route_in_disjoint_versions_is_not_ambiguous_but_overlapping_is():
    _table([{"path": "/x", "methods": ["GET"], "service": "a", "versions": ["v1"]},
            {"path": "/x", "methods": ["GET"], "service": "a", "versions": ["v2"]}])
    with pytest.raises(Exception, match="match the same requests"):
        _table([{"path": "/x", "methods": ["GET"], "service": "a", "versions": ["v1", "v2"]},
                {"path": "/x", "methods": ["GET"], "service": "a", "versions": ["v2"]}])


def test_bad_versions_are_refused():
    with pytest.raises(ValueError, match="versions are v1, v2"):
        _table([{"path": "/x", "methods": ["GET"], "service": "a", "versions": ["1"]}])


def test_deprecation_headers_follow_rfc_9745_and_8594():
    d = Deprecation(since="2026-12-01", sunset="2027-06-30", link="https://docs.example.com/v2")
    assert d.headers() == (("deprecation", "@1796083200"), ("sunset", "Wed, 30 Jun 2027 00:00:00 GMT"),
                           ("link", '<https://docs.example.com/v2>; rel="deprecation"'))
    assert Deprecation().headers() == (("deprecation", "true"),)
    with pytest.raises(ValueError, match="not a date"):
        Deprecation(sunset="next year")
