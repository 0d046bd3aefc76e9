"""Chapter 03's checks: the token bucket and the API gateway, tested as a client would.

    with check("the bucket"):
        bucket_cases(take, random.Random())
    probe = GatewayProbe(world, edge, idp)
    MADE_UP = probe.made_up_config(GATE)       # audience, limits, schema: new each run
    with check("good tokens pass"):
        probe.good_requests(MADE_UP)

Every check makes its inputs afresh: subjects, paths, query strings, bodies,
methods, the schema's field names, the audience, the rates. Requests come from
users in cities the chapter's prose never names (Vienna, Zurich) and one more
picked at random, through the anycast address, so a gateway written for the
examples fails. Each request carries an `x-traffic` label (`probe-good` or
`probe-bad`), and the origin counts the labels it receives: "nothing bad reached
the origin" is counted at the origin, not inferred from status codes.

The bucket is checked as a pure function through the same JSON round trip
`env.state` makes, with arrival times chosen half a token away from any
boundary, so a correct bucket never meets a tie.
"""

from __future__ import annotations

import json
import math
import random
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kit.nb.checks import CheckFailed, expect, expect_equal
from kit.nb.measure import http_request
from kit.nb.tokens import forgeries, malformed

WORDS = "amber basil cedar delta ember fjord grove haze iris juniper kelp lumen moss nectar".split()
UNNAMED = ("user-vienna", "user-zurich")
BAD = "probe-bad"
GOOD = "probe-good"

Take = Callable[[Any, float, float, float], tuple[bool, Any]]


# -- the bucket -------------------------------------------------------------------------


def _run(take: Take, bucket: Any, now: float, rate: float, burst: float) -> tuple[bool, Any]:
    """One call, with the bucket through JSON as env.state would keep it."""
    allowed, bucket = take(json.loads(json.dumps(bucket)), now, rate, burst)
    try:
        json.dumps(bucket, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise CheckFailed(
            "the bucket take() returns", "JSON (env.state keeps only JSON)", repr(bucket)
        ) from error
    return bool(allowed), bucket


def _burst_at(take: Take, bucket: Any, now: float, rate: float, burst: float, n: int) -> tuple:
    """``n`` requests at one instant: (how many were allowed, bucket)."""
    allowed = 0
    for _ in range(n):
        ok, bucket = _run(take, bucket, now, rate, burst)
        allowed += ok
    return allowed, bucket


def bucket_cases(take: Take, rng: random.Random, rounds: int = 6) -> None:
    """The token bucket's promises, with rates, bursts and times made up for this run."""
    for _ in range(rounds):
        rate = rng.choice([0.5, 2.0, 3.0, 7.5, 40.0]) * rng.uniform(0.8, 1.25)
        burst = rng.randint(2, 12)
        t = rng.uniform(1e3, 1e9)
        where = f"rate {rate:.3g}/s, burst {burst}"
        got, bucket = _burst_at(take, None, t, rate, burst, burst)
        expect_equal(got, burst, f"{where}: a new key sends {burst} at once; allowed")
        k = rng.randint(1, burst - 1)
        t += (k + 0.5) / rate  # k and a half tokens come back
        got, bucket = _burst_at(take, bucket, t, rate, burst, burst)
        expect_equal(
            got,
            k,
            f"{where}: after waiting {(k + 0.5) / rate:.3g} s ({k}.5 tokens' worth), {burst} "
            "at once; the refill lets through",
            hint="tokens come back at `rate` per second of time passed: hint('03-bucket')",
        )
        t += 0.25 / rate  # the half token left, plus a quarter: still under one
        for i in range(5):  # hammering while empty: refused, and it must not cost anything
            ok, bucket = _run(take, bucket, t + i * 0.01 / rate, rate, burst)
            expect(not ok, f"{where}: a request with under one token left", "refused", "allowed")
        t += 0.3 / rate  # now just over one token: 0.5 + 0.25 + 0.3
        ok, bucket = _run(take, bucket, t, rate, burst)
        expect(
            ok,
            f"{where}: five refused requests, then one token's worth of waiting in all; "
            "the next request",
            "allowed (tokens come back with time, and a refused request costs nothing)",
            "refused",
            hint="hint('03-bucket')",
        )
        t += 1000 * burst / rate  # a long idle time
        got, bucket = _burst_at(take, bucket, t, rate, burst, burst + 5)
        expect_equal(
            got,
            burst,
            f"{where}: after a long idle time, {burst + 5} at once; allowed (the bucket holds "
            f"at most burst={burst})",
        )


# -- the gateway --------------------------------------------------------------------------


class GatewayProbe:
    """Sends what a gateway must pass or refuse from world users (module docstring)."""

    def __init__(self, world: Any, edge: Any, idp: Any, rng: random.Random | None = None) -> None:
        self.world, self.edge, self.idp = world, edge, idp
        self.rng = rng or random.Random()
        clients = [n.name for n in world.spec.of_kind("client") if n.name not in UNNAMED]
        self.users = [*UNNAMED, self.rng.choice(clients)]
        self.base = edge.anycast_url
        self.origin_seen = self._origin_labels()

    # -- sending -------------------------------------------------------------------------

    def send(
        self,
        user: str,
        path: str,
        *,
        auth: str | None = None,
        method: str = "GET",
        body: str | None = None,
        content_type: str = "application/json",
        label: str = GOOD,
        base: str | None = None,
    ) -> dict[str, Any]:
        headers = {"x-traffic": label}
        if auth:
            headers["Authorization"] = auth
        if body is not None:
            headers["Content-Type"] = content_type
        return http_request(
            self.world, user, (base or self.base) + path, method=method, headers=headers, body=body
        )

    def send_all(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Several requests at once (each a dict of ``send``'s arguments)."""
        with ThreadPoolExecutor(max_workers=6) as pool:
            return list(pool.map(lambda r: self.send(**r), requests))

    def _origin_labels(self) -> dict[str, int]:
        counters = self.edge.metrics(self.edge.origin)
        return {k: v for k, v in counters.items() if k.startswith("traffic:")}

    # -- what the checks use ---------------------------------------------------------------

    def subject(self) -> str:
        return f"{self.rng.choice(WORDS)}-{secrets.token_hex(3)}"

    def token(self, config: dict[str, Any], sub: str | None = None, **claims: Any) -> str:
        """A genuine token for this config's audience (claims override any claim)."""
        return self.idp.mint(sub or self.subject(), **{"aud": config["audience"], **claims})

    def bearer(self, config: dict[str, Any]) -> str:
        """An Authorization header with a genuine token for a subject of its own."""
        return "Bearer " + self.token(config)

    def made_up_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """The chapter's config with an audience, limits and a schema made up for this run."""
        rng = self.rng
        name, count = rng.sample([w for w in WORDS], 2)
        schema = {
            "type": "object",
            "required": [name, count],
            "properties": {
                name: {"type": "string", "maxLength": 40},
                count: {"type": "integer", "minimum": 1},
            },
            "additionalProperties": False,
        }
        return {
            **config,
            "audience": f"{rng.choice(WORDS)}-api-{secrets.token_hex(2)}",
            "leeway_s": rng.randint(20, 40),
            "jwks_min_refresh_s": 2,
            "rate_per_s": round(rng.uniform(0.1, 0.2), 3),
            "burst": rng.randint(3, 6),
            "max_body_bytes": rng.randint(6000, 9000),
            "max_depth": rng.randint(5, 9),
            "schemas": {"/api/echo": schema},
            "fields": [name, count],  # for the checks (a gateway ignores unknown keys)
        }

    def expect_status(
        self, answer: dict[str, Any], status: int, what: str, hint: str = ""
    ) -> dict[str, Any]:
        got = answer["status"]
        shown: Any = got
        if got != status:
            body = answer["body"].strip().replace("\n", " ")
            shown = f"{got}, saying {body[:160]!r}" if body else got
        expect(got == status, what, status, shown, hint)
        return answer

    def expect_unauthorized(self, answer: dict[str, Any], what: str) -> None:
        self.expect_status(
            answer,
            401,
            f"{what}: status",
            hint="401 means 'who are you?' (403 is 'I know, and no'): hint('03-gateway')",
        )
        challenge = answer["headers"].get("www-authenticate", "")
        expect(
            challenge.lower().startswith("bearer"),
            f"{what}: the WWW-Authenticate header",
            'a challenge such as Bearer error="invalid_token", error_description="..."',
            repr(challenge) if challenge else "no WWW-Authenticate header",
            hint="RFC 6750 §3: every 401 says how to authenticate",
        )

    def good_requests(self, config: dict[str, Any]) -> None:
        """Genuine tokens pass: GET with its query, and a valid body on POST and PUT."""
        with ThreadPoolExecutor(max_workers=len(self.users)) as pool:
            list(pool.map(lambda user: self._good_from(user, config), self.users))

    def _good_from(self, user: str, config: dict[str, Any]) -> None:
        name, count = config["fields"]
        item, q = secrets.token_hex(3), self.rng.choice(WORDS)
        auth = "Bearer " + self.token(config)
        answer = self.send(user, f"/api/items/{item}?q={q}", auth=auth)
        self.expect_status(answer, 200, f"GET /api/items/{item}?q={q} from {user}, good token")
        expect(
            f'"id": "{item}"' in answer["body"],
            f"GET /api/items/{item} from {user}: the origin's answer",
            f"the item {item}",
            answer["body"][:120],
        )
        method = self.rng.choice(["POST", "PUT"])
        body = json.dumps({name: self.rng.choice(WORDS), count: self.rng.randint(1, 99)})
        answer = self.send(user, "/api/echo", auth=auth, method=method, body=body)
        what = f"{method} /api/echo from {user}, good token, a body that fits the schema"
        self.expect_status(answer, 200, what)
        echoed = json.loads(answer["body"])
        expect_equal(echoed["method"], method, f"{what}: the method the origin saw")
        expect_equal(
            int(echoed["headers"].get("Content-Length", 0)),
            len(body),
            f"{what}: the body size the origin saw",
        )

    def bad_tokens(self, config: dict[str, Any]) -> None:
        """Malformed and forged tokens, and genuine ones past their time or for someone else."""
        user = self.rng.choice(UNNAMED)
        sub, now, leeway = self.subject(), int(time.time()), config["leeway_s"]
        claims = {
            "iss": self.idp.issuer,
            "sub": sub,
            "aud": config["audience"],
            "iat": now,
            "exp": now + 600,
        }
        jwks = self.idp.keys()["jwks"]
        cases = {name: value for name, value in malformed().items()}
        for name, token in forgeries(jwks, claims, self.token(config, sub)).items():
            cases[name] = "Bearer " + token
        genuine = {
            f"expired {leeway + 60} s ago": {"exp": now - leeway - 60, "iat": now - 900},
            f"not valid for another {leeway + 120} s": {"nbf": now + leeway + 120},
            "for another audience": {"aud": f"{self.rng.choice(WORDS)}-api"},
            "from another issuer": {"iss": "https://id.evil.test"},
        }
        for name, changes in genuine.items():
            cases[f"a genuine token {name}"] = "Bearer " + self.token(config, sub, **changes)
        cases["HS256 (an algorithm this API does not accept)"] = "Bearer " + self.idp.mint(
            sub, aud=config["audience"], alg="HS256"
        )
        names = list(cases)
        path = f"/api/items/{secrets.token_hex(3)}"
        answers = self.send_all(
            [dict(user=user, path=path, auth=cases[n], label=BAD) for n in names]
        )
        for name, answer in zip(names, answers, strict=True):
            self.expect_unauthorized(answer, f"GET {path} from {user}, {name}")

    def leeway(self, config: dict[str, Any]) -> None:
        """A token expired less than `leeway_s` ago still passes (clocks disagree a little)."""
        user, leeway = self.rng.choice(UNNAMED), config["leeway_s"]
        exp = int(time.time()) - leeway // 2
        token = self.token(config, exp=exp, iat=exp - 600)
        answer = self.send(user, f"/api/items/{secrets.token_hex(2)}", auth="Bearer " + token)
        self.expect_status(
            answer,
            200,
            f"a token that expired {leeway // 2} s ago, with leeway_s={leeway}",
            hint="the leeway comes from env.config: hint('03-gateway')",
        )

    def key_rotation(self, config: dict[str, Any]) -> None:
        """Known keys are not fetched again; unknown kids are, at most once per min refresh;
        a token signed after a rotation passes once that time has gone."""
        user, wait = UNNAMED[0], config["jwks_min_refresh_s"]
        sub, path = self.subject(), f"/api/items/{secrets.token_hex(2)}"
        auth = "Bearer " + self.token(config, sub)
        self.expect_status(self.send(user, path, auth=auth), 200, f"GET {path}, good token")
        fetches = self.idp.metrics()["jwks_fetches"]
        started = time.monotonic()
        for _ in range(4):
            self.send(user, path, auth="Bearer " + self.token(config))
        again = self.idp.metrics()["jwks_fetches"] - fetches
        expect_equal(
            again,
            0,
            "JWKS fetches during 4 requests with tokens under a kid the PoP already has",
            hint="keep the keys in env.state between requests: hint('03-gateway')",
        )
        claims = {"iss": self.idp.issuer, "sub": sub, "aud": config["audience"]}
        unknown = [
            forgeries(self.idp.keys()["jwks"], claims, self.token(config))["unknown kid"]
            for _ in range(3)
        ]
        for token in unknown * 3:
            self.send(user, path, auth="Bearer " + token, label=BAD)
        elapsed = time.monotonic() - started
        bound = 1 + int(elapsed / wait)
        fetched = self.idp.metrics()["jwks_fetches"] - fetches
        expect(
            fetched <= bound,
            f"JWKS fetches during 9 requests with unknown kids in {elapsed:.1f} s "
            f"(jwks_min_refresh_s={wait})",
            f"at most {bound}",
            fetched,
            hint="an attacker can make up kids forever: hint('03-gateway')",
        )
        time.sleep(wait + 0.2)
        old = self.token(config)
        new_kid = self.idp.rotate()
        answer = self.send(user, path, auth="Bearer " + self.token(config))
        self.expect_status(
            answer,
            200,
            f"GET {path}: a token signed with the rotated key (new kid {new_kid}), "
            f"{wait} s after the PoP last fetched the JWKS",
            hint="an unknown kid is a reason to fetch the JWKS again: hint('03-gateway')",
        )
        answer = self.send(user, path, auth="Bearer " + old)
        self.expect_status(answer, 200, f"GET {path}: a token signed just before the rotation")

    def rate_limit(self, config: dict[str, Any]) -> None:
        """One key gets `burst` requests at once, then 429 with Retry-After; others are apart."""
        user, burst = self.rng.choice(UNNAMED), config["burst"]
        auth = "Bearer " + self.token(config)
        path = f"/api/items/{secrets.token_hex(2)}"
        statuses = [self.send(user, path, auth=auth)["status"] for _ in range(burst)]
        expect_equal(
            statuses,
            [200] * burst,
            f"{burst} requests at once from one API key (burst={burst}): statuses",
        )
        over = [self.send(user, path, auth=auth, label=BAD) for _ in range(2)]
        for answer in over:
            self.expect_status(
                answer,
                429,
                f"request {burst + 1} from that API key within a second "
                f"(rate_per_s={config['rate_per_s']})",
                hint="hint('03-gateway')",
            )
        expect(
            "retry-after" in over[0]["headers"],
            "the 429's headers",
            "a Retry-After header",
            sorted(over[0]["headers"]),
        )
        other = self.send(user, path, auth="Bearer " + self.token(config))
        self.expect_status(
            other, 200, "a request from another API key, meanwhile (one bucket per key)"
        )

    def one_counter(self, config: dict[str, Any]) -> int:
        """With `quota_url`, a key spraying every PoP gets `burst` in all, not per PoP."""
        user, burst = self.rng.choice(UNNAMED), config["burst"]
        auth = "Bearer " + self.token(config)
        pops = [self.edge.pop_url(p) for p in self.edge.pops]
        path = f"/api/items/{secrets.token_hex(2)}"
        started = time.monotonic()
        answers = self.send_all(
            [dict(user=user, path=path, auth=auth, base=b, label="probe-spray") for b in pops * 2]
        )
        allowed = sum(a["status"] == 200 for a in answers)
        refilled = math.ceil((time.monotonic() - started) * config["rate_per_s"])
        limit = burst + refilled
        others = sorted({a["status"] for a in answers} - {200, 429})
        expect(not others, f"statuses spraying {len(pops)} PoPs", "200 or 429", others)
        expect(
            allowed <= limit,
            f"requests allowed for one API key spraying {len(pops)} PoPs "
            f"(burst={burst}, quota_url set)",
            f"at most {limit} (the burst and {refilled} refilled meanwhile): one counter for "
            "the key, wherever it asks",
            allowed,
            hint="with quota_url set, every PoP asks that one counter: hint('03-gateway')",
        )
        return allowed

    def bodies(self, config: dict[str, Any]) -> None:
        """Bodies are checked on every method that carries one: 400 naming the field,
        413 too big, 415 not JSON, 400 too deep; all before the origin sees them."""
        user, (name, count) = self.rng.choice(UNNAMED), config["fields"]
        limit, depth = config["max_body_bytes"], config["max_depth"]
        methods = ["POST", "PUT", "PATCH"]  # a body on every method that carries one
        word = self.rng.choice(WORDS)
        nested: Any = word
        for _ in range(depth + 1):
            nested = [nested]
        cases = [
            (f"{name} missing", methods[0], json.dumps({count: 3}), 400, name),
            (
                f"{count} not an integer",
                methods[1],
                json.dumps({name: word, count: "x"}),
                400,
                count,
            ),
            (f"{name} not a string", methods[2], json.dumps({name: 5, count: 2}), 400, name),
            ("not JSON", methods[0], "{" + word, 400, None),
            (
                f"nested {depth + 1} deep (max_depth={depth})",
                methods[1],
                json.dumps({name: nested}),
                400,
                None,
            ),
            ("nested 3000 deep", methods[2], "[" * 3000 + "]" * 3000, 400, None),
            (f"{limit + 1} bytes (max_body_bytes={limit})", methods[0], "", 413, None),
        ]
        pad = limit + 1 - len(json.dumps({name: "", count: 1}))
        cases[-1] = (*cases[-1][:2], json.dumps({name: "a" * pad, count: 1}), 413, None)
        requests = [
            dict(user=user, path="/api/echo", auth=self.bearer(config), method=m, body=b, label=BAD)
            for _, m, b, _, _ in cases
        ]
        text = json.dumps({name: word, count: 1})
        requests.append(
            dict(
                user=user,
                path="/api/echo",
                auth=self.bearer(config),
                method="POST",
                body=text,
                content_type="text/plain",
                label=BAD,
            )
        )
        cases.append(("JSON sent as text/plain", "POST", text, 415, None))
        requests.append(dict(user=user, path="/api/echo", method="POST", body="{", label=BAD))
        cases.append(("no token, and a body that is not JSON", "POST", "{", 401, None))
        answers = self.send_all(requests)
        for (what, method, _, status, field), answer in zip(cases, answers, strict=True):
            what = f"{method} /api/echo, {what}"
            self.expect_status(answer, status, what, hint="hint('03-gateway')")
            if field:
                expect(
                    field in answer["body"],
                    f"{what}: the 400's body",
                    f"the name of the field, {field!r}",
                    answer["body"][:160],
                )

    def nothing_bad_reached_the_origin(self) -> int:
        """The origin's own count of requests labelled bad since this probe began."""
        now = self._origin_labels()
        key = f"traffic:{BAD}"
        reached = now.get(key, 0) - self.origin_seen.get(key, 0)
        expect_equal(reached, 0, "requests the checks sent as bad that the origin received")
        return reached
