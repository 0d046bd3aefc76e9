"""Chapter 05's checks and measurements: pages made of fragments, seen from users' hosts.

    layout = Layout.made_up(random.Random())          # fragments with names, TTLs, delays
    page = fetch_timeline(world, "user-vienna", [ask])[0]
    page.first_byte_ms, page.when("<h1>"), page.total_ms, page.body

    probe = AssemblerProbe(world, edge)
    config = probe.made_up_config()
    deploy(assemble_page, edge.pops, config=config, matcher=PAGES)
    probe.document_order()  # ... one property per method (the check cell names them)

**The pages.** The origin (`/esi/...` in kit/services/origin.py) renders a page
from a *layout*: fragments in order, each `NAME:TTL:THINK_MS` (kept TTL seconds,
0 for never; THINK_MS to render) or `user`, the personalised greeting
(`private, no-store`). `/esi/page/NAME?f=LAYOUT` is the shell with an
`<esi:include>` per fragment; `/esi/whole/NAME?f=LAYOUT` the same page rendered
in full at the origin, which is what an assembled page must equal, byte for
byte, for the same visitor. The origin counts each fragment it renders as
`fragment:NAME`, so "fetched through the cache" is the origin's own count.

**Timelines at the client.** Whether a page streams is only visible at the
client: `TIMELINE` is a small aiohttp program run on a user's host that reads
each response as it arrives and notes when each piece came. So "the shell
came before the slow fragment was rendered" is measured where a browser would
see it, through the emulated network.

The probe makes up its layouts, names, delays, timeouts and visitor ids on each
run and sends its requests from Vienna and Zurich, cities the chapter never
names.
"""

from __future__ import annotations

import html
import json
import random
import shlex
import string
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kit.nb.checks import CheckFailed, expect

PAGES = "/esi/page/:path*"
PERSONAL = "user"

TIMELINE = r"""
import asyncio, json, sys, time
import aiohttp

async def one(session, ask):
    started = time.monotonic()
    pieces = []
    try:
        timeout = aiohttp.ClientTimeout(total=ask.get("timeout", 15))
        get = session.get(ask["url"], headers=ask.get("headers", {}), timeout=timeout)
        async with get as reply:
            head = time.monotonic() - started
            async for data in reply.content.iter_any():
                at = 1000 * (time.monotonic() - started)
                pieces.append([at, data.decode("utf-8", "replace")])
            return {"status": reply.status, "headers": dict(reply.headers), "head_ms": 1000 * head,
                    "pieces": pieces, "total_ms": 1000 * (time.monotonic() - started), "error": ""}
    except Exception as error:
        return {"status": 0, "headers": {}, "head_ms": 0, "pieces": pieces,
                "total_ms": 1000 * (time.monotonic() - started), "error": repr(error)}

async def main():
    asks = json.loads(sys.argv[1])
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as s:
        if asks and asks[0].get("together"):
            found = await asyncio.gather(*(one(s, ask) for ask in asks))
        else:
            found = [await one(s, ask) for ask in asks]
    print(json.dumps(found))

asyncio.run(main())
"""


@dataclass
class Timeline:
    """One response as the client saw it: when each piece of the body arrived."""

    status: int
    headers: dict[str, str]
    head_ms: float
    pieces: list[tuple[float, str]]
    total_ms: float
    error: str = ""

    @property
    def body(self) -> str:
        return "".join(text for _, text in self.pieces)

    @property
    def first_byte_ms(self) -> float:
        """When the first byte of the body arrived (ms after the request started)."""
        return self.pieces[0][0] if self.pieces else self.total_ms

    def when(self, text: str) -> float | None:
        """When `text` had arrived in full (ms), or None if it never did."""
        seen = ""
        for at, piece in self.pieces:
            seen += piece
            if text in seen:
                return at
        return None


def fetch_timeline(
    world: Any, host: str, asks: list[dict[str, Any]], together: bool = False
) -> list[Timeline]:
    """Send `asks` (`{"url", "headers", "timeout"}`) from `host`, one after another
    (or all at once); a Timeline for each, in order."""
    if together and asks:
        asks = [{**asks[0], "together": True}, *asks[1:]]
    longest = sum(a.get("timeout", 15) for a in asks) + 10
    command = (
        f"{shlex.quote(sys.executable)} -c {shlex.quote(TIMELINE)} {shlex.quote(json.dumps(asks))}"
    )
    found = json.loads(world.run(host, command, longest))
    return [
        Timeline(
            f["status"],
            f["headers"],
            f["head_ms"],
            [tuple(p) for p in f["pieces"]],
            f["total_ms"],
            f["error"],
        )
        for f in found
    ]


@dataclass(frozen=True)
class Fragment:
    name: str
    ttl: int = 0
    think_ms: int = 0

    @property
    def spec(self) -> str:
        return PERSONAL if self.name == PERSONAL else f"{self.name}:{self.ttl}:{self.think_ms}"

    @property
    def marker(self) -> str:
        """Text that is in this fragment's body and nowhere else on the page."""
        return 'id="greeting"' if self.name == PERSONAL else f'id="{self.name}"'


@dataclass
class Layout:
    """A page made of fragments, in order (see the module docstring)."""

    name: str
    fragments: list[Fragment] = field(default_factory=list)

    @property
    def spec(self) -> str:
        """The layout as the origin reads it (commas as %2C: a load's list of paths is
        comma-separated)."""
        return "%2C".join(f.spec for f in self.fragments)

    def page(self) -> str:
        """The shell's path: what a user asks for."""
        return f"/esi/page/{self.name}?f={self.spec}"

    def whole(self) -> str:
        """The same page as the origin renders it in full (its think: the slowest part)."""
        think = max((f.think_ms for f in self.fragments), default=0)
        return f"/esi/whole/{self.name}?f={self.spec}&think={think}"

    @classmethod
    def parse(cls, name: str, spec: str) -> Layout:
        fragments = []
        for part in spec.split(","):
            if part == PERSONAL:
                fragments.append(Fragment(PERSONAL))
            else:
                frag, ttl, think = part.split(":")
                fragments.append(Fragment(frag, int(ttl), int(think)))
        return cls(name, fragments)

    @classmethod
    def made_up(
        cls, rng: random.Random, slow_ms: Iterable[int] = (), cached: int = 3, user: bool = True
    ) -> Layout:
        """Fragments with made-up names: `cached` quick ones with TTLs, then slow ones
        (never cached), the greeting anywhere; shuffled."""
        fragments = [
            Fragment(word(rng), rng.randint(60, 900), rng.randint(0, 20)) for _ in range(cached)
        ]
        fragments += [Fragment(word(rng), 0, ms) for ms in slow_ms]
        if user:
            fragments.append(Fragment(PERSONAL))
        rng.shuffle(fragments)
        return cls(word(rng, 8), fragments)


def word(rng: random.Random, n: int = 7) -> str:
    return "".join(rng.choices(string.ascii_lowercase, k=n))


def visitor_id(rng: random.Random) -> str:
    """A made-up visitor whose name needs escaping in HTML."""
    return f"{word(rng, 5)}<b>&{rng.randint(10, 99)}"


def fragment_counts(edge: Any) -> dict[str, int]:
    """How many times the origin rendered each fragment so far."""
    found = edge.metrics(edge.origin)
    return {k.removeprefix("fragment:"): v for k, v in found.items() if k.startswith("fragment:")}


def cookie(uid: str) -> dict[str, str]:
    return {"Cookie": f"uid={uid}"}


HINT = 'hint("05-assemble")'


class AssemblerProbe:
    """The learner's streaming assembler, checked one property at a time (module docstring)."""

    def __init__(self, world: Any, edge: Any, seed: int | None = None) -> None:
        self.world, self.edge = world, edge
        self.rng = random.Random(seed)
        self.site = edge.anycast_url
        self.hosts = ["user-vienna", "user-zurich"]

    def made_up_config(self) -> dict[str, Any]:
        self.timeout_s = round(self.rng.uniform(1.0, 1.2), 2)
        return {"fragment_timeout_s": self.timeout_s}

    def ask(self, path: str, uid: str | None = None, timeout: float = 15) -> dict[str, Any]:
        return {"url": self.site + path, "headers": cookie(uid) if uid else {}, "timeout": timeout}

    def expected(self, layout: Layout, uid: str | None) -> str:
        reply = fetch_timeline(self.world, "user-vienna", [self.ask(layout.whole(), uid)])[0]
        return reply.body

    def _ok(self, page: Timeline, what: str) -> None:
        if page.status != 200 or page.error:
            raise CheckFailed(
                what,
                "a 200 and the whole page",
                f"status {page.status} {page.error} {page.body[:200]!r}",
                f"look at edge.log('pop-frankfurt') for your handler's error; {HINT}",
            )

    def document_order(self) -> None:
        """The assembled page equals the origin's whole page, byte for byte, for this visitor."""
        layout = Layout.made_up(self.rng, slow_ms=[self.rng.randint(150, 250)], cached=3)
        if layout.fragments[0].name == PERSONAL:  # the greeting, ready first, never first
            layout.fragments[0], layout.fragments[1] = layout.fragments[1], layout.fragments[0]
        uid = visitor_id(self.rng)
        want = self.expected(layout, uid)
        page = fetch_timeline(self.world, "user-zurich", [self.ask(layout.page(), uid)])[0]
        self._ok(page, f"GET {layout.page()} with a uid cookie, from Zurich")
        got = page.body
        if got == want:
            return
        escaped = f"Hello, {html.escape(uid)}"
        if f"Hello, {uid}" in got:
            self.fail_page("the greeting is not HTML-escaped", f"…{escaped}…", uid)
        if "Hello, guest" in got:
            self.fail_page(
                "the greeting",
                f"…{escaped}…",
                "Hello, guest: the greeting was fetched without the visitor; render it at the "
                "edge from the uid cookie",
            )
        if escaped not in got:
            self.fail_page("the greeting", f"…{escaped}…", "no greeting for this visitor")
        found = [(got.find(f.marker), f.name) for f in layout.fragments]
        missing = [name for at, name in found if at < 0]
        if missing:
            self.fail_page("every fragment is on the page", "all of them", f"missing: {missing}")
        order = [name for _, name in sorted(found)]
        if order != [f.name for f in layout.fragments]:
            self.fail_page(
                "fragments in document order",
                [f.name for f in layout.fragments],
                f"{order}: fragments out of document order",
            )
        at = next(
            (i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
            min(len(got), len(want)),
        )
        self.fail_page(
            "the page, byte for byte as the origin renders it",
            f"…{want[max(0, at - 60) : at + 60]!r}…",
            f"…{got[max(0, at - 60) : at + 60]!r}… (differs at byte {at}; "
            "the ESI markup and Surrogate-Control must not reach the client)",
        )

    def fail_page(self, what: str, expected: Any, got: Any) -> None:
        raise CheckFailed(what, expected, got, HINT)

    def streams_the_shell(self) -> None:
        """The shell arrives while the slow fragment is still being rendered."""
        slow = self.rng.randint(700, 800)
        layout = Layout.made_up(self.rng, slow_ms=[slow], cached=2)
        uid = visitor_id(self.rng)
        page = fetch_timeline(self.world, "user-vienna", [self.ask(layout.page(), uid)])[0]
        self._ok(page, f"GET {layout.page()}")
        shell = page.when(f"<h1>{layout.name}</h1>")
        slow_name = next(f.name for f in layout.fragments if f.think_ms == slow)
        expect(
            shell is not None and shell < slow - 400,
            f"when the shell (<h1>{layout.name}</h1>) reached a user in Vienna, while a fragment "
            f"takes {slow} ms to render",
            f"well before {slow} ms",
            f"{shell:.0f} ms: the assembler buffers the page until every fragment is there"
            if shell is not None
            else "the shell never came",
            hint=f"return a streamed response and yield each part as soon as it may go; {HINT}",
        )
        done = page.when(f'id="{slow_name}"')
        expect(
            done is not None and done >= slow,
            "the slow fragment came after its render time",
            f"at least {slow} ms",
            done,
            hint=HINT,
        )

    def parallel(self) -> None:
        """Two slow fragments cost the slower one, not their sum."""
        a, b = self.rng.randint(500, 650), self.rng.randint(500, 650)
        layout = Layout.made_up(self.rng, slow_ms=[a, b], cached=1)
        page = fetch_timeline(
            self.world, "user-zurich", [self.ask(layout.page(), visitor_id(self.rng))]
        )[0]
        self._ok(page, f"GET {layout.page()}")
        expect(
            page.total_ms < a + b - 200,
            f"the whole page, with two fragments that take {a} and {b} ms to render",
            f"about {max(a, b)} ms plus a round trip to the origin, well under {a + b} ms",
            f"{page.total_ms:.0f} ms: fragments fetched one after another, not in parallel",
            hint=f"start every fragment's fetch before you wait for the first; {HINT}",
        )

    def through_the_cache(self) -> None:
        """Fragments with a TTL come from the cache; the greeting is made at the edge."""
        layout = Layout.made_up(self.rng, slow_ms=[self.rng.randint(20, 60)], cached=3)
        before = fragment_counts(self.edge)
        first, second = self.rng.sample(range(10**6), 2)
        for host, uid in (("user-vienna", f"v{first}"), ("user-zurich", f"z{second}")):
            page = fetch_timeline(self.world, host, [self.ask(layout.page(), uid)])[0]
            self._ok(page, f"GET {layout.page()} from {host}")
        after = fragment_counts(self.edge)
        grew = {f.name: after.get(f.name, 0) - before.get(f.name, 0) for f in layout.fragments}
        for fragment in layout.fragments:
            n = grew[fragment.name]
            if fragment.name == PERSONAL:
                expect(
                    n == 0,
                    "greetings the origin rendered for two page views",
                    "0: the greeting is made at the edge",
                    f"{n}: the personalised fragment was fetched from the origin",
                    hint=HINT,
                )
            elif fragment.ttl > 0:
                expect(
                    n <= 1,
                    f"times the origin rendered fragment {fragment.name} (kept {fragment.ttl} s) "
                    "for two page views at one PoP",
                    "at most 1",
                    f"{n}: fragments not fetched through the cache",
                    hint=HINT,
                )

    def private_page(self) -> None:
        """The assembled page greets one visitor: no shared cache may keep it."""
        layout = Layout.made_up(self.rng, cached=2)
        page = fetch_timeline(
            self.world, "user-vienna", [self.ask(layout.page(), visitor_id(self.rng))]
        )[0]
        self._ok(page, f"GET {layout.page()}")
        control = page.headers.get("Cache-Control", "")
        expect(
            "private" in control or "no-store" in control,
            "the assembled page's Cache-Control",
            "private or no-store (it greets one visitor)",
            f"{control or 'none'!r}: the personalised page is cacheable by shared caches",
            hint=HINT,
        )
        expect(
            "Surrogate-Control" not in page.headers,
            "Surrogate-Control sent to the client",
            "removed at the edge",
            page.headers.get("Surrogate-Control"),
            hint=HINT,
        )

    def bounded(self) -> None:
        """A fragment that does not answer in time is left out and the page ends."""
        hang = self.rng.randint(6000, 8000)
        layout = Layout.made_up(self.rng, slow_ms=[hang], cached=2)
        hung = next(f.name for f in layout.fragments if f.think_ms == hang)
        limit = self.timeout_s * 1000 + 600
        ask = self.ask(layout.page(), "ok-visitor", timeout=limit / 1000 + 0.5)
        page = fetch_timeline(self.world, "user-zurich", [ask])[0]
        late = page.error or page.total_ms >= limit
        expect(
            not late,
            f"the page, with a fragment that takes {hang} ms "
            f"and fragment_timeout_s = {self.timeout_s}",
            f"done within {limit:.0f} ms",
            f"{page.total_ms:.0f} ms {page.error}: the wait for a fragment is not bounded by "
            "env.config['fragment_timeout_s']",
            hint=f"bound each fragment's wait; {HINT}",
        )
        self._ok(page, f"GET {layout.page()}")
        others = [f.name for f in layout.fragments if f.name != hung and f.marker not in page.body]
        expect(
            not others and f'id="{hung}"' not in page.body and "</body></html>" in page.body,
            "the rest of the page around the late fragment",
            "every other fragment and the end of the page, the late one left out",
            f"missing {others}" if others else page.body[-200:],
            hint=HINT,
        )


TICKER = "/ticker/:path*"


class TickerProbe:
    """The warm-up: a handler whose response streams, checked at a user's host."""

    def __init__(self, world: Any, edge: Any, seed: int | None = None) -> None:
        self.world, self.edge = world, edge
        self.rng = random.Random(seed)

    def made_up_config(self) -> dict[str, Any]:
        return {"count": self.rng.randint(3, 5), "every_s": round(self.rng.uniform(0.2, 0.3), 2)}

    @staticmethod
    def timing(page: Any, count: int) -> tuple[float, float]:
        """When the first tick arrived, and the time from the first to the last (ms)."""
        first, last = page.when("<p>tick 1</p>"), page.when(f"<p>tick {count}</p>")
        assert first is not None and last is not None
        return first, last - first

    def check(self, config: dict[str, Any]) -> None:
        count, every_ms = config["count"], 1000 * config["every_s"]
        path = f"/ticker/{word(self.rng)}"
        ask = {"url": self.edge.anycast_url + path, "timeout": count * config["every_s"] + 5}
        page = fetch_timeline(self.world, "user-vienna", [ask])[0]
        want = "".join(f"<p>tick {n}</p>\n" for n in range(1, count + 1))
        hint = 'hint("05-stream")'
        expect(
            page.status == 200 and page.body == want,
            f"GET {path} with count = {count}",
            repr(want),
            f"status {page.status} {page.error} {page.body[:200]!r} (ticks from 1 to "
            "env.config['count'], one line each)",
            hint=hint,
        )
        first, spread = self.timing(page, count)
        if not (spread >= (count - 1) * every_ms * 0.8 and first < every_ms / 2):
            # A busy machine can hold back one tick; a handler that is wrong is wrong twice.
            again = {**ask, "url": f"{self.edge.anycast_url}/ticker/{word(self.rng)}"}
            page = fetch_timeline(self.world, "user-vienna", [again])[0]
            if page.status == 200 and page.body == want:
                first, spread = self.timing(page, count)
        expect(
            spread >= (count - 1) * every_ms * 0.8,
            f"time from the first tick to the last, {count} ticks every {every_ms:.0f} ms",
            f"about {(count - 1) * every_ms:.0f} ms",
            f"{spread:.0f} ms: the ticks came together, the response was buffered"
            if spread < every_ms / 2
            else f"{spread:.0f} ms: not every_s apart (env.config['every_s'])",
            hint=hint,
        )
        expect(
            first < every_ms / 2,
            "when the first tick reached a user in Vienna",
            f"at once (well under every_s = {every_ms:.0f} ms)",
            f"{first:.0f} ms: the first tick waited",
            hint=hint,
        )
