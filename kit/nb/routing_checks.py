"""Chapter 02's checks of an edge router: each property tested on requests made up per run.

    probe = RouterProbe(world, edge.anycast_url)
    probe.redirects(ROUTES)        # raises CheckFailed naming the broken property
    probe.rewrites(ROUTES)
    probe.api_routing(ROUTES)
    probe.trusted_header()
    probe.made_up_rules(eu_origin) # a second set of rules, for `deploy(..., config=...)`
    probe.api_routing(rules_with_a_dead_origin, {unreachable(eu_origin): "origin"}, note=...)

Every request is sent from a user's host, through the emulated network, to the
anycast address, with paths, query strings, bodies and methods (POST, PUT)
drawn afresh on each call, from users of every country the world has, so a
router that only works for the examples a learner has read fails. What the
origin received is read back from its `/api/echo` (method, query, headers and
the body's `Content-Length`) or from the JSON path it answers for `/api/NAME`.

Requests go out with `kit.nb.measure.http_request` (curl on the host, any method,
the answer as `{"status", "headers", "body"}`, no redirect followed).
"""

from __future__ import annotations

import json
import random
import string
from typing import Any, NamedTuple

from yarl import URL

from kit.nb.checks import expect, expect_equal
from kit.nb.measure import http_request

# Countries of the world's users, and which of them count as Europe in the chapter.
EUROPE = ["AT", "BE", "CH", "DE", "DK", "ES", "FI", "FR", "GB", "IE", "IT", "NL", "NO", "PL"]
TRUSTED = "x-client-country"


def _expect_no_redirect(got: dict[str, Any], what: str, expected: str, hint: str) -> None:
    found = f"{got['status']} to {got['headers'].get('location')}"
    expect(got["status"] not in (301, 302, 303, 307, 308), what, expected, found, hint=hint)


def unreachable(url: str) -> str:
    """The same host on a port nothing listens on: a connection there is refused at once."""
    return str(URL(url).with_port(81))


def _word(rng: random.Random, n: int = 6) -> str:
    return "".join(rng.choices(string.ascii_lowercase, k=n))


def _said(response: dict[str, Any]) -> str:
    """What a PoP's 5xx said (the handler's error and line), for a hint."""
    if response["status"] >= 500 or response["status"] == 0:
        return f" The PoP answered {response['status']}: {response['body'].strip()[:200]}"
    return ""


def _json(response: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(response["body"])
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class UnderCase(NamedTuple):
    """One question for `under(path, prefix)`, its answer, and what kind of case it is."""

    path: str
    prefix: str
    wanted: bool
    kind: str


class RouterProbe:
    """Sends made-up requests from world users and checks one property at a time."""

    @staticmethod
    def under_cases(rng: random.Random, rounds: int = 10) -> list[UnderCase]:
        """Prefixes of one or two made-up segments, each with paths in and out of it."""
        cases = []
        for number in range(rounds):
            segments = [_word(rng, rng.randint(2, 6)) for _ in range(1 + number % 2)]
            prefix = "/" + "/".join(segments)
            a, b = _word(rng, 4), _word(rng, 3)
            cases += [
                UnderCase(prefix, prefix, True, "the prefix itself"),
                UnderCase(f"{prefix}/{a}", prefix, True, "a path below it"),
                UnderCase(f"{prefix}/{a}/{b}", prefix, True, "a path two segments below it"),
                UnderCase(f"{prefix}/", prefix, True, "the prefix with a trailing slash"),
                UnderCase(
                    f"{prefix}{a}",
                    prefix,
                    False,
                    "a look-alike: it only starts with the same letters",
                ),
                UnderCase(
                    f"{prefix}-{a}/{b}", prefix, False, "a look-alike: same letters, then a dash"
                ),
                UnderCase(
                    f"/{a}{prefix}", prefix, False, "the prefix in the middle of another path"
                ),
                UnderCase(f"/{a}", prefix, False, "another path"),
            ]
        kinds = list(dict.fromkeys(case.kind for case in cases))
        cases.sort(key=lambda case: kinds.index(case.kind))  # each kind for every prefix in turn
        return cases

    def __init__(self, world: Any, url: str, seed: int | None = None) -> None:
        self.world, self.url = world, url
        self.rng = random.Random(seed)
        self.users = {
            n.name: n.country for n in world.spec.of_kind("client") if n.name.startswith("user-")
        }

    def send(self, user: str, path: str, **options: Any) -> dict[str, Any]:
        return http_request(self.world, user, self.url + path, **options)

    def query(self) -> tuple[str, dict[str, str]]:
        """A fresh query string and what it parses to."""
        pairs = {_word(self.rng, 3): _word(self.rng, 5) for _ in range(self.rng.randint(1, 3))}
        return "&".join(f"{k}={v}" for k, v in pairs.items()), pairs

    def users_in(self, countries: list[str], inside: bool = True) -> list[str]:
        return [u for u, c in self.users.items() if (c in countries) == inside]

    # -- redirects ---------------------------------------------------------------

    def redirects(self, config: dict[str, Any]) -> None:
        """Rule countries get a 302 to the rule's site with path and query; exceptions don't."""
        for rule in config["redirects"]:
            for user in self.users_in(rule["countries"]):
                path = f"/{_word(self.rng)}/{_word(self.rng, 4)}"
                qs, _ = self.query()
                got = self.send(user, f"{path}?{qs}")
                expect_equal(
                    got["status"],
                    302,
                    f"redirect: status of GET {path}?{qs} from {user} "
                    f"(country {self.users[user]}, in the rule's countries)",
                    hint="every country of a redirect rule is redirected, not only the one "
                    "you read about: hint('02-router') level 1." + _said(got),
                )
                location = got["headers"].get("location", "")
                wanted = rule["to"] + f"{path}?{qs}"
                if location == rule["to"] + path:
                    problem = "the redirect dropped the query string"
                elif location.split("?")[0] == rule["to"]:
                    problem = "the redirect dropped the path"
                else:
                    problem = "the redirect must keep the path and the query string"
                expect_equal(location, wanted, f"redirect: Location for {user} ({problem})")
                for prefix in rule["except"]:
                    inside = f"{prefix.rstrip('/')}/{_word(self.rng)}"
                    _expect_no_redirect(
                        self.send(user, inside),
                        f"redirect exception: GET {inside} from {user} ({prefix} is an "
                        "exception of the rule)",
                        "no redirect: paths under an exception are not redirected",
                        "look at the rule's 'except' list before redirecting",
                    )
                    lookalike = f"{prefix.rstrip('/')}{_word(self.rng, 4)}"
                    got = self.send(user, lookalike)
                    expect_equal(
                        got["status"],
                        302,
                        f"redirect: GET {lookalike} from {user}: this path only starts with "
                        f"the same letters as the exception {prefix}, it is not under it",
                        hint="an exception covers the prefix and the paths below it, "
                        "segment by segment: use your under()." + _said(got),
                    )
            for user in self.users_in(rule["countries"], inside=False)[:3]:
                path = f"/{_word(self.rng)}"
                _expect_no_redirect(
                    self.send(user, path),
                    f"redirect: GET {path} from {user} (country {self.users[user]}, not in "
                    "the rule's countries)",
                    "no redirect",
                    "only the rule's countries are redirected",
                )

    # -- rewrites ----------------------------------------------------------------

    def rewrites(self, config: dict[str, Any]) -> None:
        """Under `from` becomes under `to`, rest of path and query kept; look-alikes untouched.

        A rewrite into `/page` is seen in the page's title; one into `/api/NAME` in the
        path the origin's JSON names, and into `/api/echo` in the query it received.
        """
        user = self.rewrite_user(config)
        for rule in config["rewrites"]:
            source, target = rule["from"].rstrip("/"), rule["to"].rstrip("/")
            if target == "/page":
                self._rewrite_to_page(user, source, target)
            elif target.startswith("/api/"):
                self._rewrite_to_api(user, source, target, rule)
            lookalike = f"{source}{_word(self.rng, 3)}/{_word(self.rng)}"
            got = self.send(user, lookalike)
            unchanged = f"nothing at {lookalike}" in got["body"] or (
                _json(got).get("path") == lookalike
            )
            expect(
                unchanged,
                f"rewrite: GET {lookalike} only starts with the same letters as "
                f"{rule['from']}; it is not under it",
                f"passed on unchanged (the origin received {lookalike})",
                f"{got['status']} {got['body'][:100]!r}",
                hint="a rule covers its prefix and the paths below it, segment by segment: "
                "use your under()",
            )

    def _rewrite_to_page(self, user: str, source: str, target: str) -> None:
        name = _word(self.rng)
        qs, _ = self.query()
        got = self.send(user, f"{source}/{name}?{qs}")
        expect(
            got["status"] == 200 and f"<h1>{name}</h1>" in got["body"],
            f"rewrite: GET {source}/{name}?{qs} from {user}",
            f"200 with the page {target}/{name}, without a redirect",
            f"{got['status']} {got['body'][:80]!r}",
            hint="a rewrite changes the URL on its way to the origin; a 3xx is a "
            "redirect, a 404 means the origin got the old path." + _said(got),
        )

    def _rewrite_to_api(self, user: str, source: str, target: str, rule: dict[str, str]) -> None:
        rest = f"/{_word(self.rng)}/{_word(self.rng, 4)}"
        qs, pairs = self.query()
        for asked, seen in [(source + rest, target + rest), (source, target)]:
            got = self.send(user, f"{asked}?{qs}")
            expect_equal(
                _json(got).get("path"),
                seen,
                f"rewrite: the path the origin received for GET {asked}?{qs} "
                f"(rule {rule['from']} -> {rule['to']})",
                hint="replace the rule's prefix, keep the rest of the path." + _said(got),
            )
        if target.endswith("/api/echo"):
            got = self.send(user, f"{source}?{qs}")
            expect_equal(
                _json(got).get("query"),
                pairs,
                f"rewrite: the query string the origin received for GET {source}?{qs}",
                hint="URL.with_path() drops the query string: put it back",
            )

    # -- API routing -------------------------------------------------------------

    def api_routing(self, config: dict[str, Any], names: dict[str, str], note: str = "") -> None:
        """API calls from a rule's countries reach its origin with method, query, headers, body.

        `names` maps an origin URL to the name of the origin that should answer (its
        x-origin); `note` is said after each call in a failure message.
        """
        near = {
            u: names[r["url"]]
            for r in config["nearest_origin"]
            for u in self.users_in(r["countries"])
        }
        users = list(self.users)
        self.rng.shuffle(users)
        users.sort(key=lambda user: user not in near)  # the routed users first
        for number, user in enumerate(users):
            wanted = near.get(user, "origin")
            method = ["POST", "PUT", "GET"][number % 3] if user in near else "PUT"
            body = None if method == "GET" else _word(self.rng, self.rng.randint(200, 3000))
            qs, pairs = self.query()
            tag = _word(self.rng, 10)
            got = self.send(
                user,
                f"{config['api']}/echo?{qs}",
                method=method,
                body=body,
                headers={"x-request-tag": tag},
            )
            call = f"{user}'s {method} {config['api']}/echo?{qs}" + (f" ({note})" if note else "")
            expect_equal(
                got["status"], 200, f"API routing: status of {call}", hint=_said(got).strip()
            )
            expect_equal(
                got["headers"].get("x-origin"),
                wanted,
                f"API routing: the origin that answered {call} (country {self.users[user]})",
                hint="API calls go to the nearest origin of the first rule whose countries "
                "hold the user's country; everyone else to env.origin",
            )
            echo = _json(got)
            expect_equal(
                echo.get("method"),
                method,
                f"API routing: the method the origin received for {call}",
                hint="env.fetch(url) sends a GET: send the request itself, with a new URL",
            )
            headers = {k.lower(): v for k, v in echo.get("headers", {}).items()}
            size = str(len(body)) if body else None
            expect_equal(
                headers.get("content-length") if body else None,
                size,
                f"API routing: the body size (Content-Length) the origin received for {call}",
                hint="the request's body must go on with it: request.replace(url=...) keeps it",
            )
            expect_equal(
                headers.get("x-request-tag"),
                tag,
                f"API routing: the client's header x-request-tag the origin received for {call}",
                hint="the request's headers must go on with it",
            )
            expect_equal(
                echo.get("query"),
                pairs,
                f"API routing: the query string the origin received for {call}",
                hint="the URL on the other origin is its base URL + the path AND the query",
            )

    # -- the trusted header --------------------------------------------------------

    def trusted_header(self, api: str = "/api") -> None:
        """Every request reaching an origin carries the user's real country; forgeries are gone."""
        users = list(self.users)
        self.rng.shuffle(users)
        for number, user in enumerate(users):
            country = self.users[user]
            forged = self.rng.choice([c for c in ["US", "FR", "KP", "NZ"] if c != country])
            spelled = [TRUSTED, TRUSTED.title(), TRUSTED.upper()][number % 3]
            for sent in ({}, {spelled: forged}):
                method = self.rng.choice(["GET", "POST"])
                body = _word(self.rng, 50) if method == "POST" else None
                got = self.send(user, f"{api}/echo", method=method, body=body, headers=sent)
                expect_equal(
                    got["status"],
                    200,
                    f"status of {method} {api}/echo from {user}",
                    hint=_said(got).strip(),
                )
                echoed = _json(got).get("headers", {})
                values = [v for k, v in echoed.items() if k.lower() == TRUSTED]
                what = f"trusted header: the {TRUSTED} values the origin received from {user}"
                if sent:
                    what += f", who sent a forged '{spelled}: {forged}'"
                expect_equal(
                    values,
                    [country],
                    what,
                    hint="set the header on a copy of the headers, replacing any value the "
                    "client sent (.add keeps the client's), on every request you send on",
                )

    # -- rules the learner has not seen ----------------------------------------------

    def made_up_rules(self, eu_origin: str) -> dict[str, Any]:
        """A fresh config in the chapter's format: prefixes, sites and countries made up now."""
        countries = sorted({c for c in self.users.values()})
        redirected = self.rng.sample([c for c in countries if c not in ("DE",)], 2)
        routed = self.rng.sample([c for c in countries if c not in redirected], 2)
        return {
            "redirects": [
                {
                    "countries": redirected,
                    "to": f"https://{_word(self.rng, 5)}.example.org",
                    "except": ["/api", f"/{_word(self.rng, 5)}"],
                }
            ],
            "rewrites": [
                {"from": f"/{_word(self.rng, 5)}", "to": "/api/echo"},
                {
                    "from": f"/{_word(self.rng, 4)}/{_word(self.rng, 3)}",
                    "to": f"/api/{_word(self.rng, 5)}",
                },
            ],
            "api": "/api",
            "nearest_origin": [{"countries": routed, "url": eu_origin}],
        }

    def rewrite_user(self, config: dict[str, Any]) -> str:
        """A user no redirect rule applies to and no nearest-origin rule routes."""
        taken = {c for r in config["redirects"] for c in r["countries"]}
        taken |= {c for r in config["nearest_origin"] for c in r["countries"]}
        return next(u for u, c in self.users.items() if c not in taken)
