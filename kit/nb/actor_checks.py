"""Chapter 08's checks: a counter and a rate limiter, on KV and on an actor.

Both builds serve the same three routes (the chapter states them):

    POST /count/NAME    add one to counter NAME: {"count": n}, n after this addition
    GET  /count/NAME    {"count": n} (0 for a counter nobody added to)
    POST /limit/CLIENT  200 {"allowed": true} while CLIENT has had fewer than
                        env.config["limit"] allowed in this window, else 429;
                        windows of env.config["window_s"] seconds, aligned to the
                        clock: window number int(time.time() // window_s)

What can be true of each is different, so the checks are too:

- `KvProbe` checks what a KV counter can do: from one city, one request after
  another (one PoP, each request waiting for the last), counts go 1, 2, 3; a GET
  changes nothing; two names are two counters; the limiter allows exactly the
  limit, keeps clients apart and starts again in a new window.
- `ActorProbe` checks all of that on the actor, and then what only a single owner
  can promise: requests from every city at once, no update lost (the count at the
  end equals the POSTs acknowledged, and no two POSTs were told the same count);
  one instance (every PoP reads the same count); the state outlives
  `edge.evict` of every PoP; the limit is one limit across PoPs; and with the home
  cut off by a partition, callers across the cut get a 5xx naming the home, the
  home's side goes on, and nothing is split.

Inputs are made up on every run: counter names and clients, the limit, the
window, the city the first request comes from. The requests are sent by
`drive`: a small aiohttp client run on world hosts (several at once, started at
the same instant), which records each request's status, body and timing.

`yours(*names)` turns the learner's classes and functions (defined in notebook
cells, found by name) into one handler module's source: `deploy` ships
functions by their source, and Python cannot give the source of a class
defined in a notebook cell, so this reads it from the cell that defined its
methods.
"""

from __future__ import annotations

import ast
import inspect
import json
import random
import shlex
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd

from kit.control import DeployError
from kit.control import deploy as _deploy
from kit.control.deploy import cell_text, definition_in, definition_source
from kit.nb.checks import CheckFailed, expect

CITIES = ["user-tokyo", "user-berlin", "user-london", "user-newyork", "user-singapore"]
CITIES += ["user-saopaulo"]
UNNAMED = ["user-vienna", "user-zurich"]  # cities the chapter never names: the checks use them
UNANSWERED = (0, 504)  # no answer in time: the client gave up, or the PoP's time limit ran out

# -- the learner's code as a handler module -------------------------------------------


def _definition(obj: Any, name: str) -> tuple[str, list[str]]:
    """The source of one definition, and the top-level imports of the cell it is in."""
    text = cell_text(obj)
    if text is None:
        return definition_source(obj), []
    tree = ast.parse(text)
    imports = [
        ast.get_source_segment(text, node) or ""
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    return definition_in(text, name) or definition_source(obj), imports


def yours(*names: str, namespace: Mapping[str, Any] | None = None) -> str | None:
    """The handler module made of the named classes and functions, the last the entry.

    Names are looked up in the caller's namespace (a notebook's, when called from a
    cell) or in `namespace`; None if one is not defined
    (its exercise cell has not run, or still raises NotImplementedError).
    """
    if namespace is None:  # the caller's globals: a notebook's own namespace
        caller = inspect.currentframe()
        space = caller.f_back.f_globals if caller and caller.f_back else {}
    else:
        space = namespace
    parts: list[str] = []
    imports: list[str] = []
    for name in names:
        obj = space.get(name)
        if obj is None:
            return None
        source, found = _definition(obj, name)
        parts.append(source)
        imports += [line for line in found if line not in imports]
    entry = names[-1]
    alias = "" if entry == "fetch" else f"\n\nfetch = {entry}\n"
    return "\n\n\n".join(imports + parts) + alias


def deploy(source: str, pops: Any, config: dict[str, Any] | None = None) -> None:
    """`kit.control.deploy`, tried again when a worker could not start in time (on a busy
    machine a PoP can fail to start a Python process within its limit)."""
    for attempt in range(3):
        try:
            _deploy(source, pops, config=config)
            return
        except DeployError as error:
            if "did not start" not in str(error) or attempt == 2:
                raise
            time.sleep(2)


def missing(names: Iterable[str]) -> CheckFailed:
    listed = ", ".join(names)
    return CheckFailed(
        "your code",
        f"{listed} defined by the exercise cell",
        "not defined (NotImplementedError, or the cell was not run)",
        hint="write the exercise cell above, run it, then this one again",
    )


# -- sending requests from world hosts ------------------------------------------------

DRIVER = r"""
import asyncio, json, sys, time
import aiohttp

plan = json.loads(sys.argv[1])

async def main():
    asks, results = plan["asks"], [None] * len(plan["asks"])
    order = iter(range(len(asks)))
    timeout = aiohttp.ClientTimeout(total=plan["timeout"])
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async def client():
            for i in order:
                method, url, at = asks[i]
                wait = max(at, plan["start_at"]) - time.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                t0 = time.time()
                try:
                    async with session.request(method, url) as answer:
                        text = await answer.text()
                        results[i] = [answer.status, text[:400], t0, time.time()]
                except Exception as error:
                    results[i] = [0, type(error).__name__ + ": " + str(error), t0, time.time()]
        await asyncio.gather(*(client() for _ in range(plan["concurrency"])))
    print(json.dumps(results))

asyncio.run(main())
"""


Ask = tuple[str, str, float]  # method, url, not before (epoch s; 0: at the start)


def drive(
    world: Any,
    plans: Mapping[str, tuple[list[Ask], int]],
    start_in_s: float = 2.0,
    timeout_s: float = 20.0,
) -> pd.DataFrame:
    """Send each host's asks with that many concurrent clients, every host starting at
    the same instant; one row per request: host, method, url, status, body, start, end."""
    start_at = time.time() + start_in_s

    def run(host: str) -> list[list[Any]]:
        asks, concurrency = plans[host]
        plan = {"asks": asks, "concurrency": concurrency, "start_at": start_at}
        plan["timeout"] = timeout_s
        latest = max([a[2] for a in asks] + [start_at])
        longest = latest - time.time() + timeout_s * len(asks) / max(1, concurrency) + 30
        command = f"{shlex.quote(sys.executable)} -c {shlex.quote(DRIVER)} "
        return json.loads(world.run(host, command + shlex.quote(json.dumps(plan)), longest))

    rows = []
    with ThreadPoolExecutor(max(1, len(plans))) as pool:
        for host, results in zip(plans, pool.map(run, plans), strict=True):
            for (method, url, _), result in zip(plans[host][0], results, strict=True):
                status, body, t0, t1 = result
                rows.append(
                    {"host": host, "method": method, "url": url, "status": status, "body": body}
                    | {"start": t0, "end": t1, "ms": (t1 - t0) * 1000}
                )
    return pd.DataFrame(rows)


def number(body: str, field: str) -> Any:
    """A field of a JSON answer, or None."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data.get(field) if isinstance(data, dict) else None


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _shown(rows: pd.DataFrame, limit: int = 8) -> str:
    shown = [
        f"{r.method} {r.url.split('/', 3)[-1]} -> {r.status} {r.body.strip()[:80]}"
        for r in rows.itertuples()
    ]
    more = f" (+{len(shown) - limit} more)" if len(shown) > limit else ""
    return "; ".join(shown[:limit]) + more


# -- what both builds must do, one request after another --------------------------------


class SequentialProbe:
    """The routes, one request after another from one city (one PoP)."""

    def __init__(self, world: Any, edge: Any, rng: random.Random | None = None) -> None:
        self.world, self.edge = world, edge
        self.rng = rng or random.Random()
        self.limit = self.rng.randint(3, 5)
        self.window_s = self.big_window()

    def big_window(self) -> int:
        """A window (s) with at least a minute left of the current one: no edge in the check."""
        now = time.time()
        for _ in range(1000):
            window = self.rng.randint(600, 7200)
            if window - now % window > 60:
                return window
        return 10**6

    @property
    def config(self) -> dict[str, Any]:
        return {"limit": self.limit, "window_s": self.window_s}

    def deploy(self, source: str, config: dict[str, Any] | None = None) -> None:
        deploy(source, self.edge.pops, config or self.config)

    def counts(self) -> None:
        user = self.rng.choice(UNNAMED)
        base = self.edge.anycast_url
        a, b, never = fresh("visits"), fresh("likes"), fresh("nobody")
        n_a = self.rng.randint(3, 5)
        n_b = n_a + self.rng.randint(1, 2)
        asks: list[Ask] = [("POST", f"{base}/count/{a}", 0)] * n_a
        asks += [("GET", f"{base}/count/{a}", 0)] * 2
        asks += [("POST", f"{base}/count/{b}", 0)] * n_b
        asks += [("GET", f"{base}/count/{a}", 0), ("GET", f"{base}/count/{never}", 0)]
        rows = drive(self.world, {user: (asks, 1)}, start_in_s=0.5)
        bad = rows[rows.status != 200]
        expect(
            bad.empty,
            f"POST and GET /count/NAME from {user}, one after another",
            "200 for each",
            _shown(bad),
            hint="hint level 1 or 2 (the routes are in the prose above the exercise)",
        )
        told = [number(body, "count") for body in rows.body]
        posts_a, gets_a = told[:n_a], told[n_a : n_a + 2]
        posts_b, last_a, nobody = told[n_a + 2 : n_a + 2 + n_b], told[-2], told[-1]
        expect(
            posts_a == list(range(1, n_a + 1)),
            f"the counts {n_a} POST answers gave, one after another at one PoP",
            list(range(1, n_a + 1)),
            posts_a,
            hint=_sequence_hint(posts_a),
        )
        expect(
            gets_a == [n_a, n_a],
            "two GETs after the POSTs (a GET changes nothing)",
            [n_a, n_a],
            gets_a,
            hint=_read_hint(gets_a, n_a),
        )
        apart = posts_b[:1] == [1] and last_a == n_a
        expect(
            posts_b == list(range(1, n_b + 1)) and last_a == n_a,
            "a second counter, another NAME"
            + ("" if apart else ": counters of different names are apart"),
            f"{list(range(1, n_b + 1))}, and the first still {n_a}",
            f"{posts_b}, and the first {last_a}",
            hint=_sequence_hint(posts_b) if apart else "keep each NAME's count under its own key",
        )
        expect(nobody == 0, "a GET of a counter nobody added to", 0, repr(nobody))

    def limits(self, source: str) -> None:
        user = self.rng.choice(UNNAMED)
        base, client, other = self.edge.anycast_url, fresh("client"), fresh("client")
        asks: list[Ask] = [("POST", f"{base}/limit/{client}", 0)] * (self.limit + 2)
        asks.append(("POST", f"{base}/limit/{other}", 0))
        rows = drive(self.world, {user: (asks, 1)}, start_in_s=0.5)
        statuses = list(rows.status)
        wanted = [200] * self.limit + [429, 429, 200]
        expect(
            statuses == wanted,
            f"limit={self.limit}: {self.limit + 2} POST /limit/CLIENT one after another, "
            "then one of another client",
            wanted,
            statuses,
            hint="allow while fewer than the limit were allowed in this window; "
            "clients apart; a refusal is a 429",
        )
        self.new_window(source)

    def new_window(self, source: str) -> None:
        """With a window of 3 s: the limit, then a new window allows again."""
        window = 3
        self.deploy(source, {"limit": self.limit, "window_s": window})
        try:
            user, base, client = self.rng.choice(UNNAMED), self.edge.anycast_url, fresh("client")
            now = time.time()
            first = (now // window + 2) * window + 0.1  # just after a window starts
            asks: list[Ask] = [("POST", f"{base}/limit/{client}", first)] * (self.limit + 1)
            asks.append(("POST", f"{base}/limit/{client}", first + window))
            rows = drive(self.world, {user: (asks, 1)}, start_in_s=0.5)
            late = rows.end.iloc[: self.limit + 1].max() >= first + window - 0.05
            statuses = list(rows.status)
            wanted = [200] * self.limit + [429, 200]
            if late:  # the machine was too slow to stay inside one window: no verdict
                print("(the new-window part ran past its window on this machine: not judged)")
                return
            expect(
                statuses == wanted,
                f"limit={self.limit}, window_s={window}: the limit, one more, "
                "then one in the next window",
                wanted,
                statuses,
                hint="count per window: the window number is int(time.time() // window_s), "
                "and a new window starts from nothing",
            )
        finally:
            self.deploy(source)


class KvProbe(SequentialProbe):
    """The warm-up's check: what a KV counter and limiter can get right."""

    def check(self, source: str | None) -> None:
        if source is None:
            raise missing(["kv_app"])
        self.deploy(source)
        self.counts()
        self.limits(source)


# -- what only the actor can promise ------------------------------------------------------


class ActorProbe(SequentialProbe):
    """The main build's check (see the module docstring)."""

    per_client = 3

    def check(self, source: str | None) -> None:
        if source is None:
            raise missing(["Counter", "Limiter", "actor_app"])
        self.deploy(source)
        self.counts()
        self.limits(source)
        name, acknowledged, client = self.concurrent()
        self.survives_eviction(name, acknowledged, client)
        self.partition()

    def concurrent(self) -> tuple[str, int, str]:
        """Every city at once: no lost update, no count told twice, one limit."""
        base, name, client = self.edge.anycast_url, fresh("hits"), fresh("client")
        first = self.rng.choice(CITIES + UNNAMED)
        opened = drive(self.world, {first: ([("POST", f"{base}/count/{name}", 0)], 1)}, 0.3)
        expect(
            list(opened.status) == [200],
            f"the first POST /count/{name} from {first}",
            200,
            _shown(opened),
        )
        plans: dict[str, tuple[list[Ask], int]] = {}
        clients = 5
        for user in CITIES + UNNAMED:
            asks: list[Ask] = [("POST", f"{base}/count/{name}", 0)] * (clients * self.per_client)
            asks += [("POST", f"{base}/limit/{client}", 0)] * 3
            self.rng.shuffle(asks)
            plans[user] = (asks, clients)
        rows = drive(self.world, plans)
        counted = rows[rows.url.str.contains("/count/")]
        limited = rows[rows.url.str.contains("/limit/")]
        acked = counted[counted.status == 200]
        # A request that got no answer in time (a busy machine) may or may not have
        # counted: it widens what the count may be, and never hides a lost update.
        unknown = int(counted.status.isin(UNANSWERED).sum())
        told = sorted([1] + [number(b, "count") for b in acked.body], key=lambda n: (n is None, n))
        total = len(acked) + 1
        reads = self.read_everywhere(name)
        counts = [n for n in reads.values() if isinstance(n, int)]
        found = [str(reads)]
        if len(set(reads.values())) > 1:
            found.append("the counts disagree between PoPs (more than one instance?)")
        if counts and max(counts) < total:
            found.append(f"{total - max(counts)} lost updates")
        repeated = len(told) - len(set(told))
        if repeated:
            found.append(f"{repeated} POSTs were told the same count as another")
        final = counts[0] if len(set(reads.values())) == 1 and counts else None
        maybe = f" (+ up to {unknown} that got no answer in time)" if unknown else ""
        expect(
            final is not None and total <= final <= total + unknown,
            f"{total} POSTs acknowledged (200){maybe} from {len(plans)} cities at once, "
            f"then GET /count/{name} at every PoP",
            f"{total}{' to ' + str(total + unknown) if unknown else ''} at every PoP: "
            "one instance, no lost updates",
            "; ".join(found),
            hint="a read and a write of a value kept anywhere but in one object's storage "
            "lose updates, and an id that differs between PoPs makes several objects"
            + (
                "; in one object's storage, POSTs told the same count mean a write not "
                "done (awaited) before the answer went out"
                if repeated
                else ""
            )
            + "; hint level 2",
        )
        expect(
            len(set(told)) == len(told) and all(isinstance(n, int) and n <= final for n in told),
            "the counts the acknowledged POSTs were told",
            f"each a different number from 1 to {final}",
            _dupes(told),
            hint="two POSTs were told the same count: was each write done "
            "(awaited) before the answer went out?",
        )
        allowed = int((limited.status == 200).sum())
        late = int(limited.status.isin(UNANSWERED).sum())
        expect(
            allowed <= self.limit <= allowed + late,
            f"limit={self.limit}: {len(limited)} POST /limit/{client} from {len(plans)} cities "
            "at once (through every PoP)",
            f"{self.limit} allowed in all: one limit across PoPs",
            f"{allowed} allowed ({_by_pop(limited)})",
            hint="a limit kept at each PoP (env.state) is a limit per PoP; "
            "the client's count belongs to one object",
        )
        refused = limited[(limited.status != 200) & ~limited.status.isin(UNANSWERED)]
        expect(
            set(refused.status) <= {429},
            "the refused /limit requests",
            "429",
            _shown(refused[refused.status != 429]),
        )
        return name, final, client

    def read_everywhere(self, name: str) -> dict[str, Any]:
        user = self.rng.choice(UNNAMED)
        asks: list[Ask] = [
            ("GET", f"{self.edge.pop_url(p)}/count/{name}", 0) for p in self.edge.pops
        ]
        rows = drive(self.world, {user: (asks, len(asks))}, 0.3)
        return {
            pop: number(r.body, "count") if r.status == 200 else f"HTTP {r.status}"
            for pop, r in zip(self.edge.pops, rows.itertuples(), strict=True)
        }

    def survives_eviction(self, name: str, acknowledged: int, client: str) -> None:
        for pop in self.edge.pops:  # wherever it lives, its instance is gone now
            self.edge.evict(pop)
        user, base = self.rng.choice(CITIES), self.edge.anycast_url
        asks: list[Ask] = [
            ("GET", f"{base}/count/{name}", 0),
            ("POST", f"{base}/limit/{client}", 0),
        ]
        rows = drive(self.world, {user: (asks, 1)}, 0.3)
        after = number(rows.body.iloc[0], "count") if rows.status.iloc[0] == 200 else None
        expect(
            after == acknowledged,
            f"GET /count/{name} after edge.evict of every PoP (the instances are gone)",
            f"{acknowledged}: the state is in the actor's storage",
            f"{after!r} ({rows.status.iloc[0]})",
            hint="an instance is memory and is lost when its worker goes; "
            "state.storage is what lasts",
        )
        expect(
            rows.status.iloc[1] == 429,
            f"POST /limit/{client} after edge.evict of every PoP (its limit was used up)",
            "429: the window's count is in storage",
            _shown(rows.iloc[1:]),
            hint="an instance is memory and is lost when its worker goes; "
            "state.storage is what lasts",
        )

    def partition(self) -> None:
        """Tokyo cut off: one side answers, the other gets an error naming the home."""
        name = fresh("cut")
        tokyo, other = "pop-tokyo", self.rng.choice(["pop-frankfurt", "pop-virginia"])
        near = {"pop-frankfurt": "user-berlin", "pop-virginia": "user-newyork"}[other]
        at_tokyo = f"{self.edge.pop_url(tokyo)}/count/{name}"
        at_other = f"{self.edge.pop_url(other)}/count/{name}"
        before = pd.concat(  # Tokyo first: an actor placed by its first caller lives there
            [
                drive(self.world, {"user-tokyo": ([("POST", at_tokyo, 0)], 1)}, 0.3),
                drive(self.world, {near: ([("POST", at_other, 0)], 1)}, 0.3),
                drive(self.world, {"user-tokyo": ([("GET", at_tokyo, 0)], 1)}, 0.3),
            ]
        )
        expect(
            (before.status == 200).all(),
            "POSTs from both sides before the partition",
            200,
            _shown(before),
        )
        self.world.partition(["tokyo"])
        try:
            during = drive(
                self.world,
                {"user-tokyo": ([("POST", at_tokyo, 0)], 1), near: ([("POST", at_other, 0)], 1)},
                0.3,
            )
        finally:
            self.world.heal()
        ok = during[during.status == 200]
        failed = during[during.status != 200]
        expect(
            len(ok) <= 1,
            f"one POST from each side while Tokyo is cut off ({tokyo} | {other})",
            "an answer on the home's side only; an error across the cut",
            f"both answered 200: {_shown(during)} (a stale or split count)",
            hint="when the actor cannot be reached, say so (ActorError); an answer from "
            "anywhere else is a stale or second copy",
        )
        expect(
            len(ok) == 1,
            f"one POST from each side while Tokyo is cut off ({tokyo} | {other})",
            "the home's side goes on",
            _shown(during),
            hint="the side where the actor lives should still be served",
        )
        error = failed.iloc[0]
        names_pop = any(pop in error.body for pop in self.edge.pops)
        expect(
            error.status >= 500 and names_pop,
            "the answer across the cut",
            "a 5xx whose body names the PoP where the actor lives",
            f"{error.status} {error.body.strip()[:200]!r}",
            hint="let ActorError through, or answer 503 with its message: it names the home",
        )
        home_said = number(ok.iloc[0].body, "count")
        after = drive(self.world, {near: ([("GET", at_other, 0)], 1)}, 0.3)
        final = number(after.body.iloc[0], "count")
        # The request that got an error may still arrive once the cut heals: a caller
        # that timed out cannot know. So 4 is honest after the heal; anything else is not.
        expect(
            home_said == 3 and final in (3, 4),
            "the count on the home's side during the cut, and after it healed",
            "3 (two before, one during), then 3, or 4 if the request that timed out arrived late",
            f"{home_said!r}, then {final!r}",
            hint="one object, one count: nothing answers for it but its home",
        )


def _sequence_hint(told: list[Any]) -> str:
    """What a wrong run of counts from one-after-another POSTs suggests."""
    if any(not isinstance(n, int) for n in told):
        return 'answer the count as a number: {"count": 3}; hint level 2'
    if len(set(told)) < len(told):
        return (
            "two POSTs were told the same count: was the write done (awaited) "
            "before the answer went out?"
        )
    return "each POST adds one and answers the count after it; hint level 2"


def _read_hint(gets: list[Any], acknowledged: int) -> str:
    """Why GETs after the POSTs did not read what the last POST was told."""
    if any(isinstance(n, int) and n < acknowledged for n in gets):
        return (
            "a GET read less than the last POST was told: was the write done (awaited) "
            "before the answer went out?"
        )
    return "only a POST adds one; a GET reads"


def _dupes(told: list[Any]) -> str:
    seen: dict[Any, int] = {}
    for n in told:
        seen[n] = seen.get(n, 0) + 1
    twice = [n for n, k in seen.items() if k > 1]
    return f"told twice or more: {twice[:10]}" if twice else f"{told[:10]}…"


def _by_pop(rows: pd.DataFrame) -> str:
    return f"{int((rows.status == 200).sum())} of {len(rows)} requests"
