"""Edge security with no sockets: JWT cases, token buckets, and the edge stages through the
in-process ProxyApp (401/429/431/400/405/CORS, failover marking) with fake sides."""

import base64
import json
import textwrap
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st
from jwt.algorithms import RSAAlgorithm

from chariot_migrate.proxy.app import ProxyApp
from chariot_migrate.proxy.auth import AuthFailure, EdgeAuth, bearer_token
from chariot_migrate.proxy.ratelimit import LocalLimiter, RateLimiters, TokenBucket
from chariot_migrate.proxy.resilience import UpstreamPool
from chariot_migrate.rollout.evidence import StaticDataEvidence
from chariot_migrate.rollout.operations import Operations
from chariot_migrate.rollout.store import open_state_store
from chariot_migrate.routes.loader import load_table
from chariot_migrate.routes.models import AuthConfig
from chariot_migrate.transport import HttpRequest, HttpResponse, UpstreamError


def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def keys():
    return {"k1": _key(), "k2": _key(), "evil": _key()}


def pem(priv) -> bytes:
    return priv.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def jwk(priv, kid):
    d = json.loads(RSAAlgorithm.to_jwk(priv.public_key()))
    return {**d, "kid": kid, "alg": "RS256", "use": "sig"}


def token(priv, kid="k1", **over):
    now = int(time.time())
    claims = {"iss": "chariot-migrate-local", "aud": "chariot", "sub": "a@x.com", "email": "a@x.com",
              "iat": now, "exp": now + 600, **over}
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, priv, algorithm="RS256", headers={"kid": kid})


def unsigned(alg="none", **claims):
    def b64(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    now = int(time.time())
    body = {"iss": "chariot-migrate-local", "aud": "chariot", "sub": "a@x.com", "exp": now + 600, **claims}
    return f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(body)}."


def auth_cfg(**kw):
    return AuthConfig(issuer="chariot-migrate-local", audience="chariot", **kw)


async def reason(auth: EdgeAuth, tok: str) -> str:
    with pytest.raises(AuthFailure) as e:
        await auth.verify(tok)
    return e.value.code


async def test_jwt_valid_forged_expired_wrong_audience_issuer_and_none(tmp_path, keys):
    (tmp_path / "pub.pem").write_bytes(pem(keys["k1"]))
    auth = EdgeAuth(auth_cfg(public_key_file=str(tmp_path / "pub.pem")))
    ok = await auth.verify(token(keys["k1"]))
    assert ok.principal == "a@x.com" and ok.claims["aud"] == "chariot"
    assert await reason(auth, token(keys["evil"])) == "bad_signature"
    assert await reason(auth, token(keys["k1"], exp=int(time.time()) - 3600)) == "expired"
    assert await reason(auth, token(keys["k1"], nbf=int(time.time()) + 3600)) == "not_yet_valid"
    assert await reason(auth, token(keys["k1"], aud="someone-else")) == "wrong_audience"
    assert await reason(auth, token(keys["k1"], iss="evil")) == "wrong_issuer"
    assert await reason(auth, token(keys["k1"], exp=None)) == "missing_claim"
    assert await reason(auth, unsigned("none")) == "bad_algorithm"
    # HS256 "signed" with the public key as the HMAC secret: the classic key-confusion attack.
    hs = jwt.api_jws.PyJWS().encode(json.dumps({"sub": "a@x.com", "exp": int(time.time()) + 60}).encode(),
                                    b"not-a-key-but-the-public-pem-0123456789", algorithm="HS256")
    assert await reason(auth, hs) == "bad_algorithm"
    assert await reason(auth, "garbage") == "malformed"


async def test_verified_tokens_are_cached_until_they_expire(tmp_path, keys):
    (tmp_path / "pub.pem").write_bytes(pem(keys["k1"]))
    now = [time.time()]
    auth = EdgeAuth(auth_cfg(public_key_file=str(tmp_path / "pub.pem"), leeway_s=0), clock=lambda: now[0])
    tok = token(keys["k1"], exp=int(now[0]) + 60)
    await auth.verify(tok)
    auth.keys.pem_key = None  # keys gone: only the cache can still answer
    assert (await auth.verify(tok)).principal == "a@x.com"
    now[0] += 61
    with pytest.raises(AuthFailure):
        await auth.verify(tok)


async def test_unknown_kid_refetches_jwks_once_then_rotation_works(keys):
    served = {"keys": [jwk(keys["k1"], "k1")]}
    fetches = []

    async def fetch(url):
        fetches.append(url)
        return served

    auth = EdgeAuth(auth_cfg(jwks_url="http://jwks.test/keys"), fetch=fetch)
    auth.keys.min_refresh_s = 0.0
    assert (await auth.verify(token(keys["k1"], "k1"))).principal == "a@x.com"
    assert len(fetches) == 1
    assert await reason(auth, token(keys["k2"], "k2")) == "unknown_key"  # not published yet
    served = {"keys": [jwk(keys["k1"], "k1"), jwk(keys["k2"], "k2")]}  # rotation: k2 published
    assert (await auth.verify(token(keys["k2"], "k2", sub="b@x.com", email=None))).principal == "b@x.com"
    assert len(fetches) == 3
    # garbage kids cannot hammer the JWKS endpoint
    auth.keys.min_refresh_s = 60.0
    for i in range(5):
        await reason(auth, token(keys["evil"], f"junk{i}"))
    assert len(fetches) == 3


def test_bearer_token_forms():
    assert bearer_token("Bearer a.b.c") == "a.b.c" and bearer_token("bearer  a.b.c ") == "a.b.c"
    assert bearer_token("a.b.c") == "a.b.c"  # bare token (the legacy authorizer accepts it too)
    assert bearer_token("Basic dXNlcg==") is None and bearer_token(None) is None and bearer_token("x") is None


# ---- token buckets -------------------------------------------------------------------------


@given(rate=st.floats(0.5, 1000), cap=st.integers(1, 100),
       gaps=st.lists(st.floats(0, 2), min_size=1, max_size=200))
def test_token_bucket_never_grants_more_than_burst_plus_refill(rate, cap, gaps):
    now = 0.0
    b = TokenBucket(rate, cap, now)
    granted = 0
    for g in gaps:
        now += g
        wait = b.take(now)
        if wait == 0.0:
            granted += 1
        else:
            assert 0 < wait <= 1 / rate + 1e-9
            # after waiting `wait`, a token is there
            probe = TokenBucket(rate, cap, 0)
            probe.tokens, probe.stamp = b.tokens, b.stamp
            assert probe.take(now + wait + 1e-9) == 0.0
    assert granted <= cap + rate * now + 1e-6


def test_local_limiter_is_per_key_and_bounded():
    t = [0.0]
    lim = LocalLimiter(clock=lambda: t[0], max_keys=4)
    assert [lim.take("a", 1, 2) for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]
    assert lim.take("b", 1, 2) == 0.0  # another key, its own bucket
    for k in "cdefgh":
        lim.take(k, 1, 2)
    assert len(lim._buckets) <= 4


async def test_shared_limiter_fails_open_when_redis_is_down():
    lims = RateLimiters()
    lims.use_store("redis://127.0.0.1:1/0")  # nothing listens there
    assert await lims.take("svc:x", 100, 100) == 0.0  # let through, counted
    assert lims.shared is not None and lims.shared._down_until > 0
    await lims.aclose()


# ---- through the app -----------------------------------------------------------------------

ROUTES = textwrap.dedent("""\
    version: 1
    stage_prefix: /chariot
    bucket_by: [header:account, jwt:email]
    legacy: {{invoker: http, url: "http://127.0.0.1:9"}}
    defaults: {{max_headers: 30, max_header_bytes: 4000, cors_origins: ["https://app.example"],
                account_rate_limit: {{rps: 1, burst: 3}}, failover: true}}
    auth: {{public_key_file: "{pem}", issuer: chariot-migrate-local, audience: chariot}}
    services:
      account: {{phase: 1, url: "http://127.0.0.1:9", dual_write: "on"}}
      risk-assessment: {{phase: 3, url: "http://127.0.0.1:9", dual_write: "on", rate_limit: {{rps: 1, burst: 2}}}}
    routes:
      - {{path: /token, methods: [GET], service: account, public: true}}
      - {{path: /risk, methods: [PUT, DELETE, GET], service: risk-assessment, enforce_methods: true}}
      - {{path: /key, methods: [POST], service: account, enforce_methods: false}}
    """)


class FakeSide:
    def __init__(self, name, fail=None):
        self.name, self.fail, self.seen = name, fail, []

    async def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        self.seen.append(request)
        if self.fail:
            raise UpstreamError(self.fail, f"{self.name} failed")
        return HttpResponse(200, [("content-type", "application/json")],
                            json.dumps({"side": self.name, "principal": request.principal}).encode())

    async def aclose(self):
        pass


@pytest.fixture
async def edge(tmp_path, keys):
    (tmp_path / "pub.pem").write_bytes(pem(keys["k1"]))
    p = tmp_path / "routes.yaml"
    p.write_text(ROUTES.format(pem=tmp_path / "pub.pem"))
    store = open_state_store(f"sqlite:///{tmp_path}/s.db")
    app = ProxyApp(p, store, access_log_enabled=False)
    await app.startup()
    legacy, new = FakeSide("legacy"), FakeSide("new")
    app.transports.legacy = legacy
    app.transports.services["account"] = new
    app.transports.services["risk-assessment"] = UpstreamPool("risk-assessment", "new",
                                                              [("i1", FakeSide("new", fail="connect"))])
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://proxy")
    yield app, client, legacy, new, Operations(store, load_table(p).config, data_evidence=StaticDataEvidence())
    await client.aclose()
    await app.shutdown()


def bearer(keys, **over):
    return {"authorization": "Bearer " + token(keys["k1"], **over)}


async def test_401_reaches_no_upstream_and_public_routes_skip_auth(edge, keys):
    app, client, legacy, new, _ = edge
    for headers, why in [({}, "missing bearer token"), (bearer(keys, exp=int(time.time()) - 99), "token expired"),
                         ({"authorization": "Bearer " + token(keys["evil"])}, "bad signature"),
                         ({"authorization": "Bearer " + unsigned()}, "algorithm 'none' is not allowed"),
                         (bearer(keys, aud="x"), "wrong audience")]:
        r = await client.get("/chariot/risk", headers=headers)
        assert r.status_code == 401 and why in r.json()["error"], (why, r.text)
    assert legacy.seen == [] and new.seen == []
    r = await client.get("/chariot/token")
    assert r.status_code == 200 and r.json()["principal"] is None
    r = await client.get("/chariot/risk", headers={**bearer(keys), "account": "Other@x.com"})
    assert r.status_code == 200 and r.json()["principal"] == "a@x.com"  # the verified principal, not the header


async def test_rate_limits_answer_429_with_retry_after(edge, keys):
    app, client, legacy, new, _ = edge
    # service bucket (burst 2), different accounts so the account bucket is not the one refusing
    codes = [(await client.get("/chariot/risk", headers={**bearer(keys), "account": f"s{i}@x.com"})).status_code
             for i in range(3)]
    assert codes == [200, 200, 429]
    r = await client.get("/chariot/risk", headers={**bearer(keys), "account": "s9@x.com"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert "service risk-assessment" in r.json()["error"]
    # account bucket (burst 3), across services; /token has no service limit
    codes = [(await client.get("/chariot/token", headers={"account": "z@x.com"})).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = await client.get("/chariot/token", headers={"account": "z@x.com"})
    assert r.status_code == 429 and "this account" in r.json()["error"]
    assert (await client.get("/chariot/token", headers={"account": "y@x.com"})).status_code == 200
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("proxy_rate_limited_total", {"service": "account", "scope": "account"}) >= 2


async def test_header_limits_encoded_slash_and_method_allowlist(edge, keys):
    app, client, legacy, new, _ = edge
    r = await client.get("/chariot/token", headers={f"x-h{i}": "v" for i in range(40)})
    assert r.status_code == 431 and "headers" in r.json()["error"]
    r = await client.get("/chariot/token", headers={"x-big": "v" * 5000})
    assert r.status_code == 431
    r = await client.get("/chariot/a%2Fb/token")
    assert r.status_code == 400 and "%2F" in r.json()["error"]
    r = await client.post("/chariot/risk", headers=bearer(keys))
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD, PUT, DELETE"
    r = await client.get("/chariot/key", headers=bearer(keys))  # /key opts out: legacy default
    assert r.status_code == 200 and r.json()["side"] == "legacy"
    r = await client.get("/chariot/unknown/path", headers=bearer(keys))
    assert r.status_code == 200 and r.json()["side"] == "legacy"


async def test_cors_preflight_at_the_edge_and_headers_on_answers(edge, keys):
    app, client, legacy, new, _ = edge
    pre = {"origin": "https://app.example", "access-control-request-method": "PUT",
           "access-control-request-headers": "authorization, account"}
    r = await client.options("/chariot/risk", headers=pre)
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == "https://app.example"
    assert "PUT" in r.headers["access-control-allow-methods"] and r.headers["access-control-allow-headers"]
    r = await client.options("/chariot/risk", headers={**pre, "origin": "https://evil.example"})
    assert r.status_code == 403
    assert legacy.seen == [] and new.seen == []
    r = await client.get("/chariot/token", headers={"origin": "https://app.example"})
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    r = await client.get("/chariot/token", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


async def test_failover_marks_the_response_and_counts(edge, keys):
    app, client, legacy, new, ops = edge
    ops.shift("risk-assessment", 100)
    await app.state.poll()
    r = await client.get("/chariot/risk", headers=bearer(keys))
    assert r.status_code == 200 and r.json()["side"] == "legacy"
    assert r.headers["x-migrate-side"] == "legacy" and r.headers["x-migrate-failover"] == "connect"
    r = await client.put("/chariot/risk", headers=bearer(keys))  # a write is never failed over
    assert r.status_code == 502 and r.json()["side"] == "new" and "x-migrate-failover" not in r.headers
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("proxy_failovers_total",
                                     {"service": "risk-assessment", "reason": "connect"}) >= 1
