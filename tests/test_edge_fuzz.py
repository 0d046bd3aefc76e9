"""Fuzzed bad input against chapter 03's gateway and chapter 04's personaliser.

The reference handlers are taken from the solution notebooks (the exercise
cells' functions, `kit.nb.notebooks.exercise_handler`) and deployed to a real
PoP on loopback, in front of a real origin, with a real identity service for the
gateway's keys. Each batch is made afresh from a random seed (printed when a
test fails), sent as raw bytes so that odd bytes reach the services unaltered:

- gateway: missing and malformed tokens, random segments, odd bytes, forged
  signatures, `alg: none`, an RS256 -> HS256 confusion signed with the public
  key, expired and not-yet-valid tokens, the wrong audience or issuer, an
  unknown key; then, with a valid token, bodies that are too deep, too big, not
  JSON, of the wrong type or the wrong content type, and oversized headers.
  Every one must get a 4xx (never a 5xx, never silence), and the origin's request
  count must not move; one good request afterwards must reach it, so the count
  is shown to be a real measure.
- personaliser: cookies with odd bytes, duplicate, empty, oversized and hostile
  uids, odd User-Agents and Client Hints, other methods. Never a 5xx, a hostile
  uid is never written into the page, and the origin sees no more requests than
  were answered with success.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from test_hostile_http import exchange
from test_services_support import LoopbackEdge, metrics

from kit.control import call, deploy, protocol
from kit.nb.notebooks import exercise_handler

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"
ISSUER, AUDIENCE = "https://id.fuzz.test", "fuzz-api"
SCHEMA = {
    "type": "object",
    "required": ["item", "qty"],
    "additionalProperties": False,
    "properties": {"item": {"type": "string", "maxLength": 40}, "qty": {"type": "integer"}},
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def part(value: object) -> str:
    """A token segment holding `value` as JSON."""
    return b64(json.dumps(value).encode())


def raw(method: str, path: str, headers: list[tuple[str, str | bytes]], body: bytes = b"") -> bytes:
    """An HTTP/1.1 request as bytes; header values may be bytes (sent as they are)."""
    lines = [f"{method} {path} HTTP/1.1\r\n".encode(), b"Host: 127.0.0.1\r\n"]
    for name, value in headers:
        value = value if isinstance(value, bytes) else value.encode("latin-1")
        lines.append(name.encode() + b": " + value + b"\r\n")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}\r\n".encode())
    return b"".join(lines) + b"Connection: close\r\n\r\n" + body


NOT_UTF8 = (
    b"Bearer \xff\xfe.\x8b\xfd\xad8\xfaw]h\xac8sm\x9f\xcc\xde\x98\x94l\x92\x8d*\xeeO0?\xed.\xb6yb.x"
)


@pytest.fixture(scope="module")
def gateway_edge():
    edge = LoopbackEdge()
    try:
        idp = edge.start("identity", "--issuer", ISSUER)
        call(idp.control, "POST", protocol.CONFIG, {"audience": AUDIENCE})
        source = exercise_handler(SOLUTIONS / "03-api-gateway.ipynb", "03-bucket", "03-gateway")
        config = {
            "jwks_url": idp.url + "/.well-known/jwks.json",
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "algorithms": ["RS256"],
            "leeway_s": 5,
            "jwks_min_refresh_s": 1,
            "rate_per_s": 100_000,  # the limit must not hide what the body checks do
            "burst": 100_000,
            "quota_url": None,
            "max_body_bytes": 4096,
            "max_depth": 8,
            "schemas": {"/api/echo": SCHEMA},
        }
        deploy(source, edge.pop.control, config=config)
        edge.idp = idp
        yield edge
    finally:
        edge.close()


def mint(idp, **options) -> str:
    """A token signed by the identity service's real key (claims, alg, headers, ttl_s)."""
    return call(idp.control, "POST", protocol.IDENTITY_TOKEN, options)["token"]


def forged_tokens(idp, rng: random.Random) -> dict[str, str | bytes]:
    """Tokens that must not pass, by name."""
    now = int(time.time())
    good = mint(idp, claims={"sub": "fuzz"})
    header, payload, signature = good.split(".")
    kid = jwt.get_unverified_header(good)["kid"]
    public_jwk = next(k for k in call(idp.control, "GET", protocol.IDENTITY_KEYS)["jwks"]["keys"])
    public_pem = jwt.PyJWK(public_jwk).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    confused_head = part({"alg": "HS256", "typ": "JWT", "kid": kid})
    confused_mac = hmac.digest(public_pem, f"{confused_head}.{payload}".encode(), hashlib.sha256)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"sub": "fuzz", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 600}
    segments = lambda n: ".".join(b64(rng.randbytes(rng.randint(0, 40))) for _ in range(n))  # noqa: E731
    tokens: dict[str, str | bytes] = {
        "alg none": jwt.encode(claims, None, algorithm="none", headers={"kid": kid}),
        "RS256 -> HS256 with the public key": f"{confused_head}.{payload}.{b64(confused_mac)}",
        "a flipped signature": f"{header}.{payload}.{signature[::-1]}",
        "a swapped payload": f"{header}.{part({**claims, 'sub': 'root'})}.{signature}",
        "expired": mint(idp, claims={"sub": "fuzz"}, ttl_s=-120),
        "not yet valid": mint(idp, claims={"sub": "fuzz", "nbf": now + 600}),
        "the wrong audience": mint(idp, claims={"sub": "fuzz", "aud": "another-api"}),
        "the wrong issuer": mint(idp, claims={"sub": "fuzz", "iss": "https://evil.test"}),
        "an unknown kid": jwt.encode(claims, stranger, "RS256", headers={"kid": "not-a-key"}),
        "no kid": jwt.encode(claims, stranger, "RS256"),
        "kid is a number": f"{part({'alg': 'RS256', 'kid': 7})}.{payload}.{signature}",
        "kid is a list": f"{part({'alg': 'RS256', 'kid': [kid]})}.{payload}.{signature}",
        "a header that is not JSON": f"{b64(b'{not json')}.{payload}.{signature}",
        "a header that is a list": f"{b64(b'[1, 2]')}.{payload}.{signature}",
        "exp is a word": mint(idp, claims={"sub": "fuzz", "exp": "never"}),
        "no sub": mint(idp, claims={"sub": None}),
        "7 KB of token": "a." + "b" * 7000 + ".c",
        "odd bytes": b"\xff\xfe."
        + rng.randbytes(30).replace(b"\r", b"").replace(b"\n", b"")
        + b".x",
        "empty": "",
        "dots only": "....",
    }
    for n in range(12):
        tokens[f"random segments {n}"] = segments(rng.randint(1, 5))
    return tokens


def test_the_gateway_answers_every_bad_request_with_a_4xx_and_the_origin_sees_none(gateway_edge):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    pop, origin, idp = gateway_edge.pop, gateway_edge.origin, gateway_edge.idp
    good = mint(idp, claims={"sub": f"fuzz-{rng.randrange(10**6)}"})
    bearer = ("Authorization", f"Bearer {good}")
    json_type = ("Content-Type", "application/json")
    item = f"/api/items/{rng.randrange(10**6)}"

    cases: dict[str, bytes] = {
        "no Authorization": raw("GET", item, []),
        "Basic credentials": raw("GET", item, [("Authorization", "Basic dXNlcjpwdw==")]),
        "Bearer alone": raw("GET", item, [("Authorization", "Bearer")]),
        "two tokens": raw("GET", item, [("Authorization", f"Bearer {good} {good}")]),
        # seed 3553213763's odd bytes, which reached the handler as lone surrogates (a 500)
        "token: bytes that are not UTF-8": raw("POST", item, [("Authorization", NOT_UTF8)]),
    }
    for name, token in forged_tokens(idp, rng).items():
        value = b"Bearer " + (token if isinstance(token, bytes) else token.encode())
        method = rng.choice(["GET", "DELETE", "POST", "PUT"])
        cases[f"token: {name} ({method})"] = raw(method, item, [("Authorization", value)])

    def post(name: str, body: bytes, kind: str | None = "application/json") -> None:
        headers = [bearer] + ([("Content-Type", kind)] if kind else [])
        cases[f"body: {name}"] = raw("POST", "/api/echo", headers, body)

    depth = rng.randint(20, 5000)
    post(f"an array {depth} deep", b"[" * depth + b"]" * depth)
    post("objects 12 deep", json.dumps(nest({"item": "x", "qty": 1}, 12)).encode())
    post("over the size limit", json.dumps({"item": "x" * 5000, "qty": 1}).encode())
    post("not JSON", b"item=x&qty=1")
    post("invalid UTF-8", b'{"item": "\xff\xfe", "qty": 1}')
    post("a list", b'[{"item": "x", "qty": 1}]')
    post("qty as a string", b'{"item": "x", "qty": "1"}')
    post("a missing field", b'{"item": "x"}')
    post("an extra field", b'{"item": "x", "qty": 1, "admin": true}')
    post("an item too long", json.dumps({"item": "x" * 41, "qty": 1}).encode())
    post("a huge number", b'{"item": "x", "qty": 1e999}')
    post("NaN", b'{"item": "x", "qty": NaN}')
    post("text/plain", b'{"item": "x", "qty": 1}', "text/plain")
    post("no content type", b'{"item": "x", "qty": 1}', None)
    post("empty", b"")
    cases["header: 9 KB in one line"] = raw("GET", item, [bearer, ("X-Pad", "p" * 9000)])
    cases["header: 150 fields"] = raw("GET", item, [bearer] + [(f"X-{i}", "v") for i in range(150)])
    cases["header: a control byte"] = raw("GET", item, [bearer, ("X-Odd", b"a\x01b")])
    json_ok = raw("POST", "/api/echo", [bearer, json_type], b'{"item": "x", "qty": 1}')

    before = metrics(origin)["requests"]
    answers = {name: exchange(pop.url, data)[0] for name, data in cases.items()}
    reached = metrics(origin)["requests"] - before
    wrong = {
        name: status for name, status in answers.items() if not (status and 400 <= status < 500)
    }
    assert not wrong, f"seed {seed}: not a 4xx (None: no answer): {wrong}"
    assert reached == 0, f"seed {seed}: {reached} bad requests reached the origin"

    assert exchange(pop.url, json_ok)[0] == 200, "a good request must pass the gateway"
    assert metrics(origin)["requests"] == before + 1, "the good request reaches the origin"


def nest(value: object, depth: int) -> object:
    for _ in range(depth):
        value = {"inner": value}
    return value


@pytest.fixture(scope="module")
def personal_edge():
    edge = LoopbackEdge()
    try:
        source = exercise_handler(SOLUTIONS / "04-personalisation.ipynb", "04-personalise")
        config = {
            "weights": {"a": 3, "b": 1},
            "markets": {"DE": "dach"},
            "default_market": "world",
        }
        deploy(source, edge.pop.control, config=config, matcher="/p/:path*")
        yield edge
    finally:
        edge.close()


def test_the_personaliser_never_fails_and_never_writes_a_hostile_uid_into_the_page(personal_edge):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    pop, origin = personal_edge.pop, personal_edge.origin
    page = f"/p/fuzz{rng.randrange(10**6)}"
    hostile = "<script>alert(1)</script>"
    cookies: dict[str, bytes | str] = {
        "an empty uid": "uid=",
        "a bare name": "uid",
        "an equals sign": "=",
        "semicolons": ";;;;",
        "odd bytes": b"uid=\xff\xfe\x80abcdefgh",
        "a script": f"uid={hostile}",
        "a quoted uid": 'uid="abcdefghij"',
        "two uids": "uid=abcdefghij; uid=klmnopqrst",
        "a 6 KB uid": "uid=" + "a" * 6000,
        "200 cookies": "; ".join(f"c{i}={i}" for i in range(200)),
        "a tab": "uid=abc\tdefghij",
        "random bytes": rng.randbytes(64).replace(b"\r", b"").replace(b"\n", b""),
    }
    cases = {f"cookie: {n}": raw("GET", page, [("Cookie", v)]) for n, v in cookies.items()}
    cases["two Cookie headers"] = raw(
        "GET", page, [("Cookie", "a=1"), ("Cookie", f"uid={hostile}")]
    )
    cases["odd User-Agent"] = raw("GET", page, [("User-Agent", b"\xff Mobi \xfe iPad")])
    cases["odd Client Hint"] = raw("GET", page, [("Sec-CH-UA-Mobile", "?maybe")])
    cases["POST with a body"] = raw("POST", page, [("Cookie", "uid=abcdefghij")], b"x" * 100)
    cases["a long query"] = raw("GET", page + "?q=" + "z" * 3000, [])
    cases["escaped odd bytes"] = raw("GET", page + "%ff%00", [])

    before = metrics(origin)["requests"]
    answers = {name: exchange(pop.url, data) for name, data in cases.items()}
    reached = metrics(origin)["requests"] - before
    failed = {n: status for n, (status, _) in answers.items() if not status or status >= 500}
    assert not failed, f"seed {seed}: a 5xx or no answer: {failed}"
    leaked = [n for n, (_, body) in answers.items() if hostile.encode() in body]
    assert not leaked, f"seed {seed}: a hostile uid written into the page: {leaked}"
    served = sum(1 for status, _ in answers.values() if status < 400)
    assert reached <= served, f"seed {seed}: {reached} origin requests for {served} answered"
