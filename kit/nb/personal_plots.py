"""Chapter 04's measurements and what it shows: three ways to cache a personalised page.

    plain = load_approach(world, edge, SOURCES, paths=PAGES)   # one approach, stepped
    approaches_table({"plain URL": plain, "Vary: Cookie": vary, "variant key": keyed})
    plot_steps({name: a.steps for name, a in approaches.items()})
    per_city_table(approaches)
    personal_claims(leak, approaches)

**The load.** Locust with `kit/load/locustfiles/many_users.py`: every request is
a visitor drawn from a pool of thousands of ids, with that visitor's cookie and
device, so most requests are a person's first view of a page, as on a real
site. The locustfile counts a page that greets anyone but its visitor as a
failure named "leak"; everything else that fails is an error.

**Stepped.** `load_approach` is `kit.load.step_load` (so `plot_steps` draws it,
with `counted_per_s` = origin requests/s) plus what this chapter needs from each
step, collected by its `observe`: the leaks apart from the errors, the PoPs'
cache hit ratio during the step (their own counters, hits / (hits + misses)),
and each city's p50/p95.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kit.load.runner import LOCUSTFILES, LoadResult
from kit.load.steps import step_load
from kit.nb.claims import Claim

MANY_USERS = LOCUSTFILES / "many_users.py"
LEAK = "leak"


@dataclass
class Approach:
    """One approach under load: a row per step, and each city's latency at the last step."""

    steps: pd.DataFrame
    per_city: pd.DataFrame

    @property
    def last(self) -> pd.Series:
        return self.steps.iloc[-1]


def _cache_counts(edge: Any) -> tuple[int, int]:
    hits = misses = 0
    for pop in edge.pops:
        cache = edge.metrics(pop)["cache"]
        hits += cache["hit"] + cache["stale"] + cache["revalidated"]
        misses += cache["miss"]
    return hits, misses


def load_approach(
    world: Any,
    edge: Any,
    sources: Iterable[str],
    *,
    paths: Iterable[str],
    users: Iterable[int] = (6, 24),
    run_time_s: int = 3,
    visitors: int = 5000,
    wait_s: float = 0.05,
) -> Approach:
    """Step Locust's users from `sources` to the anycast address (module docstring)."""
    env = {"LOAD_VISITORS": str(visitors)}
    counts = [_cache_counts(edge)]  # the PoPs' hits and misses when each step began
    cities = []

    def observe(result: LoadResult) -> dict[str, float]:
        (hits_before, misses_before), (hits, misses) = counts[-1], _cache_counts(edge)
        counts.append((hits, misses))
        hits, misses = hits - hits_before, misses - misses_before
        stats = result.stats[result.stats["name"] == "Aggregated"].set_index("source")
        failures = result.failures
        no_failures = pd.Series([], dtype=bool)
        leaked = failures["error"].str.contains(LEAK) if len(failures) else no_failures
        leaks_by_city = failures[leaked].groupby("source")["occurrences"].sum()
        requests, leaks = stats["requests"].sum(), int(leaks_by_city.sum())
        city = stats[["requests", "p50", "p95"]].copy()
        city["leak_pct"] = [
            100 * leaks_by_city.get(name, 0) / max(1, stats.loc[name, "requests"])
            for name in city.index
        ]
        city.index = [name.removeprefix("user-") for name in city.index]
        cities.append(city)
        return {  # a leak is not an error: counted apart
            "failures": int(stats["failures"].sum()) - leaks,
            "failure_pct": 100 * (stats["failures"].sum() - leaks) / max(1, requests),
            "leaks": leaks,
            "leak_pct": 100 * leaks / max(1, requests),
            "hit_ratio": hits / max(1, hits + misses),
        }

    steps = step_load(
        world,
        sources,
        edge.anycast_url,
        users=users,
        run_time_s=run_time_s,
        paths=paths,
        wait_s=wait_s,
        counter=lambda: edge.metrics(edge.origin)["requests"],
        locustfile=MANY_USERS,
        env=env,
        observe=observe,
    )
    return Approach(steps, cities[-1])


def approaches_table(approaches: Mapping[str, Approach]) -> pd.DataFrame:
    """At the heaviest step: hit ratio, origin requests/s, leaks, throughput and latency."""
    rows = {}
    for name, approach in approaches.items():
        last = approach.last
        rows[name] = {
            "hit ratio %": 100 * last["hit_ratio"],
            "origin req/s": last["counted_per_s"],
            "pages leaked %": last["leak_pct"],
            "req/s": last["rps"],
            "p50 ms": last["p50"],
            "p95 ms": last["p95"],
            "errors": last["failures"],
        }
    table = pd.DataFrame(rows).T
    table.index.name = f"at {int(next(iter(approaches.values())).steps.index[-1])} Locust users"
    return table.round(1)


def per_city_table(approaches: Mapping[str, Approach]) -> pd.DataFrame:
    """p50 and p95 (ms) per city and approach, at the heaviest step."""
    parts = {name: a.per_city[["p50", "p95"]] for name, a in approaches.items()}
    return pd.concat(parts, axis=1).round(1)


def leak_demo(pages: Mapping[str, Any]) -> pd.DataFrame:
    """Who asked, who the page greeted, and whether it came from the PoP's cache."""
    rows = [
        {
            "visitor": who,
            "greeted as": page.greeting,
            "x-cache": page.cache,
            "leak": page.greeting not in (who, "guest"),
        }
        for who, page in pages.items()
    ]
    return pd.DataFrame(rows).set_index("visitor")


def personal_claims(
    approaches: Mapping[str, Approach], plain: str, vary: str, keyed: str
) -> list[Claim]:
    """The chapter's claims next to this run's numbers."""
    p, v, k = (approaches[n].last for n in (plain, vary, keyed))
    return [
        Claim(
            "A personalised page cached under its URL serves one user's page to others",
            "it leaks (the textbook warns, without a number)",
            f"{p['leak_pct']:.0f}% of pages greeted another visitor",
            "every visitor after the first at a PoP gets the first one's page until it "
            "expires; the share is the share of hits",
        ),
        Claim(
            "Vary: Cookie is safe but collapses the hit ratio",
            "hit ratio near 0",
            f"hit ratio {100 * v['hit_ratio']:.0f}% (plain URL {100 * p['hit_ratio']:.0f}%); "
            f"origin {v['counted_per_s']:.0f} req/s against {p['counted_per_s']:.0f}; "
            f"{v['leak_pct']:.0f}% leaked",
            "each visitor's cookie is a variant of its own: only a visitor's own repeat "
            "hits; how often that happens depends on the pool of visitors and the run's "
            "length",
        ),
        Claim(
            "Personalise at the edge and keep the cache",
            "hit ratio of an unpersonalised page",
            f"variant key: hit ratio {100 * k['hit_ratio']:.0f}%, origin "
            f"{k['counted_per_s']:.0f} req/s, {k['leak_pct']:.0f}% leaked",
            "a few variants per page and PoP (cohorts × markets × devices), each fetched "
            "once per PoP and max-age; misses are the first view of each variant",
        ),
        Claim(
            "Personalising costs little latency",
            "negligible",
            f"p50 {k['p50']:.0f} ms with the handler against {p['p50']:.0f} ms plain "
            f"(worst city); p95 {k['p95']:.0f} against {p['p95']:.0f} ms",
            "the handler runs in a worker process of a Python PoP on a small shared "
            "machine; platforms run it in-process, in microseconds",
        ),
    ]
