import pytest
from pydantic import ValidationError

from chariot_migrate.shadow.config import ShadowConfig
from chariot_migrate.shadow.diff import diff
from chariot_migrate.shadow.normalise import from_http


def test_routes_yaml_shadow_section_merges_per_route_rules():
    cfg = ShadowConfig.from_section({
        "store": "redis://127.0.0.1:6379/0",
        "noise_sample_rate": 0.2,
        "rules": {"ignore": ["**.requestId"]},
        "routes": {"GET /asset": {"unordered": ["$.assets"], "abs_tolerance": 0.01}},
    })
    r = cfg.rules_for("GET /asset")
    assert r.ignore == ["**.requestId"] and r.unordered == ["$.assets"] and r.abs_tolerance == 0.01
    assert cfg.rules_for("GET /asset") is r  # merged and compiled once
    assert cfg.rules_for("GET /other") is cfg.rules
    a = from_http(200, [], b'{"requestId": "1", "assets": [1, 2], "v": 1.0}', r)
    b = from_http(200, [], b'{"requestId": "2", "assets": [2, 1], "v": 1.005}', r)
    assert diff(a, b, r) == []
    assert ShadowConfig.from_section(None).noise_sample_rate == 0.1


@pytest.mark.parametrize("bad", [{"rulez": {}}, {"noise_sample_rate": 2}, {"routes": {"GET /a": {"ignore": ["$.a["]}}}])
def test_bad_sections_are_rejected(bad):
    with pytest.raises(ValidationError):
        ShadowConfig.from_section(bad)
