from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chariot_migrate.model import keys, status, tokens
from chariot_migrate.model import query as gq
from chariot_migrate.model.classes import asset_class

segment = st.text(alphabet=st.characters(blacklist_characters="#", blacklist_categories=("Cs",)), min_size=1,
                  max_size=20)
lower_segment = segment.map(str.lower).filter(lambda s: s and s == s.lower() and "#" not in s)


@given(lower_segment, lower_segment)
def test_asset_key_round_trip(dns, name):
    key = keys.asset_key(dns, name)
    parsed = keys.parse_asset_key(key)
    assert keys.asset_key(parsed.dns, parsed.name) == key and key == key.lower()


@given(segment, segment, lower_segment, lower_segment)
def test_attribute_key_round_trip(name, value, dns, asset_name):
    src = keys.asset_key(dns, asset_name)
    key = keys.attribute_key(name, value, src)
    p = keys.parse_attribute_key(key)
    assert (p.name, p.value, p.source) == (name, value, src)


@given(segment, st.from_regex(r"[a-z][a-z0-9 ]{0,15}", fullmatch=True).filter(str.strip))
def test_risk_key_round_trip_and_name_normalisation(dns, name):
    key = keys.risk_key(dns, name)
    p = keys.parse_risk_key(key)
    assert p.dns == dns and " " not in p.name and p.name == p.name.lower()
    assert keys.risk_key(p.dns, p.name) == key  # normalising is idempotent


def test_cve_names_are_uppercased_and_hash_rejected():
    assert keys.risk_key("e.com", "cve-2024-12345") == "#risk#e.com#CVE-2024-12345"
    with pytest.raises(ValueError, match="must not contain '#'"):
        keys.asset_key("a#b", "c")
    assert keys.plural("asset") == "assets" and keys.plural("capability_schedule") == "capabilityschedules"
    assert keys.plural("technology") == "technologies" and keys.plural("key") == "keys"


risk_statuses = st.sampled_from("TOIRD").flatmap(
    lambda s: st.tuples(st.just(s), st.sampled_from("ILMHCE"), st.sampled_from("FSDO") if s == "D" else st.just("")))


@given(risk_statuses)
def test_risk_status_parse_and_priority(parts):
    code = "".join(parts)
    assert status.parse_risk_status(code) == parts
    assert status.risk_priority(code) == {"C": 0, "H": 10, "M": 20, "L": 30, "I": 40, "E": 50}[parts[1]]


@given(st.text(max_size=4))
def test_invalid_risk_status_rejected_with_reason(text):
    if status.is_risk_status(text):
        return
    with pytest.raises(ValueError, match="invalid risk status"):
        status.parse_risk_status(text)
    assert status.risk_priority(text) == 60


def test_status_specifics():
    with pytest.raises(ValueError, match="only deleted"):
        status.parse_risk_status("OHF")
    assert status.job_status("JQ", "2024-05-01T12:00:00Z") == "JQ#2024-05-01T12:00:00Z"
    assert status.job_code("JP#2024") == "JP"
    with pytest.raises(ValueError):
        status.job_status("JX", "t")


@pytest.mark.parametrize("name,cls", [("1.2.3.4", "ipv4"), ("::1", "ipv6"), ("10.0.0.0/8", "cidr"),
                                      ("example.com", "tld"), ("www.example.com", "domain"),
                                      ("123456789012", "aws"), ("s3://bucket", "s3")])
def test_asset_class(name, cls):
    assert asset_class("d", name) == cls


def test_filter_operators_pure():
    e = {"key": "#asset#a#b", "name": "www.Example.com", "priority": 20, "tags": ["web", "prod"], "isInternal": True}
    f = lambda field, op, value, n=False: gq.matches_filter(e, gq.Filter(field=field, operator=op, value=value, **{"not": n}))  # noqa: E731
    assert f("name", "CONTAINS", "example") and not f("name", "CONTAINS", "example", True)
    assert f("priority", "<", 30) and f("priority", ">=", "20") and not f("priority", ">", 20)
    assert f("tags", "=", "web") and f("tags", "IN", ["x", "prod"]) and f("isInternal", "=", True)
    assert f("", "OR", [{"field": "name", "operator": "=", "value": "no"},
                        {"field": "priority", "operator": "=", "value": 20}])
    assert not f("", "AND", [{"field": "name", "operator": "STARTS WITH", "value": "www"},
                             {"field": "name", "operator": "ENDS WITH", "value": ".org"}])
    assert not f("missing", "=", "x") and not f("missing", "<", 5)


@given(st.integers(0, 60), st.integers(1, 15))
def test_paging_covers_every_row_once(n, limit):
    rows = [{"key": f"#asset#d#{i:03d}"} for i in range(n)]
    seen, page = [], 0
    while True:
        chunk, nxt = gq.page_of(rows, page, limit)
        seen += chunk
        if nxt is None:
            break
        page = int(nxt)
    assert seen == rows


def test_tokens_issue_verify_and_jwks():
    key = tokens.generate_signing_key()
    t = tokens.issue("a@b.com", key)
    claims = tokens.verify(t, key.public_pem)
    assert claims["sub"] == claims["email"] == "a@b.com" and claims["exp"] - claims["iat"] == 3600
    import jwt
    assert jwt.get_unverified_header(t)["kid"] == key.kid
    with pytest.raises(tokens.TokenError):
        tokens.verify(t, tokens.generate_signing_key().public_pem)
    with pytest.raises(tokens.TokenError):
        tokens.verify(tokens.issue("a@b.com", key, now=time.time() - 4000), key.public_pem)
    doc = tokens.jwks([key.public_pem])
    assert doc["keys"][0]["kid"] == key.kid and doc["keys"][0]["alg"] == "RS256"
    # the JWKS key verifies the token
    pub = jwt.PyJWK(doc["keys"][0]).key
    assert jwt.decode(t, pub, algorithms=["RS256"], audience="chariot")["sub"] == "a@b.com"
