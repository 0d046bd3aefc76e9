"""Chapter 04's checks: personalised pages through the PoPs, tested on made-up users.

    page = visit(world, "user-berlin", url + "/p/home", uid="reader-0001")
    page.greeting, page.cohort, page.market, page.device, page.cache

    VaryProbe(world, edge).check()          # the origin's answer is safe for a shared cache
    probe = PersonalProbe(world, edge)
    config = probe.made_up_config()         # weights, markets made up for this run
    deploy(personalise, edge.pops, config=config, matcher=PAGES)
    probe.cohorts_match_weights(config)     # chi-square over ~2,000 users
    probe.sticky(config, redeploy)          # the same cohort at every PoP, and after a redeploy
    ...

Everything is measured from users' hosts through the emulated network, with
ids, paths, queries, weights and markets made up on each run, from users of
cities the chapter never names. The origin's personalised page (`/p/NAME`,
`kit/services/origin.py`) says what it was asked for: the greeting it rendered
(from the `uid` cookie it received), the variant the edge asked for (`x-cohort`,
`x-market`, `x-device`) and the query string, so a check reads from the page
what reached the origin and what the PoP's cache gave back.

**The statistics.** The cohort split is tested with Pearson's chi-square test
(`scipy.stats.chisquare`) over `SURVEY_USERS` made-up users: a correct split
gives a p-value spread uniformly over [0, 1], so it fails the test (p <
`SIGNIFICANCE` = 1e-4) once in 10,000 runs. The weights made up for a run are far
from equal (the largest at least twice the smallest), so a split that ignores
them (50/50, or uniform over the cohorts) gives p below 1e-10 and is always
rejected. A cohort with weight 0 (an arm that is paused) must get nobody.

**Many requests at once.** Thousands of users through `curl` would take minutes,
so `survey` runs one small Python program on a world host (`SURVEY`: aiohttp,
32 connections) that sends every request and prints what each page said.
"""

from __future__ import annotations

import json
import random
import re
import shlex
import string
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scipy.stats import chisquare

from kit.nb.checks import expect, expect_equal
from kit.nb.measure import http_request

SURVEY_USERS = 2000
SIGNIFICANCE = 1e-4
COOKIE = "uid"
ID = re.compile(r"[A-Za-z0-9_-]{8,64}")

# User-Agents and Client Hints, with the device each one is. None of them is in
# the chapter's prose; the reduced Android UA of Chrome says nothing about the
# screen, so only its Client Hint tells a phone from a tablet.
DEVICES: list[tuple[str, dict[str, str], str]] = [
    (
        "Chrome on Windows",
        {"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
         "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"},
        "desktop",
    ),
    (
        "Firefox on Linux",
        {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
        "desktop",
    ),
    ("no User-Agent at all", {"User-Agent": ""}, "desktop"),
    (
        "Safari on an iPhone",
        {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
         " (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"},
        "mobile",
    ),
    (
        "Chrome on an Android phone",
        {"User-Agent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
         "(KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36"},
        "mobile",
    ),
    (
        "Firefox on an Android phone",
        {"User-Agent": "Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0"},
        "mobile",
    ),
    (
        "Safari on an iPad (its UA also says Mobile)",
        {"User-Agent": "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
         "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"},
        "tablet",
    ),
    (
        "Chrome on an Android tablet",
        {"User-Agent": "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 "
         "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"},
        "tablet",
    ),
    (
        "Chrome's reduced Android UA with Sec-CH-UA-Mobile: ?1",
        {"User-Agent": "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 "
         "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", "Sec-CH-UA-Mobile": "?1"},
        "mobile",
    ),
    (
        "Chrome's reduced Android UA with Sec-CH-UA-Mobile: ?0",
        {"User-Agent": "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 "
         "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", "Sec-CH-UA-Mobile": "?0"},
        "tablet",
    ),
]  # fmt: skip
DESKTOP = DEVICES[0][1]
PHONE = DEVICES[3][1]

# Cookie headers a client may send that are no valid id: 400, never a 500.
BAD_IDS = [
    ("an empty id", "uid="),
    ("an id of 3 letters", "uid=abc"),
    ("an id of 300 letters", "uid=" + "a" * 300),
    ("markup in the id", "uid=<script>alert(1)</script>"),
    ("a space and quotes in the id", 'uid="two words"'),
    ("non-ASCII bytes in the id", "uid=caf\\303\\251-1234567"),
    ("bytes that are not UTF-8 in the id", "uid=\\377\\376-12345678"),
]
# Cookie headers without any uid: a new visitor (a new id, 200), never a 500.
NO_IDS = [
    ("a cookie with no '='", "uid"),
    ("semicolons and '=' only", ";;=;=="),
    ("another site's cookies", "theme=dark; _ga=GA1.2.3"),
    ("a cookie named like it", "xuid=abcdefgh1234"),
]

_PAGE = {
    "greeting": re.compile(r'id="greeting">Hello, ([^<]*)<'),
    "variant": re.compile(r'id="variant">([^<]*)<'),
    "query": re.compile(r'id="query">([^<]*)<'),
    "title": re.compile(r"<h1>([^<]*)</h1>"),
}

SURVEY = r"""
import asyncio, json, re, sys
import aiohttp

GREETING = re.compile(r'id="greeting">Hello, ([^<]*)<')
VARIANT = re.compile(r'id="variant">([^<]*)<')

async def one(session, limit, ask):
    async with limit:
        try:
            async with session.get(ask["url"], headers=ask["headers"]) as reply:
                text = await reply.text(errors="replace")
                greeting, variant = GREETING.search(text), VARIANT.search(text)
                return {"status": reply.status, "greeting": greeting and greeting[1],
                        "variant": variant and variant[1],
                        "set_cookie": reply.headers.getall("Set-Cookie", []),
                        "body": text[:300] if reply.status >= 400 else ""}
        except Exception as error:
            return {"status": 0, "greeting": None, "variant": None, "set_cookie": [],
                    "body": repr(error)}

async def main():
    asks = json.load(open(sys.argv[1]))
    limit = asyncio.Semaphore(32)
    jar = aiohttp.DummyCookieJar()
    async with aiohttp.ClientSession(cookie_jar=jar, auto_decompress=True) as session:
        found = await asyncio.gather(*(one(session, limit, ask) for ask in asks))
    print(json.dumps(found))

asyncio.run(main())
"""


@dataclass
class Page:
    """What one personalised page said, and how it came back."""

    status: int
    headers: dict[str, str]
    greeting: str | None = None
    cohort: str | None = None
    market: str | None = None
    device: str | None = None
    query: str | None = None
    title: str | None = None
    set_cookie: list[str] = field(default_factory=list)
    body: str = ""

    @property
    def cache(self) -> str:
        return self.headers.get("x-cache", "")

    def new_id(self) -> str | None:
        """The uid a Set-Cookie gave, if any."""
        for value in self.set_cookie:
            name, _, rest = value.partition("=")
            if name.strip() == COOKIE:
                return rest.split(";")[0].strip()
        return None


def parse_page(status: int, headers: dict[str, str], body: str, set_cookie: list[str]) -> Page:
    """A Page from a response: the greeting, variant and query the origin rendered."""
    found = {name: pattern.search(body) for name, pattern in _PAGE.items()}
    variant = dict(
        part.split("=", 1) for part in (found["variant"][1] if found["variant"] else "").split()
    )
    return Page(
        status,
        headers,
        found["greeting"] and found["greeting"][1],
        variant.get("cohort"),
        variant.get("market"),
        variant.get("device"),
        found["query"] and found["query"][1],
        found["title"] and found["title"][1],
        set_cookie,
        body,
    )


def visit(
    world: Any,
    host: str,
    url: str,
    uid: str | None = None,
    headers: dict[str, str] | None = None,
    method: str = "GET",
) -> Page:
    """One request from a world host, with a uid cookie if given; the page it got back."""
    sent = dict(headers or {})
    if uid is not None:
        sent["Cookie"] = f"{COOKIE}={uid}"
    reply = http_request(world, host, url, method=method, headers=sent)
    cookies = [v for k, v in _header_lines(reply) if k == "set-cookie"]
    return parse_page(reply["status"], reply["headers"], reply["body"], cookies)


def _header_lines(reply: dict[str, Any]) -> list[tuple[str, str]]:
    # http_request keeps one value per name; Set-Cookie may come more than once
    value = reply["headers"].get("set-cookie")
    return [("set-cookie", value)] if value else []


def survey(world: Any, host: str, asks: list[dict[str, Any]], timeout: float = 60) -> list[Page]:
    """Send many requests from a world host at once (`SURVEY`); a Page for each, in order.

    Each ask is `{"url": ..., "headers": {...}}`.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(asks, file)
    try:
        command = f"{shlex.quote(sys.executable)} -c {shlex.quote(SURVEY)} {file.name}"
        found = json.loads(world.run(host, command, timeout))
    finally:
        Path(file.name).unlink(missing_ok=True)
    pages = []
    for answer in found:
        variant = f'<p id="variant">{answer["variant"]}</p>' if answer["variant"] else ""
        greeting = answer["greeting"]
        body = (f'<p id="greeting">Hello, {greeting}</p>' if greeting is not None else "") + variant
        page = parse_page(answer["status"], {}, body + answer["body"], answer["set_cookie"])
        pages.append(page)
    return pages


def word(rng: random.Random, n: int = 6) -> str:
    return "".join(rng.choices(string.ascii_lowercase, k=n))


def user_id(rng: random.Random) -> str:
    """A made-up visitor id, valid by the chapter's rule (8-64 of [A-Za-z0-9_-])."""
    alphabet = string.ascii_letters + string.digits + "-_"
    return word(rng, 3) + "".join(rng.choices(alphabet, k=rng.randint(7, 20)))


def _split_p(pages: list[Page], weights: dict[str, float]) -> float:
    """The chi-square p of a survey's cohorts, or 1.0 if it is not even that far along."""
    counts = Counter(p.cohort for p in pages)
    if any(p.status != 200 or p.cohort is None for p in pages) or set(counts) - set(weights):
        return 1.0  # the checks after it say what is wrong
    return chi_square_p(counts, weights)


def chi_square_p(counts: Counter[str], weights: dict[str, float]) -> float:
    """Pearson's chi-square p-value of `counts` against the split `weights` asks for."""
    live = [name for name, weight in weights.items() if weight > 0]
    total, weight_sum = sum(counts[name] for name in live), sum(weights[n] for n in live)
    expected = [total * weights[name] / weight_sum for name in live]
    return float(chisquare([counts[name] for name in live], expected).pvalue)


def _said(page: Page) -> str:
    if page.status >= 500 or page.status == 0:
        return f" The PoP answered {page.status}: {page.body.strip()[:200]}"
    return ""


class VaryProbe:
    """The warm-up's check: can a shared cache keep the origin's personalised page safely?"""

    def __init__(self, world: Any, edge: Any, seed: int | None = None) -> None:
        self.world, self.edge = world, edge
        self.rng = random.Random(seed)

    def check(self, users: Iterable[str] = ("user-vienna", "user-zurich")) -> None:
        """Two visitors at one PoP: each greeted by name, and each one's repeat from the cache."""
        url = self.edge.anycast_url
        for host in users:
            path = f"/p/{word(self.rng)}"
            first, second = user_id(self.rng), user_id(self.rng)
            pages = [
                visit(self.world, host, url + path, uid) for uid in (first, second, first, second)
            ]
            for uid, page in zip((first, second, first, second), pages, strict=True):
                expect(
                    page.greeting == uid,
                    f"GET {path} from {host} with cookie {COOKIE}={uid}: the greeting",
                    f"Hello, {uid}",
                    f"Hello, {page.greeting} (a leak: the greeting names another user)"
                    if page.greeting not in (uid, None)
                    else f"{page.status} {page.body[:120]!r}",
                    hint="the PoP stored one visitor's page and served it to the next: "
                    "what tells a shared cache that the page depends on the request? "
                    "hint('04-vary')" + _said(page),
                )
            repeats = [p.cache for p in pages[2:]]
            expect(
                repeats == ["HIT", "HIT"],
                f"x-cache of each visitor's second GET {path} from {host}",
                "['HIT', 'HIT']: a visitor's own page is still served from the PoP",
                repr(repeats) + " (not cached: the fix turned the PoP's cache off for the page)",
                hint="private and no-store stop the leak by not caching at all; "
                "keep the page in the cache, per visitor: hint('04-vary')",
            )


class PersonalProbe:
    """The handler's checks, one property at a time (see the module docstring)."""

    def __init__(self, world: Any, edge: Any, pages: str = "/p", seed: int | None = None) -> None:
        self.world, self.edge, self.pages = world, edge, pages
        self.url = edge.anycast_url
        self.rng = random.Random(seed)
        self.users = {n.name: n.country for n in world.spec.of_kind("client")}

    def path(self) -> str:
        return f"{self.pages}/{word(self.rng)}-{word(self.rng, 4)}"

    def made_up_config(self) -> dict[str, Any]:
        """Weights far from equal (one of them 0) and markets for some of the users' countries."""
        names = [f"{word(self.rng, 4)}-{i}" for i in range(self.rng.randint(3, 4))]
        while True:  # far from equal, no cohort near all, and not percentages
            weights = [self.rng.choice(range(10, 95, 5)) for _ in names[:-1]]
            uneven = max(weights) >= 2 * min(weights) and max(weights) <= 0.85 * sum(weights)
            if uneven and sum(weights) >= 130:
                break
        split = dict(zip(names, [*weights, 0], strict=True))
        paused = names[-1]
        order = list(split)
        self.rng.shuffle(order)  # the paused arm anywhere in the list
        split = {name: split[name] for name in order}
        assert split[paused] == 0
        countries = sorted(set(self.users.values()))
        chosen = self.rng.sample(countries, k=len(countries) // 2 + 1)
        markets = {country: f"mk-{word(self.rng, 3)}" for country in chosen}
        return {"weights": split, "markets": markets, "default_market": f"rest-{word(self.rng, 3)}"}

    # -- the cohorts ---------------------------------------------------------

    def assign(self, host: str, ids: list[str], path: str | None = None) -> list[Page]:
        """Each id's page at one path (a fresh path unless given), asked from `host` at once."""
        path = path or self.path()
        asks = [
            {"url": self.url + path, "headers": {**DESKTOP, "Cookie": f"{COOKIE}={uid}"}}
            for uid in ids
        ]
        return survey(self.world, host, asks)

    def cohorts_match_weights(self, config: dict[str, Any], host: str = "user-zurich") -> None:
        """Chi-square of SURVEY_USERS made-up users' cohorts against the config's weights.

        A right split fails the test once in 1/SIGNIFICANCE surveys, by chance. So a split
        that fails is surveyed again with other users, and only a second failure counts:
        a right split then fails once in 1/SIGNIFICANCE² checks, a wrong one every time.
        """
        weights = config["weights"]
        pages = self.assign(host, [user_id(self.rng) for _ in range(SURVEY_USERS)])
        if _split_p(pages, weights) < SIGNIFICANCE:
            pages = self.assign(host, [user_id(self.rng) for _ in range(SURVEY_USERS)])
        broken = [p for p in pages if p.status != 200 or p.cohort is None]
        expect(
            not broken,
            f"{SURVEY_USERS} made-up users' pages from {host}",
            "200 with a cohort on each page",
            f"{len(broken)} without: {broken[0].status} {broken[0].body[:200]!r}" if broken else "",
            hint="did the handler tell the origin the cohort (x-cohort)?",
        )
        counts = Counter(p.cohort for p in pages)
        unknown = sorted(set(counts) - set(weights))
        expect(
            not unknown,
            f"the cohorts {SURVEY_USERS} users were put in, with weights {weights}",
            f"cohorts named in env.config['weights']: {sorted(weights)}",
            f"also {unknown}",
            hint="read the cohorts and their weights from env.config (the check made up new "
            "ones): hint('04-personalise')",
        )
        p = chi_square_p(counts, weights)
        live = [name for name, weight in weights.items() if weight > 0]
        top = max(counts.values()) / max(1, sum(counts.values()))
        one = top > 0.95 and len(live) > 1  # no made-up weight is above 85%
        expect(
            p >= SIGNIFICANCE,
            f"the cohort split of {SURVEY_USERS} users against the weights {weights} "
            f"(chi-square test)",
            f"a split that matches the weights: p ≥ {SIGNIFICANCE:g}",
            f"p = {p:.2g}, counts {dict(counts)} "
            + (
                "(nearly everyone in one cohort: the first visitor's page served to all? the "
                "cache key must hold the cohort)"
                if one
                else "(the weights are ignored, or the split is not uniform over the hash)"
            ),
            hint="each cohort's share of users must follow its weight: hint('04-personalise')",
        )
        paused = [name for name, weight in weights.items() if weight == 0]
        expect(
            all(counts[name] == 0 for name in paused),
            f"users in the cohort {paused} whose weight is 0 (a paused arm)",
            "0",
            {name: counts[name] for name in paused},
            hint="a cohort with weight 0 gets nobody",
        )

    def sticky(self, redeploy: Callable[[], Any], users: int = 24, pause_s: float = 1.0) -> None:
        """One id, one cohort: at PoPs on three continents, and after a redeploy and a pause."""
        ids = [user_id(self.rng) for _ in range(users)]
        hosts = ["user-vienna", "user-tokyo", "user-saopaulo"]
        path = self.path()
        seen = {host: self.assign(host, ids, path) for host in hosts}
        for i, uid in enumerate(ids):
            cohorts = {host: seen[host][i].cohort for host in hosts}
            expect(
                len(set(cohorts.values())) == 1,
                f"the cohort of {COOKIE}={uid} at the PoPs of {', '.join(hosts)}",
                "one cohort at every PoP",
                f"{cohorts} (not sticky across PoPs: the hash must depend on the id "
                "alone, computed the same in every process)",
                hint="Python's hash() of a str changes from one process to the next, and "
                "nothing about the PoP may go into it: hint('04-personalise')",
            )
        redeploy()
        time.sleep(pause_s)
        again = self.assign("user-vienna", ids)
        for i, uid in enumerate(ids):
            expect_equal(
                again[i].cohort,
                seen["user-vienna"][i].cohort,
                f"the cohort of {COOKIE}={uid} after the handler was deployed again "
                "(new processes) and a pause (not sticky over time)",
                hint="the cohort must be a function of the id only: no randomness per "
                "request, no per-process hash",
            )

    # -- new and returning visitors --------------------------------------------

    def cookies(self) -> None:
        """No uid: a new valid id, set for the whole site, greeted, sticky when it comes back."""
        host, paths = "user-zurich", [self.path(), self.path()]
        firsts = [visit(self.world, host, self.url + path, None, DESKTOP) for path in paths]
        for path, page in zip(paths, firsts, strict=True):
            new = page.new_id()
            expect(
                page.status == 200 and new is not None and ID.fullmatch(new) is not None,
                f"GET {path} from {host} without a {COOKIE} cookie: Set-Cookie",
                f"{COOKIE}=<a new id of 8-64 letters, digits, - or _>",
                f"{page.status}, Set-Cookie {page.set_cookie}" + _said(page),
                hint="a first visit has no id yet: make one and set the cookie",
            )
            attributes = [a.strip().lower() for a in page.set_cookie[0].split(";")[1:]]
            expect(
                "path=/" in attributes,
                f"the attributes of Set-Cookie {page.set_cookie[0]!r}",
                "Path=/ among them (without it the cookie only comes back under this path)",
                attributes,
                hint="a cookie without Path is only sent back below the directory of the "
                "page that set it",
            )
            expect_equal(
                page.greeting,
                new,
                f"the greeting on the page that set {COOKIE}={new}",
                hint="a new visitor is greeted with the id just made for them",
            )
        expect(
            firsts[0].new_id() != firsts[1].new_id(),
            f"the ids given to two new visitors of {paths[0]} and {paths[1]}",
            "two different ids",
            f"both {firsts[0].new_id()!r}",
            hint="a new id must be new for every visitor (random, not derived from the page)",
        )
        for path, page in zip(paths, firsts, strict=True):
            new = page.new_id()
            back = visit(self.world, "user-tokyo", self.url + path, new, DESKTOP)
            expect_equal(
                back.cohort,
                page.cohort,
                f"the cohort of the new visitor {new} when they come back (at another PoP)",
                hint="decide the cohort of a new visitor from the id you give them",
            )
            expect(
                back.new_id() is None,
                f"GET {path} with cookie {COOKIE}={new}: Set-Cookie",
                f"none for {COOKIE} (the visitor has one already)",
                back.set_cookie,
                hint="set the cookie only when it is absent",
            )

    # -- variants ----------------------------------------------------------------

    def markets(self, config: dict[str, Any]) -> None:
        """Every user's page shows the market of their country, or the default market."""
        markets, default = config["markets"], config["default_market"]
        for host, country in self.users.items():
            path = self.path()
            page = visit(self.world, host, self.url + path, user_id(self.rng), DESKTOP)
            wanted = markets.get(country, default)
            expect_equal(
                page.market,
                wanted,
                f"the market on {path} for {host} (country {country}; markets {markets}, "
                f"default {default!r})",
                hint="the market comes from request.geo.country through env.config"
                "['markets'], or the default market" + _said(page),
            )

    def devices(self) -> None:
        """Each User-Agent / Client Hint of DEVICES gets its device variant."""
        host = "user-vienna"
        cases = list(DEVICES)
        self.rng.shuffle(cases)
        for name, headers, wanted in cases:
            path = self.path()
            page = visit(self.world, host, self.url + path, user_id(self.rng), headers)
            sent = "; ".join(f"{k}: {v}" for k, v in headers.items())
            expect_equal(
                page.device,
                wanted,
                f"the device for {name} ({sent})",
                hint="Client Hints first, then tablets, then phones: hint('04-personalise')"
                + _said(page),
            )

    # -- the cache key -----------------------------------------------------------

    def origin_requests(self) -> int:
        return int(self.edge.metrics(self.edge.origin)["requests"])

    def shared_by_variant(self, host: str = "user-zurich", visitors: int = 8) -> None:
        """Visitors in the same variants share cached pages, each greeted by name, no leak."""
        path = self.path()
        ids = [user_id(self.rng) for _ in range(visitors)]
        before = self.origin_requests()
        pages = [visit(self.world, host, self.url + path, uid, PHONE) for uid in ids]
        fetched = self.origin_requests() - before
        for uid, page in zip(ids, pages, strict=True):
            expect(
                page.status == 200,
                f"GET {path} from {host} with {COOKIE}={uid}: status",
                200,
                page.status,
                hint=_said(page).strip(),
            )
            leak = page.greeting in ids and page.greeting != uid
            expect(
                page.greeting == uid,
                f"the greeting {uid} got on {path}, after {ids.index(uid)} other visitors",
                f"Hello, {uid}",
                f"Hello, {page.greeting}"
                + (" (a leak: the greeting names another user)" if leak else ""),
                hint="the page the origin renders for the shared cache must not know the "
                "visitor; greet them at the edge, after the cache: hint('04-personalise')",
            )
        variants = {(p.cohort, p.market, p.device) for p in pages}
        expect(
            fetched <= len(variants),
            f"requests that reached the origin for {visitors} visitors of {path} in "
            f"{len(variants)} variants",
            f"at most {len(variants)}: one per variant, the rest from the PoP's cache",
            f"{fetched} (the cache key holds more than the variant: the user's id or the "
            "whole Cookie header, so the hit ratio collapses)",
            hint="the key is the URL plus the variant, and nothing about the visitor",
        )

    def key_holds_the_variant(self, config: dict[str, Any]) -> None:
        """Same path, one part of the variant changed: a page of its own, never another's."""
        host = "user-vienna"
        # the device: one visitor, a desktop then a phone
        path, uid = self.path(), user_id(self.rng)
        first = visit(self.world, host, self.url + path, uid, DESKTOP)
        second = visit(self.world, host, self.url + path, uid, PHONE)
        expect_equal(
            (first.device, second.device),
            ("desktop", "mobile"),
            f"devices shown on {path} to {uid} on a desktop, then on a phone",
            hint="the cache key does not hold the device: a phone got the desktop page",
        )
        # the market: two users of one PoP whose countries are in different markets
        frankfurt = ["user-vienna", "user-zurich", "user-berlin", "user-london"]
        markets = config["markets"]

        def market(h: str) -> str:
            return markets.get(self.users[h], config["default_market"])

        pair = next(((a, b) for a in frankfurt for b in frankfurt if market(a) != market(b)), None)
        if pair:
            path = self.path()
            shown = [visit(self.world, h, self.url + path, uid, DESKTOP).market for h in pair]
            expect_equal(
                shown,
                [market(h) for h in pair],
                f"markets shown on {path} to {pair[0]} then {pair[1]} (one PoP)",
                hint="the cache key does not hold the market: one market's page went to another",
            )
        # the cohort: visitors of different cohorts, one after the other
        ids = [user_id(self.rng) for _ in range(12)]
        path = self.path()
        pages = self.assign(host, ids, path)
        by_cohort = {p.cohort: uid for uid, p in zip(ids, pages, strict=True)}
        self.edge.purge(prefix=path)
        again = [
            (uid, cohort, visit(self.world, host, self.url + path, uid, DESKTOP).cohort)
            for cohort, uid in by_cohort.items()
        ]
        expect(
            all(c == got for _, c, got in again),
            f"cohorts shown on {path} to visitors of {len(again)} cohorts, one after another",
            [c for _, c, _ in again],
            [got for _, _, got in again],
            hint="the cache key does not hold the cohort",
        )
        # the URL: other paths and queries are other pages
        uid, name = user_id(self.rng), word(self.rng)
        for query in (f"q={word(self.rng, 3)}", f"q={word(self.rng, 3)}"):
            page = visit(self.world, host, self.url + f"{self.pages}/{name}?{query}", uid, DESKTOP)
            expect_equal(
                page.query,
                query,
                f"the query on {self.pages}/{name}?{query}",
                hint="the cache key dropped the query string (or the whole URL): another "
                "query's page came back",
            )
        for other in (word(self.rng), word(self.rng)):
            page = visit(self.world, host, self.url + f"{self.pages}/{other}", uid, DESKTOP)
            expect_equal(
                page.title,
                other,
                f"the page title of {self.pages}/{other}",
                hint="the cache key dropped the path: another page came back",
            )

    def edge_rules(self) -> None:
        """A forged x-cohort changes nothing; the page leaves private; a POST is a POST."""
        host, path, uid = "user-zurich", self.path(), user_id(self.rng)
        honest = visit(self.world, host, self.url + path, uid, DESKTOP)
        forged = {**DESKTOP, "x-cohort": f"forged-{word(self.rng, 4)}"}
        page = visit(self.world, host, self.url + self.path(), uid, forged)
        expect_equal(
            page.cohort,
            honest.cohort,
            f"the cohort shown to {uid} when the client sends x-cohort: {forged['x-cohort']}",
            hint="the edge sets the variant headers, replacing what the client sent",
        )
        control = honest.headers.get("cache-control", "")
        expect(
            "private" in control or "no-store" in control,
            f"Cache-Control of the greeted page {path} as it leaves the PoP",
            "private (or no-store): a page with a name in it is no shared cache's",
            repr(control),
            hint="the origin said public for the template; the greeted page is personal",
        )
        posted = visit(self.world, host, self.url + path, uid, DESKTOP, method="POST")
        expect_equal(
            posted.status,
            405,
            f"status of POST {path} (the origin answers 405 to a POST there)",
            hint="a POST goes to the origin as a POST, never answered from the cache"
            + _said(posted),
        )

    def bad_input(self) -> None:
        """Ids that break the rule get a 400; cookies without an id, a new id; never a 5xx."""
        host, path = "user-zurich", self.path()
        for name, cookie in BAD_IDS:
            status, body = self._raw_cookie(host, path, cookie)
            expect_equal(
                status,
                400,
                f"status of GET {path} with Cookie: {cookie[:40]} ({name})",
                hint="an id that is not 8-64 letters, digits, - or _ is the client's error: "
                f"400, never a 500 or a page. {body[:160]!r}",
            )
        for name, cookie in NO_IDS:
            status, body = self._raw_cookie(host, path, cookie)
            expect_equal(
                status,
                200,
                f"status of GET {path} with Cookie: {cookie} ({name})",
                hint=f"no uid cookie: a new visitor. {body[:160]!r}",
            )

    def _raw_cookie(self, host: str, path: str, cookie: str) -> tuple[int, str]:
        """GET with a Cookie header written by printf (so it may hold any byte)."""
        header = shlex.quote(f"Cookie: {cookie}".replace("%", "%%"))
        command = (
            f'curl -s -m 10 -o /tmp/.edgelab-body-$$ -w "%{{http_code}}" '
            f'-H "$(printf {header})" {shlex.quote(self.url + path)}; '
            "echo; head -c 300 /tmp/.edgelab-body-$$; rm -f /tmp/.edgelab-body-$$"
        )
        out = self.world.run(host, command, 15)
        code, _, body = out.partition("\n")
        return int(code or 0), body
