"""Chapter 08's measurements: KV's staleness, lost updates under load, latency, partitions.

Every measurement sends real requests through the PoPs of a running world:

- `staleness`: a value is written through one PoP while a poller on every PoP's
  own host reads it there every 0.1 s with a given `cache_ttl_s`; how long after
  the write was acknowledged each PoP first answered the new value. The writes
  come at random moments of the readers' cached copy's life, so the delays
  spread over what the TTL allows.
- `load_steps`: the counter under concurrent clients from six cities, stepped
  (4, 16, 64 clients): POSTs acknowledged against the count at the end (read from
  the central KV store itself for KV, through a PoP for an actor), with latency
  percentiles and throughput per step. This is the chapter's load test.
- `latency_per_city`: from each city, a KV read (a copy already at the PoP), a KV
  write, and a request to an actor living in Frankfurt.
- `partition_run`: Tokyo cut off from the rest; what KV reads and writes, and an
  actor homed on either side, answer on each side of the cut.

The KV measurements use `PROBE`, a handler of the kit's own (KV reads and
writes by key), deployed next to the learner's handler by `with_probe`.
Requests are sent with `actor_checks.drive`.
"""

from __future__ import annotations

import json
import random
import re
import shlex
import sys
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from kit.nb.actor_checks import CITIES, Ask, deploy, drive, fresh, number
from kit.nb.claims import Claim

PROBE = '''
async def _kit_probe(request, env, ctx):
    """GET /_probe/kv/KEY?ttl=S reads KEY (kept here S s); PUT /_probe/kv/KEY?v=V writes."""
    import asyncio

    key = request.path.split("/", 3)[3]
    try:
        if request.method == "PUT":  # a write that gets no answer in 4 s has failed
            await asyncio.wait_for(env.kv.put(key, request.query["v"]), 4)
            return Response.text("written")
        value = await env.kv.get(key, cache_ttl_s=float(request.query.get("ttl", 60)))
        return Response.text(value or "")
    except KvError as error:
        return Response.text(f"KvError: {error}", 503)
    except TimeoutError:
        return Response.text("KvError: the KV store did not answer in 4 s", 503)
'''

DISPATCH = """

_learners = fetch


async def fetch(request, env, ctx):
    if request.path.startswith("/_probe/kv/"):
        return await _kit_probe(request, env, ctx)
    return await _learners(request, env, ctx)
"""

NOTHING = """

async def fetch(request, env, ctx):
    return Response.text("(your handler is not written yet)\\n", 501)
"""


def with_probe(source: str | None) -> str:
    """The learner's handler module (or a 501 while there is none) plus the KV probe."""
    return PROBE + (source or NOTHING) + DISPATCH


# -- how long another PoP reads the old value --------------------------------------------

POLLER = r"""
import asyncio, json, sys, time
import aiohttp

plan = json.loads(sys.argv[1])

async def main():
    seen = {}
    async with aiohttp.ClientSession() as session:
        async def poll(key, ttl, new):
            while time.time() < plan["until"]:
                url = f"{plan['base']}/_probe/kv/{key}?ttl={ttl}"
                try:
                    async with session.get(url) as answer:
                        if (await answer.text()) == new:
                            seen[key] = time.time()
                            return
                except Exception:
                    pass
                await asyncio.sleep(plan["every"])
        await asyncio.sleep(max(0, plan["start_at"] - time.time()))
        await asyncio.gather(*(poll(*k) for k in plan["keys"]))
    print(json.dumps(seen))

asyncio.run(main())
"""


def staleness(
    world: Any,
    edge: Any,
    ttls: Iterable[int] = (2, 5),
    keys: int = 4,
    writer: str = "pop-frankfurt",
    seed: int | None = None,
) -> pd.DataFrame:
    """Seconds from a write's acknowledgement to each PoP first reading the new value.

    One row per (PoP, key): pop, cache_ttl_s, stale_s (NaN if never seen in time).
    """
    rng = random.Random(seed)
    ttls = list(ttls)
    deploy(with_probe(None), edge.pops)
    planned = [(fresh(f"ttl{t}"), t) for t in ttls for _ in range(keys)]
    writer_url = edge.pop_url(writer)
    user = "user-berlin"
    first: list[Ask] = [("PUT", f"{writer_url}/_probe/kv/{k}?v=old", 0) for k, _ in planned]
    drive(world, {user: (first, 4)}, 0.3)
    start = time.time() + 2.5
    longest = max(ttls)
    until = start + 2 * longest + 3
    writes: list[Ask] = []
    for key, ttl in planned:  # readers cache "old" at the start; the write comes during its life
        writes.append(
            ("PUT", f"{writer_url}/_probe/kv/{key}?v=new", start + 0.3 + rng.random() * ttl)
        )
    writes.sort(key=lambda a: a[2])

    def poller(pop: str) -> dict[str, float]:
        plan = {"base": edge.pop_url(pop), "until": until, "every": 0.1, "start_at": start}
        plan["keys"] = [[k, t, "new"] for k, t in planned]
        command = f"{shlex.quote(sys.executable)} -c {shlex.quote(POLLER)} "
        host = pop  # the PoP's own host: no network between the reader and its PoP
        return json.loads(
            world.run(host, command + shlex.quote(json.dumps(plan)), until - time.time() + 30)
        )

    with ThreadPoolExecutor(len(edge.pops) + 1) as pool:
        polling = {pop: pool.submit(poller, pop) for pop in edge.pops}
        written = drive(world, {user: (writes, len(writes))}, start - time.time())
        seen = {pop: future.result() for pop, future in polling.items()}
    acked = {
        w[1].split("/")[-1].split("?")[0]: end for w, end in zip(writes, written.end, strict=True)
    }
    rows = []
    for pop, found in seen.items():
        for key, ttl in planned:
            stale = found[key] - acked[key] if key in found else np.nan
            rows.append({"pop": pop, "cache_ttl_s": ttl, "stale_s": stale})
    return pd.DataFrame(rows)


def plot_staleness(table: pd.DataFrame) -> Figure:
    """Each PoP's delay before it read the new value, by cache_ttl_s, the TTL as a line."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    pops = sorted(table["pop"].unique())
    ttls = sorted(table.cache_ttl_s.unique())
    width = 0.8 / len(ttls)
    for i, ttl in enumerate(ttls):
        part = table[table.cache_ttl_s == ttl]
        for j, pop in enumerate(pops):
            ys = part[part["pop"] == pop].stale_s.to_numpy()
            xs = np.full(len(ys), j + (i - (len(ttls) - 1) / 2) * width)
            ax.scatter(xs, ys, s=22, color=f"C{i}", label=f"cache_ttl_s={ttl}" if j == 0 else None)
        ax.axhline(ttl, color=f"C{i}", ls="--", lw=1)
    ax.set_xticks(range(len(pops)), [p.removeprefix("pop-") for p in pops])
    ax.set_ylabel("s until the new value is read")
    ax.set_title("After a KV write through Frankfurt: how long each PoP still read the old value")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def staleness_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per cache_ttl_s: the longest and the median delay at the other PoPs, and at the writer's."""
    rows = {}
    for ttl, part in table.groupby("cache_ttl_s"):
        others = part[part["pop"] != "pop-frankfurt"].stale_s
        rows[ttl] = {
            "median at other PoPs (s)": others.median(),
            "longest at other PoPs (s)": others.max(),
            "longest at the writer's PoP (s)": part[part["pop"] == "pop-frankfurt"].stale_s.max(),
        }
    return pd.DataFrame(rows).T.rename_axis("cache_ttl_s").round(2)


# -- lost updates under load ----------------------------------------------------------------


def store_count(world: Any, kv: Any, name: str) -> int | None:
    """The counter's value in the central KV store itself (the key that contains `name`)."""
    listed = json.loads(world.run("user-berlin", f"curl -s -m 10 '{kv.url}/kv?prefix='"))
    keys = [k for k in listed.get("keys", []) if name in k]
    if len(keys) != 1:
        return None
    from urllib.parse import quote

    raw = world.run("user-berlin", f"curl -s -m 10 '{kv.url}/kv/{quote(keys[0], safe='')}'")
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return (
        value.get("count") if isinstance(value, dict) else value if isinstance(value, int) else None
    )


def load_steps(
    world: Any,
    edge: Any,
    source: str | None,
    steps: Iterable[int] = (4, 16, 64),
    per_client: int = 3,
    kv: Any = None,
    opener: str = "user-berlin",
) -> pd.DataFrame:
    """The counter under `steps` concurrent clients spread over six cities.

    Each step's counter is new, opened by one POST from `opener` (so an actor lives
    at that user's PoP); that POST counts as acknowledged too.

    `kv` given: the count at the end is read from the central store (the KV
    build); otherwise through a PoP (the actor). One row per step.
    """
    columns = ["clients", "acknowledged", "counted", "lost", "lost %", "req/s", "p50 ms", "p99 ms"]
    if source is None:
        print("(not written yet: nothing to load)")
        return pd.DataFrame(columns=columns).set_index("clients")
    deploy(with_probe(source), edge.pops)
    rows = []
    for clients in steps:
        name = fresh("load")
        spread: dict[str, int] = {}
        for i in range(clients):
            spread[CITIES[i % len(CITIES)]] = spread.get(CITIES[i % len(CITIES)], 0) + 1
        url = f"{edge.anycast_url}/count/{name}"
        opened = drive(world, {opener: ([("POST", url, 0)], 1)}, 0.3)  # an actor's home
        plans = {user: ([("POST", url, 0)] * (n * per_client), n) for user, n in spread.items()}
        result = drive(world, plans)
        acked = int((result.status == 200).sum() + (opened.status == 200).sum())
        if kv is not None:
            counted = store_count(world, kv, name)
        else:
            read = drive(world, {"user-london": ([("GET", url, 0)], 1)}, 0.3)
            counted = number(read.body.iloc[0], "count")
        counted = counted if isinstance(counted, int) else 0
        span = result.end.max() - result.start.min()
        rows.append(
            {
                "clients": clients,
                "acknowledged": acked,
                "counted": counted,
                "lost": acked - counted,
                "lost %": 100 * (acked - counted) / acked if acked else 0.0,
                "req/s": len(result) / span if span > 0 else np.nan,
                "p50 ms": result.ms.quantile(0.5),
                "p99 ms": result.ms.quantile(0.99),
            }
        )
    return pd.DataFrame(rows, columns=columns).set_index("clients").round(1)


def limit_spray(
    world: Any, edge: Any, source: str | None, limit: int = 5, per_city: int = 4
) -> dict[str, int]:
    """One client asking `/limit/CLIENT` from six cities at once (so through several PoPs),
    with a limit of `limit` in a window far longer than the test: how many were allowed."""
    if source is None:
        print("(not written yet: nothing to ask)")
        return {"limit": limit, "asked": 0, "allowed": 0}
    deploy(with_probe(source), edge.pops, {"limit": limit, "window_s": 10**6})
    url = f"{edge.anycast_url}/limit/{fresh('client')}"
    rows = drive(world, {user: ([("POST", url, 0)] * per_city, per_city) for user in CITIES})
    return {"limit": limit, "asked": len(rows), "allowed": int((rows.status == 200).sum())}


def plot_lost(tables: Mapping[str, pd.DataFrame]) -> Figure:
    """Lost updates (%) and latency against concurrent clients, for each build."""
    fig, (lost, lat) = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, (label, table) in enumerate(tables.items()):
        if table.empty:
            continue
        lost.plot(table.index, table["lost %"], "o-", color=f"C{i}", label=label)
        lat.plot(table.index, table["p50 ms"], "o-", color=f"C{i}", label=f"{label} p50")
        lat.plot(table.index, table["p99 ms"], "s--", color=f"C{i}", label=f"{label} p99")
    for ax in (lost, lat):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients (six cities)")
        ax.legend(fontsize=8)
    lost.set_ylabel("acknowledged POSTs not counted (%)")
    lost.set_ylim(bottom=-2)
    lost.set_title("Lost updates")
    lat.set_ylabel("ms per POST")
    lat.set_title("Latency")
    fig.tight_layout()
    return fig


# -- latency per city -------------------------------------------------------------------------


def latency_per_city(
    world: Any, edge: Any, source: str | None, users: Iterable[str] = CITIES, count: int = 5
) -> pd.DataFrame:
    """Median ms from each city: a KV read (copy at the PoP), a KV write, an actor request.

    The actor is placed in Frankfurt (its first caller is in Berlin).
    """
    users = list(users)
    deploy(with_probe(source), edge.pops)
    base, key, name = edge.anycast_url, fresh("page"), fresh("hits")
    setup: list[Ask] = [
        ("PUT", f"{base}/_probe/kv/{key}?v=hello", 0),
        ("POST", f"{base}/count/{name}", 0),
    ]
    drive(world, {"user-berlin": (setup, 1)}, 0.3)
    asks: list[Ask] = [("GET", f"{base}/_probe/kv/{key}?ttl=60", 0)]  # the copy comes to this PoP
    for _ in range(count):
        asks += [
            ("GET", f"{base}/_probe/kv/{key}?ttl=60", 0),
            ("PUT", f"{base}/_probe/kv/w-{key}?v=x", 0),
            ("GET", f"{base}/count/{name}", 0),
        ]
    result = drive(world, {u: (asks, 1) for u in users})  # one client per city, in turn
    result["what"] = [_kind(m, u) for m, u in zip(result.method, result.url, strict=True)]
    result = result[~result.index.isin(result.groupby("host").head(1).index)]  # the warm-up
    ok = result[result.status == 200]
    table = ok.pivot_table(index="host", columns="what", values="ms", aggfunc="median")
    columns = ["KV read (copy at the PoP)", "KV write", "actor (lives in Frankfurt)"]
    table = table.reindex(index=users, columns=columns)
    table.index = [u.removeprefix("user-") for u in table.index]
    table.columns.name = None
    return table.round(1)


def _kind(method: str, url: str) -> str:
    if "/_probe/kv/" in url:
        return "KV write" if method == "PUT" else "KV read (copy at the PoP)"
    return "actor (lives in Frankfurt)"


def plot_latency(table: pd.DataFrame) -> Figure:
    fig, ax = plt.subplots(figsize=(9, 3.6))
    table.plot.bar(ax=ax, rot=0)
    ax.set_ylabel("median ms per request")
    ax.set_title("From each city: KV read, KV write, and an actor in Frankfurt")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# -- a partition ----------------------------------------------------------------------------


def partition_run(world: Any, edge: Any, source: str | None) -> pd.DataFrame:
    """Tokyo cut off from every other region: what each side gets from KV and from actors.

    Before the cut a key is written and read (cached, 60 s) at both sides, and two
    counters are opened, one first called from Tokyo, one from Berlin.
    """
    deploy(with_probe(source), edge.pops)
    tokyo, frankfurt = edge.pop_url("pop-tokyo"), edge.pop_url("pop-frankfurt")
    key, at_tokyo, at_berlin = fresh("page"), fresh("tokyo-first"), fresh("berlin-first")
    sides = {"Tokyo": ("user-tokyo", tokyo), "Berlin": ("user-berlin", frankfurt)}
    drive(world, {"user-tokyo": ([("PUT", f"{tokyo}/_probe/kv/{key}?v=before", 0)], 1)}, 0.3)
    drive(world, {"user-tokyo": ([("POST", f"{tokyo}/count/{at_tokyo}", 0)], 1)}, 0.3)
    drive(world, {"user-berlin": ([("POST", f"{frankfurt}/count/{at_berlin}", 0)], 1)}, 0.3)
    warm = {
        user: (
            [("GET", f"{pop}/_probe/kv/{key}?ttl=60", 0)]
            + [("GET", f"{pop}/count/{c}", 0) for c in (at_tokyo, at_berlin)],
            1,
        )
        for user, pop in sides.values()
    }
    drive(world, warm, 0.3)
    world.partition(["tokyo"])
    try:
        plans = {}
        for user, pop in sides.values():
            plans[user] = (
                [
                    ("GET", f"{pop}/_probe/kv/{key}?ttl=60", 0),
                    ("PUT", f"{pop}/_probe/kv/{key}?v=during-{user}", 0),
                    ("POST", f"{pop}/count/{at_tokyo}", 0),
                    ("POST", f"{pop}/count/{at_berlin}", 0),
                ],
                4,
            )
        during = drive(world, plans, 0.3)
        after_write = drive(
            world, {"user-tokyo": ([("GET", f"{tokyo}/_probe/kv/{key}?ttl=60", 0)], 1)}, 0.3
        )
    finally:
        world.heal()
    what = [
        "KV read",
        "KV write",
        "actor first called from Tokyo",
        "actor first called from Berlin",
    ]
    rows = []
    for side, (user, _) in sides.items():
        part = during[during.host == user].reset_index(drop=True)
        for i, label in enumerate(what):
            r = part.iloc[i]
            rows.append(
                {
                    "from": side,
                    "what": label,
                    "status": int(r.status),
                    "ms": round(r.ms),
                    "answer": _short(r.body),
                }
            )
    r = after_write.iloc[0]
    rows.append(
        {
            "from": "Tokyo",
            "what": "KV read after Berlin's write",
            "status": int(r.status),
            "ms": round(r.ms),
            "answer": _short(r.body),
        }
    )
    return pd.DataFrame(rows).set_index(["from", "what"])


def _short(body: str) -> str:
    """An answer's body on one line, without the PoP's "edge handler error at PoP x: "."""
    text = re.sub(r"^edge handler error at PoP [\w-]+: ", "", " ".join(body.split()))
    text = re.sub(r"\. Its state is there only.*$", ".", text)
    return text if len(text) <= 110 else text[:107] + "…"


# -- what you measured ------------------------------------------------------------------------


def actor_claims(
    stale: pd.DataFrame,
    lost: Mapping[str, pd.DataFrame],
    latency: pd.DataFrame,
    cut: pd.DataFrame,
    limits: Mapping[str, Mapping[str, int]] | None = None,
) -> list[Claim]:
    """The chapter's claims next to this run's numbers."""
    summary = staleness_summary(stale)
    longest = {ttl: row["longest at other PoPs (s)"] for ttl, row in summary.iterrows()}
    stale_text = ", ".join(f"TTL {t} s: up to {v:.1f} s" for t, v in longest.items())
    kv, actor = lost.get("KV"), lost.get("actor")

    def worst(table: pd.DataFrame | None) -> str:
        if table is None or table.empty:
            return "not measured (not written yet)"
        top = table.index.max()
        lost, acked = table.loc[top, "lost"], table.loc[top, "acknowledged"]
        return f"{lost:.0f} of {acked:.0f} lost at {top} clients"

    read = latency["KV read (copy at the PoP)"]
    act = latency["actor (lives in Frankfurt)"]
    far = act.idxmax() if act.notna().any() else None
    cut_status = cut["status"]

    def status(side: str, what: str) -> str:
        try:
            return str(cut_status.loc[(side, what)])
        except KeyError:
            return "?"

    spray = ", ".join(
        f"{build}: {got['allowed']} of {got['asked']} allowed"
        for build, got in (limits or {}).items()
        if got.get("asked")
    )
    limit = next(iter((limits or {}).values()), {}).get("limit", "?")
    return [
        Claim(
            "KV is eventually consistent: another PoP sees a write within the cache TTL",
            "up to 60 s (Workers KV)",
            stale_text,
            "the world's PoPs keep a read for the reader's cache_ttl_s, short here to measure "
            "quickly; the writer's own PoP read its write at once",
        ),
        Claim(
            "KV is fast everywhere (reads)",
            "a read served from the location's cache",
            f"median {read.min():.0f}–{read.max():.0f} ms by city",
            "a read of a copy at the PoP costs the user's round trip to the PoP and the "
            "handler; a write always goes to the central store in Ashburn",
        ),
        Claim(
            "KV loses concurrent read-modify-write updates",
            "last write wins",
            worst(kv),
            "two PoPs read the same value and both write value + 1: one write wins",
        ),
        Claim(
            "a single-owner object is consistent",
            "no lost updates",
            worst(actor),
            "the input gate runs one request at a time, each write committed before the answer",
        ),
        Claim(
            "a rate limit needs one count per client",
            f"a limit of {limit}, however many PoPs the client uses",
            spray or "not measured (not written yet)",
            "on KV each PoP counts from its own copy; the actor is the one count",
        ),
        Claim(
            "but it lives in one place",
            "callers far from the home pay the round trip",
            f"slowest: {far} at {act.max():.0f} ms" if far else "not measured (not written yet)",
            "every request goes to the home PoP over the backbone",
        ),
        Claim(
            "under a partition",
            "KV serves stale reads; the actor's far side gets errors",
            f"Tokyo: KV read {status('Tokyo', 'KV read')}, KV write {status('Tokyo', 'KV write')}, "
            f"Berlin-homed actor {status('Tokyo', 'actor first called from Berlin')}",
            "KV trades consistency for availability, the actor availability for consistency",
        ),
    ]
