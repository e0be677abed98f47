import base64
import json
import time

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient
from jwt.algorithms import RSAAlgorithm

from chariot_migrate.services.kit.app import create_service_app
from chariot_migrate.services.kit.auth import (
    Authenticator,
    AuthError,
    Caller,
    KeySource,
    ServiceTokenProvider,
    TokenVerifier,
    caller,
    mint_token,
    require_internal,
    require_role,
)
from chariot_migrate.services.kit.settings import ServiceSettings

ISS, AUD = "chariot-migrate-local", "chariot"


def _keypair():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, pub.decode(), key.public_key()


KEY1 = _keypair()
KEY2 = _keypair()


def jwks(*pairs):
    keys = []
    for kid, (_, _, public) in pairs:
        jwk = json.loads(RSAAlgorithm.to_jwk(public))
        jwk.update(kid=kid, use="sig", alg="RS256")
        keys.append(jwk)
    return {"keys": keys}


def token(kid="k1", key=KEY1, **kw):
    kw.setdefault("subject", "alice@example.com")
    kw.setdefault("issuer", ISS)
    kw.setdefault("audience", AUD)
    return mint_token(key[0], kid=kid, **kw)


def verifier(**kw):
    return TokenVerifier(
        KeySource(jwks=jwks(("k1", KEY1))), issuer=ISS, audiences=[AUD, "chariot-internal"], **kw
    )


async def test_valid_token_verifies_with_static_jwks_and_pem():
    claims = await verifier().verify(token(email="alice@example.com"))
    assert claims["email"] == "alice@example.com"
    pem_verifier = TokenVerifier(KeySource(public_key_pem=KEY1[1]), issuer=ISS, audiences=[AUD])
    assert (await pem_verifier.verify(token(kid=None)))["sub"] == "alice@example.com"


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda: token(ttl=-120), "expired"),
        (lambda: token(now=time.time() + 3600), "not valid yet"),
        (lambda: token(audience="someone-else"), "audience"),
        (lambda: token(issuer="evil"), "issuer"),
        (lambda: token(key=KEY2), "signature"),
        (lambda: token(kid="unknown"), "unknown key"),
        (lambda: "not-a-jwt", "malformed"),
    ],
)
async def test_bad_tokens_are_refused_with_a_reason(make, reason):
    with pytest.raises(AuthError) as err:
        await verifier().verify(make())
    assert err.value.status == 401 and reason in err.value.reason


async def test_alg_none_and_hs256_key_confusion_are_refused():
    claims = {"sub": "mallory", "iss": ISS, "aud": AUD, "exp": int(time.time()) + 60}
    none_token = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(AuthError, match="not allowed"):
        await verifier().verify(none_token)
    # HS256 "signed" with the public key as the HMAC secret: the classic confusion attack.
    header = base64.urlsafe_b64encode(
        json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode()
    ).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    import hashlib
    import hmac

    sig = base64.urlsafe_b64encode(
        hmac.new(KEY1[1].encode(), header + b"." + body, hashlib.sha256).digest()
    ).rstrip(b"=")
    with pytest.raises(AuthError, match="not allowed"):
        await verifier().verify(b".".join([header, body, sig]).decode())


class _CountingDecode:
    """Wraps pyjwt's decode to count real signature checks."""

    def __init__(self, monkeypatch):
        import chariot_migrate.services.kit.auth as auth_mod

        self.calls = 0
        real = auth_mod.jwt.decode

        def counting(*a, **kw):
            self.calls += 1
            return real(*a, **kw)

        monkeypatch.setattr(auth_mod.jwt, "decode", counting)


async def test_a_verified_token_is_remembered_but_never_past_its_expiry(monkeypatch):
    decode = _CountingDecode(monkeypatch)
    now = [time.time()]
    v = verifier(leeway=0, cache_seconds=60, clock=lambda: now[0])
    t = token(ttl=90)
    first = await v.verify(t)
    first["mutated"] = True  # what a caller does to its copy never reaches the cache
    again = await v.verify(t)
    assert decode.calls == 1 and "mutated" not in again and again["sub"] == "alice@example.com"
    now[0] += 61  # the cache's own limit: verified again
    await v.verify(t)
    assert decode.calls == 2
    now[0] += 50  # past exp (90 s), inside the cache time: the claims are not served; pyjwt decides again
    with pytest.raises(AuthError, match="expired"):
        await v.verify(token(ttl=-120))  # (a different, really expired token is refused as before)
    await v.verify(t)
    assert decode.calls == 4


async def test_a_refused_token_is_not_remembered(monkeypatch):
    decode = _CountingDecode(monkeypatch)
    v = verifier()
    bad = token(audience="someone-else")
    for _ in range(2):
        with pytest.raises(AuthError, match="audience"):
            await v.verify(bad)
    assert decode.calls == 2


@respx.mock
async def test_jwks_url_is_cached_and_refreshed_on_unknown_kid():
    route = respx.get("https://idp.test/jwks").mock(
        side_effect=[
            httpx.Response(200, json=jwks(("k1", KEY1))),
            httpx.Response(200, json=jwks(("k2", KEY2))),
        ]
    )
    now = [1000.0]
    source = KeySource(jwks_url="https://idp.test/jwks", min_refresh_seconds=5, clock=lambda: now[0])
    v = TokenVerifier(source, issuer=ISS, audiences=[AUD])
    await v.verify(token())
    await v.verify(token())
    assert route.call_count == 1  # cached
    # Key rotated at the IdP: a token with the new kid triggers one refresh (after min interval).
    with pytest.raises(AuthError, match="unknown key"):
        await v.verify(token(kid="k2", key=KEY2))  # too soon after the last fetch
    now[0] += 10
    assert (await v.verify(token(kid="k2", key=KEY2)))["sub"] == "alice@example.com"
    assert route.call_count == 2


@respx.mock
async def test_jwks_fetch_failure_is_a_401():
    respx.get("https://idp.test/jwks").mock(return_value=httpx.Response(500))
    v = TokenVerifier(KeySource(jwks_url="https://idp.test/jwks"), issuer=ISS, audiences=[AUD])
    with pytest.raises(AuthError, match="cannot fetch signing keys"):
        await v.verify(token())


def _app(membership=None):
    router = APIRouter()

    @router.get("/who")
    async def who(c: Caller = Depends(caller)):
        return {"principal": c.principal, "account": c.account, "role": c.role, "internal": c.internal}

    @router.post("/write")
    async def write(c: Caller = Depends(require_role("analyst"))):
        return {"ok": True}

    @router.post("/internal")
    async def internal(c: Caller = Depends(require_internal)):
        return {"ok": c.principal}

    auth = Authenticator(verifier(), membership)
    app = create_service_app(
        "authtest", settings=ServiceSettings(), routers=[router], authenticator=auth, configure_logging=False
    )
    return TestClient(app)


def bearer(tok, account=None):
    h = {"Authorization": f"Bearer {tok}"}
    if account:
        h["account"] = account
    return h


def test_caller_dependency_and_assume_role():
    roles = {
        ("acme@example.com", "alice@example.com"): "readonly",
        ("corp@example.com", "alice@example.com"): "analyst",
    }

    async def lookup(account, principal):
        return roles.get((account, principal))

    c = _app(lookup)
    alice = token(email="alice@example.com")
    r = c.get("/who", headers=bearer(alice))
    assert r.json() == {
        "principal": "alice@example.com",
        "account": "alice@example.com",
        "role": "admin",
        "internal": False,
    }
    r = c.get("/who", headers=bearer(alice, "acme@example.com"))
    assert r.json()["account"] == "acme@example.com" and r.json()["role"] == "readonly"
    # readonly may not write, analyst may.
    r = c.post("/write", headers=bearer(alice, "acme@example.com"))
    assert r.status_code == 403 and "needs analyst" in r.json()["message"]
    assert c.post("/write", headers=bearer(alice, "corp@example.com")).status_code == 200
    # Not a collaborator → 403 with the reason.
    r = c.get("/who", headers=bearer(alice, "other@example.com"))
    assert r.status_code == 403 and "not a collaborator" in r.json()["message"]


def test_missing_or_bad_authorization_is_401_with_reason():
    c = _app()
    r = c.get("/who")
    assert r.status_code == 401 and "missing Authorization" in r.json()["message"]
    assert r.headers["www-authenticate"] == "Bearer"
    r = c.get("/who", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and "Bearer" in r.json()["message"]
    r = c.get("/who", headers=bearer(token(ttl=-300)))
    assert r.status_code == 401 and "expired" in r.json()["message"]


def test_service_tokens_use_the_internal_audience():
    c = _app()
    provider = ServiceTokenProvider(KEY1[0], service="capabilities", issuer=ISS, kid="k1")
    assert provider() == provider()  # cached
    r = c.get("/who", headers=bearer(provider(), "acme@example.com"))
    assert r.json() == {
        "principal": "capabilities",
        "account": "acme@example.com",
        "role": "admin",
        "internal": True,
    }
    assert c.post("/internal", headers=bearer(provider())).status_code == 200
    r = c.post("/internal", headers=bearer(token()))
    assert r.status_code == 403 and "service-to-service" in r.json()["message"]


def test_require_role_rejects_unknown_roles():
    with pytest.raises(ValueError):
        require_role("superuser")
