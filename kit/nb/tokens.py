"""The attacker's side: tokens a gateway must refuse, made fresh for each check.

    bad = forgeries(idp.keys()["jwks"], claims)    # {"alg none": token, ...}

A gateway is only as good as the worst token it lets through, so the checks
send the classic forgeries (each made anew, with claims made up for the run):

- **wrong key**: signed with a key the attacker made, under the issuer's real `kid`;
- **alg none**: `{"alg": "none"}` and no signature (RFC 7519 §6 "unsecured");
- **RS256→HS256 confusion**: HS256 signed with the issuer's *public* key as the
  HMAC secret; a verifier that takes the algorithm from the token and feeds it
  the key it has for that `kid` would accept it (PyJWT refuses to sign this, so
  it is assembled by hand here: this module is the attacker);
- **tampered**: a real token whose payload was changed after signing;
- **unknown kid**: a good-looking token under a `kid` the issuer never published.

Expired, not-yet-valid, wrong-audience and wrong-issuer tokens need the real
key: the issuer mints those (`kit.identity.IdentityService.mint`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def attacker_key(alg: str = "RS256") -> Any:
    """A private key nobody trusts, of the kind ``alg`` uses."""
    if alg.startswith("ES"):
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(jwk: dict[str, Any]) -> bytes:
    """The PEM text of a published public key (what an attacker can download)."""
    key = jwt.PyJWK(jwk).key
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def unsigned(claims: dict[str, Any], kid: str) -> str:
    """``alg: none``: a header, the claims and an empty signature."""
    return f"{_segment({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{_segment(claims)}."


def hmac_with(secret: bytes, claims: dict[str, Any], kid: str) -> str:
    """HS256 over the claims with ``secret`` (e.g. a public key's PEM), by hand."""
    signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{_segment(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def tampered(token: str, changes: dict[str, Any]) -> str:
    """A real token with its payload changed and its signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"{header}.{_segment({**claims, **changes})}.{signature}"


def forgeries(jwks: dict[str, Any], claims: dict[str, Any], real: str) -> dict[str, str]:
    """Every forgery above, for ``claims`` (``real`` is a genuine token to tamper with)."""
    jwk = jwks["keys"][-1]
    kid, alg = jwk["kid"], jwk.get("alg", "RS256")
    other = attacker_key(alg)
    return {
        "signed with the wrong key": jwt.encode(claims, other, algorithm=alg, headers={"kid": kid}),
        "alg none": unsigned(claims, kid),
        "RS256→HS256 confusion (public key as HMAC secret)": hmac_with(
            public_pem(jwk), claims, kid
        ),
        "tampered payload": tampered(real, {"sub": claims["sub"] + "-admin", "admin": True}),
        "unknown kid": jwt.encode(
            claims, other, algorithm=alg, headers={"kid": "k" + secrets.token_hex(5)}
        ),
    }


def malformed() -> dict[str, str]:
    """Authorization header values that are not a bearer token at all, or not a JWT."""
    junk = secrets.token_urlsafe(12)
    kid_number = f"{_segment({'alg': 'RS256', 'kid': 7})}.{_segment({'sub': junk})}.{junk}"
    return {
        "no Authorization header": "",
        "Basic credentials": "Basic " + b64url(f"{junk}:{junk}".encode()),
        "Bearer with nothing after it": "Bearer ",
        "Bearer junk": f"Bearer {junk}",
        "three segments of junk": f"Bearer {junk}.{junk}.{junk}",
        "a kid that is a number": f"Bearer {kid_number}",
    }
