"""The identity service on loopback: tokens, the JWKS, rotation, introspection, quotas.

Real processes (`LocalService`), real keys: a token the service issues verifies
with PyJWT against the JWKS it publishes; rotation and minting are on the
control socket only; introspection tells good tokens from bad ones; the quota
counter lets `burst` requests through and then `rate` a second.
"""

import json
import time
import urllib.parse

import jwt
import pytest
from test_services_support import Service, post_json, request

from kit.control import call, protocol

pytestmark = pytest.mark.loopback


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    service = Service(
        "identity", "--issuer", "https://id.test", workdir=tmp_path_factory.mktemp("id")
    )
    yield service
    service.stop()


def jwks(idp) -> tuple[dict, str]:
    reply = request(idp, "/.well-known/jwks.json")
    assert reply.status == 200
    return reply.json(), reply.headers["Cache-Control"]


def key_for(keys: dict, token: str):
    kid = jwt.get_unverified_header(token)["kid"]
    found = [k for k in keys["keys"] if k["kid"] == kid]
    return jwt.PyJWK(found[0]).key if found else None


def introspect(idp, token: str) -> dict:
    body = urllib.parse.urlencode({"token": token}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return request(idp, "/introspect", "POST", headers, body).json()


def test_a_token_verifies_against_the_published_keys(idp):
    token = post_json(idp.url, "/token", {"sub": "ada"}).json()["access_token"]
    keys, cache_control = jwks(idp)
    assert cache_control.startswith("public, max-age=")
    claims = jwt.decode(
        token, key_for(keys, token), algorithms=["RS256"], audience="api", issuer="https://id.test"
    )
    assert claims["sub"] == "ada" and claims["exp"] > time.time()
    assert post_json(idp.url, "/token", {"sub": 3}).status == 400
    assert introspect(idp, token)["active"] is True


def test_rotation_and_minting_are_control_plane_only(idp):
    for path in (protocol.IDENTITY_ROTATE, protocol.IDENTITY_TOKEN, protocol.IDENTITY_KEYS):
        assert request(idp, path, "POST").status == 404
    before = call(idp.control, "GET", protocol.IDENTITY_KEYS)["signing"]
    new = call(idp.control, "POST", protocol.IDENTITY_ROTATE, {})["kid"]
    assert new != before
    kids = [k["kid"] for k in jwks(idp)[0]["keys"]]
    assert kids == [before, new]  # the old key stays published for tokens still out there
    token = call(idp.control, "POST", protocol.IDENTITY_TOKEN, {"claims": {"sub": "bo"}})["token"]
    assert jwt.get_unverified_header(token)["kid"] == new
    call(idp.control, "POST", protocol.IDENTITY_ROTATE, {"retire_old": True})
    assert len(jwks(idp)[0]["keys"]) == 1
    assert introspect(idp, token) == {"active": False, "reason": "unknown kid"}


def test_introspection_refuses_bad_tokens(idp):
    mint = lambda **body: call(idp.control, "POST", protocol.IDENTITY_TOKEN, body)["token"]  # noqa: E731
    assert introspect(idp, mint(ttl_s=-60))["reason"].startswith("ExpiredSignatureError")
    assert introspect(idp, mint(alg="HS256"))["active"] is False  # not a published key
    assert introspect(idp, "not.a.token")["active"] is False
    call(idp.control, "POST", protocol.CONFIG, {"jwks_max_age_s": 7})
    assert jwks(idp)[1] == "public, max-age=7"
    metrics = call(idp.control, "GET", protocol.METRICS)
    assert metrics["jwks_fetches"] >= 1 and metrics["introspections"] >= 3


def test_the_quota_lets_a_burst_through_then_the_rate(idp):
    take = lambda key: post_json(  # noqa: E731
        idp.url, "/quota/take", {"key": key, "rate": 2, "burst": 3}
    ).json()
    answers = [take("k1")["allowed"] for _ in range(5)]
    emptied = time.monotonic()
    assert answers == [True, True, True, False, False]
    assert take("k2")["allowed"]  # keys apart
    time.sleep(0.55)  # a token back at 2/s (more if the machine is slow to answer)
    allowed = 0
    while take("k1")["allowed"]:
        allowed += 1
    assert 1 <= allowed <= 2 * (time.monotonic() - emptied) + 1
    assert post_json(idp.url, "/quota/take", {"key": "k", "rate": 0, "burst": 1}).status == 400
    assert json.loads(json.dumps(call(idp.control, "DELETE", protocol.QUOTA)))["forgotten"] >= 2
    assert take("k1")["allowed"]
