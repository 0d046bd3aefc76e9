"""Chapter 03's helpers: the forgeries, the bucket check, and the reference gateway.

Unit: the forged tokens are what they claim to be (PyJWT refuses each with the
real key), and `bucket_cases` passes the reference bucket and rejects a broken one.
Loopback: the chapter's reference gateway (taken from the solution notebook, as
the benchmark and the fuzz test take it) on a real PoP, with a real identity
service: good tokens pass, forgeries and bad bodies get a 4xx, never a 500.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import jwt
import pytest
from test_services_support import LoopbackEdge, Service, request

from kit.control import call, deploy, protocol, undeploy
from kit.nb.checks import CheckFailed
from kit.nb.gateway_checks import bucket_cases
from kit.nb.gateway_plots import show_token
from kit.nb.notebooks import exercise_handler
from kit.nb.tokens import forgeries, malformed

SOLUTION = Path(__file__).resolve().parents[1] / "solutions" / "03-api-gateway.ipynb"


def bucket(bucket, now, rate, burst):
    tokens = burst if bucket is None else min(burst, bucket[0] + (now - bucket[1]) * rate)
    return (True, [tokens - 1, now]) if tokens >= 1 else (False, [tokens, now])


def leaky(bucket, now, rate, burst):  # refused requests cost a token too
    allowed, state = globals()["bucket"](bucket, now, rate, burst)
    return allowed, state if allowed else [state[0] - 1, now]


@pytest.mark.unit
def test_bucket_cases_pass_a_bucket_and_reject_one_that_counts_refusals():
    bucket_cases(bucket, random.Random(1))
    with pytest.raises(CheckFailed, match="a refused request costs nothing"):
        bucket_cases(leaky, random.Random(1))


@pytest.mark.unit
def test_every_forgery_fails_verification_with_the_real_key():
    private = jwt.algorithms.RSAAlgorithm
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(private.to_jwk(key.public_key())), "kid": "k1", "alg": "RS256"}
    claims = {"sub": "ada", "aud": "api", "iss": "https://id.test", "exp": 2**31}
    real = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    assert jwt.decode(real, key.public_key(), algorithms=["RS256"], audience="api")
    for name, token in forgeries({"keys": [jwk]}, claims, real).items():
        with pytest.raises(jwt.PyJWTError):
            jwt.decode(token, key.public_key(), algorithms=["RS256"], audience="api")
        assert show_token(token) is not None, name
    assert "no Authorization header" in malformed()


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    edge = LoopbackEdge()
    idp = Service("identity", "--issuer", "https://id.test", workdir=tmp_path_factory.mktemp("i"))
    schema = {
        "type": "object",
        "required": ["item"],
        "properties": {"item": {"type": "string"}},
        "additionalProperties": False,
    }
    config = {
        "audience": "api",
        "issuer": "https://id.test",
        "jwks_url": idp.url + "/.well-known/jwks.json",
        "algorithms": ["RS256"],
        "leeway_s": 5,
        "jwks_min_refresh_s": 10,
        "rate_per_s": 100,
        "burst": 100,
        "quota_url": None,
        "max_body_bytes": 4096,
        "max_depth": 8,
        "schemas": {"/api/echo": schema},
    }
    deploy(exercise_handler(SOLUTION, "03-bucket", "03-gateway"), edge.pop.control, config=config)
    yield edge, idp, config
    undeploy(edge.pop.control)
    idp.stop()
    edge.close()


def mint(idp, **claims) -> str:
    body = {"claims": {"sub": "ada", **claims}}
    return call(idp.control, "POST", protocol.IDENTITY_TOKEN, body)["token"]


@pytest.mark.loopback
def test_the_reference_gateway_passes_good_and_refuses_bad_with_a_4xx(gated):
    edge, idp, _ = gated
    good = {"Authorization": "Bearer " + mint(idp)}
    assert request(edge.pop, "/api/items/1", headers=good).status == 200
    json_type = {**good, "Content-Type": "application/json"}
    ok = request(edge.pop, "/api/echo", "PUT", json_type, b'{"item": "x"}')
    assert ok.status == 200
    jwks = call(idp.control, "GET", protocol.IDENTITY_KEYS)["jwks"]
    claims = {"sub": "eve", "aud": "api", "iss": "https://id.test", "exp": 2**31}
    bad = {name: "Bearer " + t for name, t in forgeries(jwks, claims, mint(idp)).items()}
    bad.update(malformed())
    bad["expired"] = "Bearer " + mint(idp, exp=1000)
    for name, value in bad.items():
        reply = request(edge.pop, "/api/items/1", headers={"Authorization": value} if value else {})
        assert reply.status == 401, (name, reply.status, reply.body[:200])
        assert reply.headers["WWW-Authenticate"].startswith("Bearer"), name
    bodies = {
        b"[" * 2000 + b"]" * 2000: 400,
        b'{"item": 5}': 400,
        b"{": 400,
        b"\xff\xfe": 400,
        b'{"item": "' + b"x" * 5000 + b'"}': 413,
    }
    for body, status in bodies.items():
        reply = request(edge.pop, "/api/echo", "POST", json_type, body)
        assert reply.status == status, (body[:20], reply.status, reply.body[:200])
    reply = request(edge.pop, "/api/echo", "POST", {**good, "Content-Type": "text/plain"}, b"{}")
    assert reply.status == 415
