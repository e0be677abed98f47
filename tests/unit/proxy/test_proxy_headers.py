import base64
import json

from chariot_migrate.proxy.headers import (
    bucket_key,
    correlation_id,
    downstream_response_headers,
    traceparent,
    upstream_request_headers,
)


def jwt(claims):
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")  # noqa: E731
    return f"{enc({'alg': 'RS256'})}.{enc(claims)}.sig"


def test_hop_by_hop_and_connection_listed_headers_are_dropped():
    h = [("host", "a"), ("connection", "keep-alive, x-private"), ("x-private", "1"), ("keep-alive", "5"),
         ("te", "trailers"), ("transfer-encoding", "chunked"), ("content-length", "3"), ("x-migrate-token", "t"),
         ("x-migrate-target", "new"), ("account", "a@b.c"), ("authorization", "Bearer x")]
    out = dict(upstream_request_headers(h, client_ip="10.0.0.1", scheme="https", host="api", correlation_id="c",
                                        traceparent="tp"))
    assert "x-private" not in out and "connection" not in out and "te" not in out and "x-migrate-token" not in out
    assert "x-migrate-target" not in out and "host" not in out
    assert out["account"] == "a@b.c" and out["authorization"] == "Bearer x"
    assert out["x-forwarded-for"] == "10.0.0.1" and out["x-forwarded-proto"] == "https" and out["x-forwarded-host"] == "api"
    assert out["x-correlation-id"] == "c" and out["traceparent"] == "tp"


def test_x_forwarded_for_is_appended():
    out = dict(upstream_request_headers([("x-forwarded-for", "1.1.1.1")], client_ip="2.2.2.2", scheme="http",
                                        host=None, correlation_id="c", traceparent="t"))
    assert out["x-forwarded-for"] == "1.1.1.1, 2.2.2.2"


def test_response_keeps_content_length_drops_transfer_encoding():
    out = dict(downstream_response_headers([("content-length", "5"), ("transfer-encoding", "chunked"),
                                            ("connection", "close"), ("set-cookie", "a=1")]))
    assert out == {"content-length": "5", "set-cookie": "a=1"}


def test_traceparent_propagates_trace_id_with_new_span():
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    out = traceparent({"traceparent": tp})
    assert out.split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736" and out.split("-")[2] != "00f067aa0ba902b7"
    fresh = traceparent({"traceparent": "garbage"})
    assert len(fresh.split("-")[1]) == 32


def test_correlation_id_kept_or_created():
    assert correlation_id({"x-correlation-id": "abc"}) == "abc"
    assert len(correlation_id({"x-correlation-id": "x" * 500})) == 32
    assert correlation_id({}) != correlation_id({})


def test_bucket_key_first_present_source_wins():
    by = ["header:account", "jwt:email", "header:x-guard-api-key-id"]
    tok = jwt({"email": "Bob@Example.com"})
    assert bucket_key(by, {"account": "Cust@Example.com", "authorization": f"Bearer {tok}"}, lambda n: None) == "cust@example.com"
    assert bucket_key(by, {"authorization": f"Bearer {tok}"}, lambda n: None) == "bob@example.com"
    assert bucket_key(by, {"x-guard-api-key-id": "K1"}, lambda n: None) == "k1"
    assert bucket_key(by, {"authorization": "Bearer not-a-jwt"}, lambda n: None) is None
    assert bucket_key(["query:tenant"], {}, lambda n: "T" if n == "tenant" else None) == "t"


def test_path_account_buckets_inbound_hooks_by_their_principal_but_is_no_identity():
    import base64

    from hypothesis import given
    from hypothesis import strategies as hs

    from chariot_migrate.proxy.headers import bucket_key, path_account

    by = ["header:account", "path:principal:base64url"]
    principal = base64.b64encode(b"Demo@Example.com").decode().rstrip("=")
    assert path_account(by, {"principal": principal, "pin": "x"}) == "demo@example.com"
    assert path_account(by, {"principal": "%%%not-base64"}) is None
    assert path_account(["path:member"], {"member": "Someone"}) == "someone"
    assert bucket_key(by, {}, lambda _: None) is None  # headers/claims/query only: path needs a match

    @given(hs.emails())
    def round_trip(email):
        enc = base64.b64encode(email.encode()).decode().rstrip("=")
        assert path_account(by, {"principal": enc}) == email.strip().lower()

    round_trip()
