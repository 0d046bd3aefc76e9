"""The identity service: a token issuer, its published keys, and central auth.

    python -m kit.services.identity --port 9000 --issuer https://id.edgelab.test [--alg ES256]

A real issuer in the shape of an OAuth 2.0 authorization server, small enough to
read. It signs JSON Web Tokens (RFC 7519) with a private key it never shows, and
publishes the public half as a JSON Web Key Set (RFC 7517) that anyone may fetch
and cache, so that a PoP can check a token without asking anyone.

Data plane (the TCP port, reachable from the world):

    GET  /.well-known/jwks.json   the public keys, each named by its `kid`, with
                                  Cache-Control: public, max-age=N (config)
    POST /token                   {"sub": "..."}: a signed token for that subject
                                  (a lab issuer: it trusts whoever asks; a real one
                                  checks a password or a client secret first)
    POST /introspect              form `token=...` (RFC 7662): {"active": true,
                                  claims...} or {"active": false, "reason": ...}.
                                  The central auth service a gateway can ask instead
                                  of checking tokens itself: one round trip per call.
    POST /quota/take              {"key", "rate", "burst"}: {"allowed", "retry_after_s"}.
                                  One counter per key, owned here: every PoP that asks
                                  shares it (a generic cell rate algorithm).

Control plane (the root-only Unix socket; `kit/control/protocol.py`):

    POST /_kit/identity/token     mint a token with any claims, header or algorithm
                                  (the lab's admin console: checks need expired,
                                  not-yet-valid or wrong-audience tokens signed with
                                  the real key)
    POST /_kit/identity/rotate    a new signing key with a new `kid`; the old one stays
                                  published unless {"retire_old": true}
    GET  /_kit/identity/keys      the signing `kid` and the JWKS
    GET/POST /_kit/config         {"jwks_max_age_s", "token_ttl_s", "audience"}
    DELETE /_kit/quota            forget every quota counter

Rotation is a control-plane operation: nothing on the data plane changes keys.
Tokens: `iss` (--issuer), `sub`, `aud` (config), `iat`, `nbf`, `exp`, `jti`, and
the header's `kid`. Signing algorithms: RS256 (default) or ES256 for the published
keys; HS256 with a secret this service keeps to itself (a token no PoP can verify,
for the checks). Metrics count `jwks_fetches`, `tokens_issued`, `introspections`
and `quota_takes`.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from kit.control import protocol
from kit.services.common import Log, Metrics, Served, json_error, make_apps, parser, serve

QUOTA_KEYS = 100_000  # counters kept, least recently used out first
ALGORITHMS = ("RS256", "ES256")


@dataclass
class Key:
    """One signing key: its id, algorithm, private half and published JWK."""

    kid: str
    alg: str
    private: Any
    jwk: dict[str, Any]


def new_key(alg: str) -> Key:
    """A fresh key pair for RS256 or ES256, named by a random `kid`."""
    kid = secrets.token_hex(6)
    if alg == "RS256":
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        public = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    else:
        raise ValueError(f"alg must be one of {ALGORITHMS}, not {alg!r}")
    return Key(kid, alg, private, {**public, "kid": kid, "alg": alg, "use": "sig"})


class Identity:
    """The issuer's keys, config and quota counters (see the module docstring)."""

    def __init__(self, issuer: str, alg: str, log: Log, metrics: Metrics) -> None:
        self.issuer, self.alg, self.log, self.metrics = issuer, alg, log, metrics
        self.keys = [new_key(alg)]  # published; the last one signs
        self.hmac_secret = secrets.token_bytes(32)
        self.config: dict[str, Any] = {
            "jwks_max_age_s": 300,
            "token_ttl_s": 600,
            "audience": "api",
        }
        self.tat: OrderedDict[str, float] = OrderedDict()  # quota: theoretical arrival times

    @property
    def signing(self) -> Key:
        return self.keys[-1]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk for k in self.keys]}

    def mint(
        self,
        claims: dict[str, Any] | None = None,
        *,
        alg: str | None = None,
        headers: dict[str, Any] | None = None,
        ttl_s: float | None = None,
    ) -> str:
        """A token signed with the current key (or HS256 with the private secret)."""
        now = int(time.time())
        ttl = self.config["token_ttl_s"] if ttl_s is None else ttl_s
        body = {
            "iss": self.issuer,
            "sub": "anonymous",
            "aud": self.config["audience"],
            "iat": now,
            "nbf": now,
            "exp": now + int(ttl),
            "jti": secrets.token_hex(8),
            **(claims or {}),
        }
        alg = alg or self.signing.alg
        header = {"kid": self.signing.kid, **(headers or {})}
        key = self.hmac_secret if alg == "HS256" else self.signing.private
        if alg not in ("HS256", self.signing.alg):
            raise ValueError(f"this issuer signs {self.signing.alg} or HS256, not {alg!r}")
        self.metrics.count("tokens_issued")
        return jwt.encode(body, key, algorithm=alg, headers=header)

    def rotate(self, retire_old: bool = False) -> Key:
        key = new_key(self.alg)
        self.keys = [key] if retire_old else [*self.keys[-1:], key]  # at most two published
        self.log("rotated", kid=key.kid, published=[k.kid for k in self.keys])
        return key

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662's answer for a token: active with its claims, or not, and why."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = next((k for k in self.keys if k.kid == kid), None)
            if key is None:
                return {"active": False, "reason": "unknown kid"}
            claims = jwt.decode(
                token,
                key.private.public_key(),
                algorithms=[key.alg],
                issuer=self.issuer,
                options={"verify_aud": False, "require": ["exp", "iat", "sub"]},
            )
        except jwt.PyJWTError as error:
            return {"active": False, "reason": f"{type(error).__name__}: {error}"}
        return {"active": True, **claims}

    def take(self, key: str, rate: float, burst: int) -> tuple[bool, float]:
        """One request of `key`'s quota: (allowed, seconds until the next is)."""
        now, interval = time.monotonic(), 1.0 / rate
        tat = max(self.tat.pop(key, now), now)
        late = tat - now - (burst - 1) * interval
        if late > 0:
            self.tat[key] = tat
            return False, late
        self.tat[key] = tat + interval
        while len(self.tat) > QUOTA_KEYS:
            self.tat.popitem(last=False)
        return True, 0.0

    # -- data plane ---------------------------------------------------------------

    async def jwks_route(self, request: web.Request) -> web.Response:
        self.metrics.count("jwks_fetches")
        max_age = int(self.config["jwks_max_age_s"])
        return web.json_response(
            self.jwks(), headers={"Cache-Control": f"public, max-age={max_age}"}
        )

    async def token_route(self, request: web.Request) -> web.Response:
        asked = await _json_object(request)
        sub = asked.get("sub")
        if not isinstance(sub, str) or not 0 < len(sub) <= 200:
            return json_error(400, 'send {"sub": "a name"} (a string of 1 to 200 characters)')
        token = self.mint({"sub": sub})
        ttl = self.config["token_ttl_s"]
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": ttl},
            headers={"Cache-Control": "no-store"},
        )

    async def introspect_route(self, request: web.Request) -> web.Response:
        self.metrics.count("introspections")
        form = await request.post()
        token = form.get("token")
        if not isinstance(token, str) or not token:
            return json_error(400, "send the token as form field `token` (RFC 7662)")
        return web.json_response(self.introspect(token), headers={"Cache-Control": "no-store"})

    async def quota_route(self, request: web.Request) -> web.Response:
        self.metrics.count("quota_takes")
        asked = await _json_object(request)
        key, rate, burst = asked.get("key"), asked.get("rate"), asked.get("burst")
        if not isinstance(key, str) or len(key) > 200:
            return json_error(400, '"key" must be a string of at most 200 characters')
        if not _number(rate) or not _number(burst) or rate <= 0 or burst < 1:
            return json_error(400, '"rate" (per second) must be > 0 and "burst" at least 1')
        allowed, retry = self.take(key, float(rate), int(burst))
        return web.json_response({"allowed": allowed, "retry_after_s": round(retry, 3)})

    # -- control plane ------------------------------------------------------------

    async def mint_route(self, request: web.Request) -> web.Response:
        asked = await _json_object(request)
        token = self.mint(
            asked.get("claims"),
            alg=asked.get("alg"),
            headers=asked.get("headers"),
            ttl_s=asked.get("ttl_s"),
        )
        return web.json_response({"token": token, "kid": self.signing.kid})

    async def rotate_route(self, request: web.Request) -> web.Response:
        asked = await _json_object(request) if request.can_read_body else {}
        key = self.rotate(bool(asked.get("retire_old")))
        return web.json_response({"kid": key.kid, "published": [k.kid for k in self.keys]})

    async def keys_route(self, request: web.Request) -> web.Response:
        return web.json_response({"signing": self.signing.kid, "jwks": self.jwks()})

    async def config_route(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            changes = await _json_object(request)
            unknown = set(changes) - set(self.config)
            if unknown:
                raise ValueError(f"unknown config keys: {sorted(unknown)}")
            self.config.update(changes)
            self.log("config", config=self.config)
        return web.json_response(self.config)

    async def quota_reset_route(self, request: web.Request) -> web.Response:
        forgotten = len(self.tat)
        self.tat.clear()
        return web.json_response({"forgotten": forgotten})


async def _json_object(request: web.Request) -> dict[str, Any]:
    data = await request.json()
    if not isinstance(data, dict):
        raise ValueError("send a JSON object")
    return data


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def main(argv: list[str] | None = None) -> None:
    cli = parser("identity", "The identity service: tokens, their keys, central auth.")
    cli.add_argument("--issuer", default="https://id.edgelab.test", help="the tokens' iss")
    cli.add_argument("--alg", default="RS256", choices=ALGORITHMS, help="signing algorithm")
    args = cli.parse_args(argv)
    log = Log("identity")
    metrics = Metrics(
        "identity", ("jwks_fetches", "tokens_issued", "introspections", "quota_takes")
    )
    identity = Identity(args.issuer, args.alg, log, metrics)
    served = Served.of(args)
    planes = make_apps("identity", served, metrics, log, issuer=args.issuer)
    data = planes.data.router
    data.add_get("/.well-known/jwks.json", identity.jwks_route)
    data.add_post("/token", identity.token_route)
    data.add_post("/introspect", identity.introspect_route)
    data.add_post("/quota/take", identity.quota_route)
    control = planes.control.router
    control.add_post(protocol.IDENTITY_TOKEN, identity.mint_route)
    control.add_post(protocol.IDENTITY_ROTATE, identity.rotate_route)
    control.add_get(protocol.IDENTITY_KEYS, identity.keys_route)
    control.add_route("*", protocol.CONFIG, identity.config_route)
    control.add_delete(protocol.QUOTA, identity.quota_reset_route)
    serve(planes, served, log)


if __name__ == "__main__":
    main()
