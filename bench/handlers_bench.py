"""What the chapters' handlers cost at the PoP: ratios measured side by side in one run.

    .venv/bin/python bench/handlers_bench.py

(a) Verifying a token. PyJWT's `jwt.decode` with the key already parsed, as a
    gateway does once its JWKS is cached: microseconds per token for RS256 and
    ES256 (the issuer's algorithms) and HS256, in this process. This is the part
    of a request that a gateway moves from a central auth service to the PoP.

(b) Throughput with a handler. A cached 10 KB object served by one PoP in
    front of the kit's origin, with each handler in its worker process:
    - no handler (the PoP's hit path);
    - a pass-through handler (`env.origin.fetch(request)`);
    - chapter 03's gateway (the solution's exercise cells): verify an RS256
      token against the cached JWKS, a token bucket in `env.state`, then the
      cache;
    - chapter 04's personaliser: cohort, market and device from the request,
      a variant cache key, the greeting filled in after the cache.
    Every PoP is up at once, pinned to core 0 with wrk on core 1, and measured in
    interleaved rounds; the table shows medians, the ratio to no handler, and
    each handler's cost per request over the pass-through one (1/rps - 1/rps).

The handlers are taken from `solutions/` (kit.nb.notebooks.exercise_handler),
so the bench measures what the chapters teach. Prints a table and exits 0.
Needs wrk for (b).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import timeit
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from edge_bench import (
    MEASURE_S,
    OBJECT,
    PASS_THROUGH,
    REPO,
    ROUNDS,
    SERVER_CORE,
    WARMUP_S,
    kit_service,
    table,
    wrk,
)

from kit.control import call, deploy, protocol
from kit.nb.notebooks import exercise_handler
from kit.services.launch import LocalService

SOLUTIONS = REPO / "solutions"
ISSUER, AUDIENCE = "https://id.bench.test", "bench-api"
DECODES = 2000
UID = "benchvisitor01"


def decode_us() -> dict[str, float]:
    """Microseconds per jwt.decode with a parsed key, per algorithm."""
    keys = {
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "HS256": None,
    }
    claims = {"sub": "bench", "aud": AUDIENCE, "iss": ISSUER, "exp": 4_000_000_000}
    result = {}
    for alg, private in keys.items():
        secret = b"s" * 32
        token = jwt.encode(claims, private or secret, algorithm=alg)
        public = private.public_key() if private else secret

        def verify(token: str = token, public: object = public, alg: str = alg) -> None:
            jwt.decode(token, public, algorithms=[alg], audience=AUDIENCE, issuer=ISSUER)

        result[alg] = min(timeit.repeat(verify, number=DECODES, repeat=3)) / DECODES * 1e6
    return result


def gateway_config(idp: LocalService) -> dict:
    return {
        "jwks_url": idp.url + "/.well-known/jwks.json",
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "algorithms": ["RS256"],
        "leeway_s": 5,
        "jwks_min_refresh_s": 10,
        "rate_per_s": 10**9,  # the bench measures the work, not the limit
        "burst": 10**9,
        "quota_url": None,
        "max_body_bytes": 4096,
        "max_depth": 8,
        "schemas": {},
    }


def cached_rps(url: str, headers: tuple[str, ...], origin: LocalService) -> float:
    """wrk's requests/s, after a warm-up; the origin must see (almost) none of them."""
    wrk(url, WARMUP_S, headers)
    before = call(origin.control, "GET", protocol.METRICS)["requests"]
    rps = wrk(url, MEASURE_S, headers)
    reached = call(origin.control, "GET", protocol.METRICS)["requests"] - before
    if reached > 0.01 * rps * MEASURE_S:
        raise RuntimeError(f"{url}: {reached} requests reached the origin; not a cache hit")
    return rps


PERSONAL = {"weights": {"a": 1, "b": 1}, "markets": {"DE": "dach"}, "default_market": "world"}


def handler_rows(tmp: Path, origin: LocalService) -> list[tuple[str, str]]:
    idp = kit_service("identity", tmp, "--issuer", ISSUER)
    call(idp.control, "POST", protocol.CONFIG, {"audience": AUDIENCE})
    token = call(idp.control, "POST", protocol.IDENTITY_TOKEN, {"claims": {"sub": "bench"}})
    gateway = exercise_handler(SOLUTIONS / "03-api-gateway.ipynb", "03-bucket", "03-gateway")
    personalise = exercise_handler(SOLUTIONS / "04-personalisation.ipynb", "04-personalise")
    setups = {  # name: (handler, config, matcher, path, headers)
        "none": (None, {}, None, OBJECT, ()),
        "pass-through": (PASS_THROUGH, {}, None, OBJECT, ()),
        "gateway": (
            gateway,
            gateway_config(idp),
            None,
            OBJECT,
            (f"Authorization: Bearer {token['token']}",),
        ),
        "personaliser": (personalise, PERSONAL, "/p/:path*", "/p/bench", (f"Cookie: uid={UID}",)),
    }
    pops: dict[str, LocalService] = {}
    samples: dict[str, list[float]] = {name: [] for name in setups}
    try:
        for name, (source, config, matcher, _, _) in setups.items():
            pops[name] = kit_service(
                "pop", tmp, "--pop", "bench", "--origin", origin.url, core=SERVER_CORE
            )
            if source:
                deploy(source, pops[name].control, config=config, matcher=matcher)
        for round_number in range(ROUNDS):
            order = list(setups) if round_number % 2 == 0 else list(reversed(setups))
            for name in order:
                _, _, _, path, headers = setups[name]
                samples[name].append(cached_rps(pops[name].url + path, headers, origin))
    finally:
        for pop in pops.values():
            pop.stop()
        idp.stop()
    rps = {name: statistics.median(values) for name, values in samples.items()}
    rows = [("(b) kit PoP, no handler", f"{rps['none']:,.0f} req/s")]
    for name in ("pass-through", "gateway", "personaliser"):
        rows.append((f"(b) kit PoP, {name} handler", f"{rps[name]:,.0f} req/s"))
        rows.append((f"    {name} / no handler", f"{rps[name] / rps['none']:.2f}x"))
    for name in ("gateway", "personaliser"):
        extra_us = (1 / rps[name] - 1 / rps["pass-through"]) * 1e6
        rows.append((f"    {name}: cost per request over pass-through", f"{extra_us:+.0f} µs"))
    return rows


def main() -> int:
    rows = [(f"(a) jwt.decode, {alg}", f"{us:.0f} µs") for alg, us in decode_us().items()]
    if not shutil.which("wrk"):
        rows.append(("(b) skipped", "needs wrk (apt-get install wrk)"))
    else:
        tmp = Path(tempfile.mkdtemp(prefix="edgelab-bench-"))
        origin = kit_service("origin", tmp, core=SERVER_CORE)
        try:
            rows += handler_rows(tmp, origin)
        finally:
            origin.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    print("Edge Lab handler benchmark (loopback; (a) best of 3 x 2,000 decodes in this")
    print(f"process; (b) median of {ROUNDS} interleaved rounds per PoP, as in edge_bench)\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
