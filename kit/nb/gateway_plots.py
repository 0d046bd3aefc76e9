"""Chapter 03's measurements, tables and plots: what a gateway at the edge buys and costs.

    show_token(token)                                    # a JWT's header and claims
    env = abuse_env(idp, GATE)                           # tokens and bodies for Locust
    steps, reached = abuse_load(world, edge, SOURCES, ANYCAST, env, users=(8, 32))
    costs = auth_cost_per_city(world, edge, idp, GATE, USERS)   # µs at the PoP vs ms central
    spray = spray_pops(world, edge, "user-berlin", token, rounds=3)
    gateway_claims(...)                                   # the closing table

The abuse load (`kit/load/locustfiles/api_abuse.py`) labels each request with
its kind, and the origin counts the labels it receives: what reached the origin
is counted there, not inferred from status codes. (Locust's own counts are not
used for this: its CSV misses the last second of a run.)

The cost of auth per city is measured where it happens. A probe handler, run
on every PoP, times the signature check with `cryptography` itself (the part
of verifying a token that costs: the rest is parsing a few hundred bytes), and
times a round trip from that PoP to the central auth service's introspection
endpoint, as a gateway that asks central auth would pay on every request.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import median
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from kit.control import deploy
from kit.load import step_load
from kit.nb.claims import Claim
from kit.nb.measure import http_request, http_timing
from kit.nb.tokens import forgeries

ABUSE_LOCUSTFILE = Path(__file__).resolve().parents[1] / "load" / "locustfiles" / "api_abuse.py"
BAD_KINDS = ("forged", "expired", "oversized", "invalid")
KINDS = ("good", "flood", *BAD_KINDS)


def _part(segment: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def show_token(token: str) -> pd.DataFrame:
    """A JWT's header and claims, read WITHOUT verifying anything (as anyone can)."""
    header, claims, signature = token.split(".")
    rows = [("header", k, v) for k, v in _part(header).items()]
    rows += [("claims", k, v) for k, v in _part(claims).items()]
    rows.append(("signature", f"{len(signature)} base64url characters", signature[:24] + "…"))
    return pd.DataFrame(rows, columns=["part", "name", "value"]).set_index(["part", "name"])


# -- the abuse load ---------------------------------------------------------------------


def abuse_env(idp: Any, config: Mapping[str, Any], good: int = 64) -> dict[str, str]:
    """The abuse locustfile's configuration: genuine, flooding, forged and expired tokens,
    a body that fits the schema and one that does not, and an oversized size."""
    audience = config["audience"]
    schema = next(iter(config["schemas"].values()))
    fields = schema["required"]
    tokens = [idp.mint(f"client-{i}", aud=audience) for i in range(good)]
    claims = {"iss": idp.issuer, "sub": "mallory", "aud": audience, "exp": int(time.time()) + 900}
    forged = forgeries(idp.keys()["jwks"], claims, tokens[0]).values()
    valid = {f: (1 if schema["properties"][f]["type"] == "integer" else "x") for f in fields}
    return {
        "ABUSE_GOOD_TOKENS": ",".join(tokens),
        "ABUSE_FLOOD_TOKEN": idp.mint("flooder", aud=audience),
        "ABUSE_FORGED": ",".join(forged),
        "ABUSE_EXPIRED": idp.mint("late", aud=audience, ttl_s=-3600),
        "ABUSE_BODY": json.dumps(valid),
        "ABUSE_BAD_BODY": json.dumps({fields[0]: valid[fields[0]]}),
        "ABUSE_BIG_BYTES": str(int(config["max_body_bytes"]) + 1),
        "ABUSE_BODY_PATH": next(iter(config["schemas"])),
    }


def origin_traffic(edge: Any) -> dict[str, int]:
    """The origin's count of each traffic label so far."""
    counters = edge.metrics(edge.origin)
    return {k.removeprefix("traffic:"): v for k, v in counters.items() if k.startswith("traffic:")}


def abuse_load(
    world: Any,
    edge: Any,
    sources: Iterable[str],
    target: str,
    env: Mapping[str, str],
    *,
    users: Iterable[int] = (8, 32),
    run_time_s: int = 3,
    wait_s: float = 0.1,
) -> tuple[pd.DataFrame, pd.Series]:
    """Step the abuse load: (one row per step, as `step_load` gives them, with the
    origin's requests/s; how many requests of each kind reached the origin, counted there)."""
    reached_before = origin_traffic(edge)
    steps = step_load(
        world,
        sources,
        target,
        users=users,
        run_time_s=run_time_s,
        wait_s=wait_s,
        counter=lambda: edge.metrics(edge.origin)["requests"],
        locustfile=ABUSE_LOCUSTFILE,
        env=env,
    )
    after = origin_traffic(edge)
    reached = pd.Series(
        {k: after.get(k, 0) - reached_before.get(k, 0) for k in KINDS}, name="reached the origin"
    )
    reached.index.name = "kind"
    return steps, reached


def bad_reached(reached: pd.Series) -> int:
    """Bad requests (forged, expired, oversized, invalid) that reached the origin."""
    return int(reached[list(BAD_KINDS)].sum())


def kinds_side_by_side(without: pd.Series, with_gate: pd.Series) -> pd.DataFrame:
    """Requests of each kind that reached the origin, without and with the gateway."""
    return pd.DataFrame({"no gateway": without, "your gateway": with_gate})


# -- the cost of auth, per city -----------------------------------------------------------

AUTH_PROBE = """
async def fetch(request, env, ctx):
    import base64, json, statistics, time
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from jwt import PyJWK

    def unb64(text):
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    token = request.headers.get("x-probe-token", "")
    head, body, sig = token.split(".")
    kid = json.loads(unb64(head))["kid"]
    jwks = await (await env.fetch(env.config["jwks_url"])).json()
    key = PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid)).key
    data, signature = f"{head}.{body}".encode(), unb64(sig)
    rounds, started = 200, time.perf_counter()
    for _ in range(rounds):
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise ValueError("this probe times RS256")
    verify_us = (time.perf_counter() - started) / rounds * 1e6
    central = []
    for _ in range(5):
        started = time.perf_counter()
        answer = await env.fetch(
            env.config["introspect_url"], method="POST", body="token=" + token,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        active = (await answer.json())["active"]
        central.append((time.perf_counter() - started) * 1000)
    return Response.json({"pop": env.pop, "verify_us": verify_us,
                          "central_ms": statistics.median(central), "active": active})
"""


def auth_cost_per_city(
    world: Any, edge: Any, idp: Any, config: Mapping[str, Any], users: Iterable[str]
) -> pd.DataFrame:
    """At each user's PoP: µs to check a token's signature there, ms to ask central auth.

    Deploys the probe to every PoP (the caller deploys its gateway again after).
    """
    deploy(
        AUTH_PROBE,
        edge.pops,
        config={"jwks_url": idp.jwks_url, "introspect_url": idp.introspect_url},
    )
    token = idp.mint("probe", aud=config["audience"])

    def one(user: str) -> dict[str, Any]:
        answer = http_request(
            world, user, edge.anycast_url + "/probe", headers={"x-probe-token": token}
        )
        if answer["status"] != 200:
            raise RuntimeError(f"the auth probe answered {answer['status']}: {answer['body']}")
        found = json.loads(answer["body"])
        return {
            "user": user,
            "pop": found["pop"],
            "verify at the PoP (µs)": found["verify_us"],
            "ask central auth (ms)": found["central_ms"],
            "PoP–auth RTT (ms)": world.configured_rtt(found["pop"], idp.host),
        }

    with ThreadPoolExecutor(max_workers=4) as pool:
        rows = list(pool.map(one, users))
    return pd.DataFrame(rows).set_index("user")


def plot_auth_cost(costs: pd.DataFrame) -> Figure:
    """Per city: verifying at the PoP against asking central auth, on one log axis."""
    fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
    x = range(len(costs))
    ax.bar([i - 0.2 for i in x], costs["verify at the PoP (µs)"] / 1000, 0.4, label="verify at PoP")
    ax.bar([i + 0.2 for i in x], costs["ask central auth (ms)"], 0.4, label="ask central auth")
    ax.set_xticks(list(x), [u.removeprefix("user-") for u in costs.index])
    ax.set_yscale("log")
    ax.set(ylabel="ms per request (log)", title="What authenticating a request costs, per city")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return fig


# -- one key, many PoPs -------------------------------------------------------------------


def spray_pops(world: Any, edge: Any, user: str, token: str, rounds: int) -> pd.DataFrame:
    """One client sends `rounds` requests to every PoP by its own address (the PoPs at
    once, each PoP's requests one after another); per PoP: how many were allowed (200)
    and refused (429)."""
    headers = {"Authorization": f"Bearer {token}", "x-traffic": "spray"}

    def one_pop(pop: str) -> dict[str, Any]:
        url = edge.pop_url(pop) + "/api/items/spray"
        statuses = [
            http_request(world, user, url, headers=headers)["status"] for _ in range(rounds)
        ]
        return {
            "pop": pop,
            "allowed": statuses.count(200),
            "refused": statuses.count(429),
        }

    with ThreadPoolExecutor(max_workers=len(edge.pops)) as pool:
        rows = list(pool.map(one_pop, edge.pops))
    return pd.DataFrame(rows).set_index("pop")


def gated_ttfb(world: Any, users: Iterable[str], url: str, token: str, count: int = 3) -> pd.Series:
    """Median TTFB (ms) of an authenticated GET from each user, on new connections."""
    headers = {"Authorization": f"Bearer {token}"}

    def one(user: str) -> float:
        return median(http_timing(world, user, url, headers).ttfb_ms for _ in range(count))

    users = list(users)
    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        return pd.Series(dict(zip(users, pool.map(one, users), strict=True)), name="ttfb_ms")


# -- the closing table --------------------------------------------------------------------


def gateway_claims(
    costs: pd.DataFrame,
    without: pd.DataFrame,
    with_gate: pd.DataFrame,
    reached_without: pd.Series,
    reached_with: pd.Series,
    per_pop: pd.DataFrame,
    one_counter: pd.DataFrame,
    burst: int,
    latency: pd.DataFrame,
) -> list[Claim]:
    """The textbook's claims next to this run's numbers."""
    reached, before = bad_reached(reached_with), bad_reached(reached_without)
    far = costs["ask central auth (ms)"].idxmax()
    heavy = without.index[-1]
    cost = (latency["one counter"] - latency["per-PoP buckets"]).round(0)
    return [
        Claim(
            "Checking a token at the edge costs microseconds; asking central auth, a round trip",
            "µs vs. one RTT to the auth service (Tokyo–Ashburn ≈ 150 ms)",
            f"{costs['verify at the PoP (µs)'].median():.0f} µs per signature check at a PoP; "
            f"{costs.loc[far, 'ask central auth (ms)']:.0f} ms to ask central auth from "
            f"{costs.loc[far, 'pop']} ({costs.loc[far, 'PoP–auth RTT (ms)']:.0f} ms RTT)",
            "an RSA-2048 check in Python's cryptography (OpenSSL) on this VM; the central "
            "round trip is the world's RTT plus the auth service's own work",
        ),
        Claim(
            "Bad traffic never costs the origin a request",
            "0 bad requests at the origin",
            f"{reached} bad requests (forged, expired, oversized, invalid) reached the origin "
            f"with the gateway; {before} did without it, under the same load",
            "counted by the origin from each sender's label; a flooding key's requests within "
            "its limit are not bad traffic, and each PoP it reaches gives it a limit",
        ),
        Claim(
            "Under abuse the origin sees only the good requests",
            "origin load = good traffic",
            f"at {heavy} users: {without.loc[heavy, 'counted_per_s']:.0f} origin requests/s "
            f"without the gateway, {with_gate.loc[heavy, 'counted_per_s']:.0f} with it",
            "the load is a mix (about half bad); Locust and the PoPs share this machine's cores",
        ),
        Claim(
            "A rate limit counted at each PoP holds for one client",
            "the limit (burst, then the rate)",
            f"one key spraying {len(per_pop)} PoPs got {int(per_pop['allowed'].sum())} "
            f"requests with per-PoP buckets, {int(one_counter['allowed'].sum())} with one "
            f"counter (burst {burst})",
            "each PoP keeps its own bucket: N PoPs give N× the limit (the textbook is silent)",
        ),
        Claim(
            "One counter owned in one place costs a round trip",
            "not stated",
            "added TTFB per city: "
            + ", ".join(f"{u.removeprefix('user-')} {v:+.0f} ms" for u, v in cost.items()),
            "every request waits for the counter in Ashburn; the per-PoP bucket waits for nothing",
        ),
    ]
