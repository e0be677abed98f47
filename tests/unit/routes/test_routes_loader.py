import textwrap

import pytest

from chariot_migrate.routes.loader import RoutesError, compile_routes, load_table, parse_routes

GOOD = textwrap.dedent("""\
    version: 1
    stage_prefix: /chariot
    legacy: {invoker: http, url: "http://127.0.0.1:9000"}
    services:
      account: {phase: 1, url: "http://127.0.0.1:9101", slo: {p95_ms: 100}}
    routes:
      - {path: /token, methods: [GET], service: account, function: chariot-token, public: true}
      - {path: /key, methods: [POST, DELETE], service: account}
    """)


def load(text, tmp_path):
    p = tmp_path / "routes.yaml"
    p.write_text(text)
    return load_table(p)


def error_of(text, tmp_path):
    with pytest.raises(RoutesError) as e:
        load(text, tmp_path)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_good_file_loads(tmp_path):
    t = load(GOOD, tmp_path)
    assert [r.template for r in t.routes] == ["/token", "/key"]


def test_unknown_service_names_line_and_known_services(tmp_path):
    msg = error_of(GOOD.replace("service: account}", "service: acount}"), tmp_path)
    assert ":8:" in msg and "routes[1].service" in msg and "'acount'" in msg and "known: account" in msg


def test_bad_percent(tmp_path):
    msg = error_of(GOOD.replace("slo: {p95_ms: 100}", "percent: 150"), tmp_path)
    assert ":5:" in msg and "services.account.percent" in msg


def test_percent_off_the_grid(tmp_path):
    msg = error_of(GOOD.replace("slo: {p95_ms: 100}", "percent: 0.001"), tmp_path)
    assert "0.01 steps" in msg


def test_unknown_key_is_a_typo(tmp_path):
    msg = error_of(GOOD.replace("public: true", "pubic: true"), tmp_path)
    assert ":7:" in msg and "unknown key 'pubic'" in msg


def test_bad_regex(tmp_path):
    bad = GOOD.replace("service: account}", "service: account, match: {query: {key: '^(#job'}}}")
    msg = error_of(bad, tmp_path)
    assert "bad regex" in msg and ":8:" in msg


def test_two_routes_matching_the_same_requests(tmp_path):
    dup = GOOD + "  - {path: /key, methods: [DELETE], service: account}\n"
    msg = error_of(dup, tmp_path)
    assert "routes[1] and routes[2] match the same requests" in msg and ":9:" in msg and "line 8" in msg


def test_same_path_with_different_predicates_is_fine(tmp_path):
    ok = GOOD + "  - {path: /key, methods: [DELETE], service: account, match: {query: {a: x}}}\n"
    assert len(load(ok, tmp_path).routes) == 3


def test_not_yaml(tmp_path):
    msg = error_of("version: 1\nlegacy: [unclosed\n", tmp_path)
    assert "not valid YAML" in msg


def test_http_legacy_needs_url(tmp_path):
    msg = error_of(GOOD.replace('legacy: {invoker: http, url: "http://127.0.0.1:9000"}', "legacy: {invoker: http}"),
                   tmp_path)
    assert "legacy" in msg and "needs legacy.url" in msg


def test_bad_path_template(tmp_path):
    msg = error_of(GOOD.replace("path: /key", "path: key"), tmp_path)
    assert "path template" in msg


def test_missing_file(tmp_path):
    with pytest.raises(RoutesError, match="cannot read"):
        load_table(tmp_path / "nope.yaml")


def test_parse_then_compile_separately():
    cfg = parse_routes(GOOD)
    assert compile_routes(cfg, GOOD).routes[0].public


def test_repository_routes_yaml_is_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    t = load_table(root / "routes.yaml")
    assert len(t.config.services) == 8
