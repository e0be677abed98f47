import json

from chariot_migrate.redact import (
    REDACTED,
    redact_body,
    redact_headers,
    redact_known,
    redact_path,
    redact_path_value,
    redact_query,
    redact_text,
    redact_value,
    secrets_in,
)

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZUBleGFtcGxlLmNvbSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def test_headers():
    hs = redact_headers([
        ("authorization", "Bearer abc"), ("cookie", "s=1"), ("set-cookie", "s=2"), ("x-guard-api-key-secret", "k"),
        ("x-api-key", "k2"), ("x-session-token", "t"), ("account", "bob@example.com"), ("x-note", f"see {JWT}"),
    ])
    d = dict(hs)
    for name in ("authorization", "cookie", "set-cookie", "x-guard-api-key-secret", "x-api-key", "x-session-token"):
        assert d[name] == REDACTED
    assert d["account"] == "bob@example.com"
    assert d["x-note"] == f"see {REDACTED}"


def test_query():
    q = redact_query(f"key=%23asset%23x&token=abc&ApiKey=zz&jwt={JWT}&page=2")
    assert "abc" not in q and "zz" not in q and JWT not in q
    assert "key=%23asset%23x" in q and "page=2" in q
    assert redact_query("") == ""


def test_values_bodies_and_text():
    doc = {"user": {"password": "hunter2", "name": "a"}, "items": [{"refresh_token": "r"}, JWT], "credentials": {"a": 1}}
    out = redact_value(doc)
    assert out == {"user": {"password": REDACTED, "name": "a"}, "items": [{"refresh_token": REDACTED}, REDACTED],
                   "credentials": REDACTED}
    body = redact_body(json.dumps(doc).encode())
    assert "hunter2" not in body and JWT not in body
    assert redact_text("password=hunter2&user=x") == f"password={REDACTED}&user=x"
    assert redact_text('{"secret": "s3", broken') == f'{{"secret": "{REDACTED}", broken'
    assert redact_text("Authorization: Bearer abc.def") .count("abc.def") == 0


def test_truncation_happens_after_redaction():
    body = json.dumps({"x": "a" * 100, "token": "t" * 100}).encode()
    out = redact_body(body, limit=50)
    assert "t" * 20 not in out and "truncated" in out


def test_path_values():
    assert redact_path_value("$.apiKeys[*].secret", "s") == REDACTED
    assert redact_path_value("header:authorization", "Bearer x") == REDACTED
    assert redact_path_value("$.name", "plain") == "plain"
    assert redact_path_value("$.note", JWT) == REDACTED


PIN = "7e97c5a8-6d06-4173-a714-15a969036d83"


def test_a_credential_in_a_path_parameter_or_a_composite_key():
    assert redact_path(f"/hook/ZGVtbw/{PIN}", {"principal": "ZGVtbw", "pin": PIN}) == f"/hook/ZGVtbw/{REDACTED}"
    assert redact_path("/account/bob@example.com", {"member": "bob@example.com"}) == "/account/bob@example.com"
    # A webhook row: the pin in the key names it; the same value under `value` goes too.
    row = {"key": f"#account#demo@example.com#hook#{PIN}", "value": PIN, "member": "hook"}
    out = json.loads(redact_body(json.dumps([row]).encode()))[0]
    assert out == {"key": f"#account#demo@example.com#hook#{REDACTED}", "value": REDACTED, "member": "hook"}
    # …also when the value sits in another part of the record (a request body next to the answer).
    known = secrets_in('{"value": "x"}', json.dumps(row))
    assert known == {PIN} and redact_known({"value": PIN, "n": [f"a {PIN}"]}, known) == {"value": REDACTED,
                                                                                           "n": [f"a {REDACTED}"]}
    # Ordinary keys and names that merely contain the letters stay.
    assert redact_text("#asset#spin.example.com#10.0.0.1") == "#asset#spin.example.com#10.0.0.1"
    assert redact_value({"pin": "1234", "spinner": "x", "webhook": "https://h/x"}) == {
        "pin": REDACTED, "spinner": "x", "webhook": REDACTED}
