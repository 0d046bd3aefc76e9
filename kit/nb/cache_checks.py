"""Chapter 06's checks: a cache policy judged by what readers get, and RUM percentiles.

Readers are real requests from world hosts. `read(world, host, url, ...)` runs
one small Python loop on the host (a new connection per request, as distinct
readers make) and returns one row per request: when it was sent (wall clock,
the same on every host of the machine), how long it took, the status, the
PoP's `x-cache` and `Age`, the `Cache-Control` the reader saw, and the page's
version (the origin writes `version V` into every page). Running several
readers at once in threads lets a check change the origin in the middle of
their run.

`PolicyProbe` judges a learner's `cache_policy(update_s, outage_s)` (a list of
origin rules) on a site whose promises it makes up afresh each run; each
`expect` names the promise broken and the directive that breaks it.
`RumProbe` feeds made-up beacons into the PoP's own collector code
(`kit.services.rum.Collector`), with regions split unevenly across PoPs so
that averaging per-PoP percentiles is far from the truth, and compares a
learner's merged percentiles with the exact ones of the raw samples.
"""

from __future__ import annotations

import fnmatch
import json
import random
import secrets
import shlex
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from kit.nb.checks import CheckFailed, expect
from kit.services.cache import cache_directives, parse_cache_control, seconds
from kit.services.rum import Collector

# One reader: `count` GETs of a URL, `every_s` apart, a new connection each; JSON lines out.
_READER = r"""
import http.client, json, re, sys, time, urllib.parse
url, count, every = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
headers = json.loads(sys.argv[4])
parts = urllib.parse.urlsplit(url)
path = parts.path + ("?" + parts.query if parts.query else "")
for i in range(count):
    started = time.time()
    row = {"t": started, "status": 0}
    try:
        c = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=8)
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        body = r.read()
        text = body.decode("utf-8", "replace")
        found = re.search(r"version ([\w.-]+)<", text)
        greeting = re.search(r'id="greeting">([^<]*)<', text)
        row.update(status=r.status, cache=r.getheader("x-cache"), age=r.getheader("Age"),
                   cache_control=r.getheader("Cache-Control"), bytes=len(body),
                   encoding=r.getheader("Content-Encoding"), pop=r.getheader("x-edge-pop"),
                   version=found and found[1], greeting=greeting and greeting[1], body=text[:200])
        c.close()
    except Exception as error:
        row["error"] = str(error)
    row["ms"] = 1000 * (time.time() - started)
    print(json.dumps(row), flush=True)
    rest = every - (time.time() - started)
    if rest > 0 and i < count - 1:
        time.sleep(rest)
"""


def read(
    world: Any,
    host: str,
    url: str,
    count: int = 1,
    every_s: float = 0.0,
    headers: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """`count` GETs of `url` from `host`, `every_s` apart: one dict per request (module doc)."""
    args = [sys.executable, "-c", _READER, url, str(count), str(every_s)]
    command = shlex.join([*args, json.dumps(dict(headers or {}))])
    out = world.run(host, command, timeout=count * (every_s + 9) + 10)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


class Readers:
    """Readers started in threads now; `rows()` waits for them all."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.results: dict[str, list[dict[str, Any]]] = {}
        self.errors: list[BaseException] = []

    def start(self, name: str, world: Any, host: str, url: str, **options: Any) -> None:
        def run() -> None:
            try:
                self.results[name] = read(world, host, url, **options)
            except BaseException as error:  # reported by rows()
                self.errors.append(error)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)

    def rows(self) -> dict[str, list[dict[str, Any]]]:
        for thread in self.threads:
            thread.join()
        if self.errors:
            raise self.errors[0]
        return self.results


def yours_or(function: Callable[..., Any], default: Any, *args: Any) -> Any:
    """`function(*args)`, or `default` (said once) while the exercise is not written yet.

    The measurements after an exercise use its answer; in an unsolved lab they
    run with the default instead of stopping on NotImplementedError.
    """
    try:
        return function(*args)
    except NotImplementedError:
        print(f"({function.__name__} is not written yet: this cell measures without it)")
        return default


def rule_for(rules: list[dict[str, Any]], path: str) -> dict[str, Any]:
    """The first rule whose glob matches `path`, as the origin picks it ({} if none)."""
    return next((r for r in rules if fnmatch.fnmatchcase(path, r.get("match", ""))), {})


def _made_up(n: int = 6) -> str:
    return "".join(random.choice("abcdefghijkmnpqrstuvwxyz") for _ in range(n))


HINT_POLICY = 'hint("06-policy")'


class PolicyProbe:
    """Judge `cache_policy(update_s, outage_s)` by what readers in Vienna and Zurich get."""

    THINK_MS = 300  # the origin's time per request during the check: a reader who waits sees it

    def __init__(self, world: Any, edge: Any) -> None:
        self.world, self.edge = world, edge
        self.update_s = random.randint(2, 3)
        self.outage_s = random.choice([90, 300, 600, 1800, 3600])
        self.readers = ("user-vienna", "user-zurich")

    def rules(self, policy: Callable[[int, int], Any]) -> list[dict[str, Any]]:
        rules = policy(self.update_s, self.outage_s)
        expect(
            isinstance(rules, list) and all(isinstance(r, dict) and "match" in r for r in rules),
            "what cache_policy returns",
            'a list of origin rules, each {"match": glob, "headers": {...}}',
            repr(rules)[:200],
            HINT_POLICY,
        )
        return rules

    def apply(self, rules: list[dict[str, Any]], *failing: str) -> None:
        down = [{"match": glob, "status": 503} for glob in failing]
        version = f"v{_made_up(4)}"
        config = {"rules": down + rules, "think_ms": self.THINK_MS, "version": version}
        self.edge.origin_config(config)
        self.version = version

    def url(self, path: str) -> str:
        return self.edge.anycast_url + path

    def check(self, policy: Callable[[int, int], Any]) -> None:
        """Every promise in turn (the chapter's check cell prints one line for all)."""
        rules = self.rules(policy)
        try:
            self.apply(rules)
            self.edge.purge()
            with ThreadPoolExecutor(max_workers=4) as pool:  # independent URLs: at once
                started = [
                    pool.submit(self.personal_pages_are_never_shared),
                    pool.submit(self.live_api_is_never_stored, rules),
                    pool.submit(self.assets_are_kept, rules),
                    pool.submit(self.articles_cached, rules),
                ]
                for future in started:
                    future.result()  # the first broken promise, in this order
            self.articles(rules)
        finally:
            self.edge.origin_config({"rules": [], "think_ms": 0, "version": "v1"})
            self.edge.purge()

    def personal_pages_are_never_shared(self) -> None:
        path = f"/p/{_made_up()}"
        for host in self.readers:
            uid = f"{host[5:]}-{secrets.token_hex(4)}"
            rows = read(self.world, host, self.url(path), 2, headers={"Cookie": f"uid={uid}"})
            for row in rows:
                expect(
                    row.get("greeting") == f"Hello, {uid}",
                    f"the greeting {host} got on {path}",
                    f"Hello, {uid}",
                    row.get("greeting") or row.get("error") or row.get("status"),
                    "a personal page was served from the PoP to another visitor: "
                    f"the shared cache must never keep it ({HINT_POLICY})",
                )
                expect(
                    row.get("cache") != "HIT",
                    f"x-cache of a repeat visit to {path}",
                    "not HIT: no shared cache keeps a personal page, not even per visitor",
                    row.get("cache"),
                    "private tells shared caches (the PoP) to keep out and lets the "
                    f"browser keep it; a targeted field says the same to the PoP ({HINT_POLICY})",
                )

    def live_api_is_never_stored(self, rules: list[dict[str, Any]]) -> None:
        path = f"/api/time?r={_made_up()}"
        rows = [r for host in self.readers for r in read(self.world, host, self.url(path), 2)]
        bad = [r for r in rows if r.get("cache") in ("HIT", "STALE") or r.get("status") != 200]
        rule = rule_for(rules, "/api/time").get("match")
        expect(
            not bad,
            f"x-cache of four reads of the live {path}",
            "MISS each time: /api/time changes on every call",
            [(r.get("status"), r.get("cache")) for r in rows],
            f"your rule {rule!r} also matches /api/time: a glob that catches more "
            f"than it means caches the live API ({HINT_POLICY})",
        )

    def assets_are_kept(self, rules: list[dict[str, Any]]) -> None:
        path = f"/static/{random.randint(11, 90)}k.{random.choice(['css', 'js'])}"
        first = read(self.world, self.readers[0], self.url(path))[0]
        second = read(self.world, self.readers[1], self.url(path))[0]
        expect(
            second.get("cache") == "HIT",
            f"x-cache of a second reader of {path}",
            "HIT",
            second.get("cache") or second.get("status"),
            f"assets never change: the PoP should keep them ({HINT_POLICY})",
        )
        browser = parse_cache_control(first.get("cache_control"))
        kept = seconds(browser, "max-age") or 0
        expect(
            kept >= 30 * 86400 and "no-cache" not in browser,
            f"how long a browser may keep {path} (its Cache-Control: {first.get('cache_control')})",
            "at least 30 days without asking again (fingerprinted assets never change)",
            f"{kept:g} s",
            f"a short max-age makes every browser ask again for a file that never changes "
            f"({HINT_POLICY})",
        )

    def articles_cached(self, rules: list[dict[str, Any]]) -> None:
        """Two articles: a quiet one in the cache now (its copy only ages from here), and
        a busy one, first read as its busy spell starts (`articles`)."""
        self.pages = (f"/page/{_made_up()}", f"/page/{_made_up()}")
        read(self.world, self.readers[1], self.url(self.pages[1]))

    def articles(self, rules: list[dict[str, Any]]) -> None:
        """Busy pages: an update within update_s, no reader waiting; then an outage."""
        busy, quiet = self.pages
        update_s, every = self.update_s, 0.25
        read(self.world, self.readers[0], self.url(busy))  # a miss: fresh as the spell starts
        readers = Readers()
        count = int((update_s + 1.5) / every)
        readers.start(
            "busy", self.world, self.readers[0], self.url(busy), count=count, every_s=every
        )
        time.sleep(0.3)
        old = self.version
        self.apply(rules)  # an update: new version of every page, same policy
        updated = time.time()
        time.sleep(update_s + 0.3)
        quiet_row = read(self.world, self.readers[1], self.url(quiet))[0]
        busy_rows = readers.rows()["busy"]
        waited = [r for r in busy_rows[1:] if r["ms"] > self.THINK_MS * 0.8]
        expect(
            not waited,
            f"readers of the busy {busy} who waited for the origin",
            f"none (the origin takes {self.THINK_MS} ms, a cached page a few ms)",
            [
                f"{r['ms']:.0f} ms at +{r['t'] - updated:.1f} s, x-cache {r.get('cache')}"
                for r in waited
            ][:3],
            "once a cached page expires, the next reader waits for the origin unless the "
            f"PoP may serve it stale while it revalidates ({HINT_POLICY})",
        )
        late = [
            r
            for r in busy_rows
            if r["t"] > updated + update_s + 0.5 and r.get("version") != self.version
        ]
        expect(
            not late,
            f"versions read on {busy} more than {update_s} s after the update",
            f"the new one ({self.version}) only",
            [f"{r.get('version')} at +{r['t'] - updated:.1f} s" for r in late][:3],
            f"the promise is {update_s} s: the PoP keeps a page fresh for its max-age "
            f"({HINT_POLICY})",
        )
        expect(
            quiet_row.get("version") == self.version,
            f"the version of {quiet}, read {update_s + 0.3:.1f} s after the update by the "
            "first reader since before it",
            f"the new one ({self.version})",
            f"{quiet_row.get('version')} (old: {old}), x-cache {quiet_row.get('cache')}",
            "a page may be served stale while it revalidates for its stale-while-revalidate "
            f"window: max-age plus that window must fit in {update_s} s ({HINT_POLICY})",
        )
        self.outage(rules, busy, quiet)

    def outage(self, rules: list[dict[str, Any]], *paths: str) -> None:
        self.apply(rules, "/page/*")  # the origin fails every page from now on
        time.sleep(self.update_s + 0.3)  # past any max-age + stale-while-revalidate
        rows = [
            read(self.world, host, self.url(p))[0]
            for host, p in zip(self.readers, paths, strict=True)
        ]
        expect(
            all(r.get("status") == 200 for r in rows),
            f"what readers got while the origin answered 503 ({', '.join(paths)})",
            "200, the stale copy",
            [(r.get("status"), r.get("cache")) for r in rows],
            f"a PoP may serve a stale page when the origin fails only if the page says "
            f"how long ({HINT_POLICY})",
        )
        for path in paths:
            directives = cache_directives(_headers(rule_for(rules, path).get("headers", {})))
            lasting = seconds(directives, "stale-if-error") or 0
            expect(
                lasting >= self.outage_s,
                f"how long the PoP may serve {path} stale while the origin fails",
                f"the {self.outage_s} s outage the site must ride out",
                f"{lasting:g} s",
                f"stale-if-error counts from when the page went stale ({HINT_POLICY})",
            )


def _headers(values: Mapping[str, Any]) -> Any:
    from multidict import CIMultiDict

    return CIMultiDict({k: str(v) for k, v in values.items() if v is not None})


# -- RUM ------------------------------------------------------------------------

QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
HINT_RUM = 'hint("06-rum")'


class RumProbe:
    """Made-up beacons at several PoPs, the exact percentiles, and a learner's answer."""

    TOLERANCE = 0.025  # the sketch's 1 % each way, and the rank a quantile picks

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.pops = [f"pop-{_made_up(5)}" for _ in range(3)]
        self.min_count = int(self.rng.integers(40, 80))

    def made_up(self) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
        """Exports of three PoPs' collectors, and every region's raw samples by metric."""
        collectors = {pop: Collector(rate=1e9) for pop in self.pops}
        raw: dict[str, dict[str, list[float]]] = {}
        # vienna: mostly one fast PoP, a few readers at a far one; zurich: three PoPs;
        # a rare region under min_count, and a region only one PoP sees.
        plans = {
            "vienna": [(0, 3000, 3.6, 0.3), (1, 240, 6.6, 0.25)],
            "zurich": [(0, 900, 4.0, 0.5), (1, 500, 5.5, 0.3), (2, 120, 7.0, 0.2)],
            "lima": [(2, self.min_count - 5, 5.0, 0.4)],
            _made_up(7): [(1, 400, 5.0, 0.6)],
        }
        for region, parts in plans.items():
            for pop_index, count, mu, sigma in parts:
                count = int(count * self.rng.uniform(0.8, 1.2)) if region != "lima" else count
                loads = self.rng.lognormal(mu + self.rng.uniform(-0.2, 0.2), sigma, count)
                ttfbs = loads * self.rng.uniform(0.1, 0.4, count)
                collector = collectors[self.pops[pop_index]]
                for load, ttfb in zip(loads, ttfbs, strict=True):
                    collector.record(region, {"load_ms": float(load), "ttfb_ms": float(ttfb)})
                samples = raw.setdefault(region, {"load_ms": [], "ttfb_ms": []})
                samples["load_ms"] += list(loads)
                samples["ttfb_ms"] += list(ttfbs)
        exports = {pop: json.loads(json.dumps(c.export())) for pop, c in collectors.items()}
        arrays = {r: {m: np.array(v) for m, v in ms.items()} for r, ms in raw.items()}
        return exports, arrays

    def check(self, region_percentiles: Callable[..., Any]) -> None:
        exports, raw = self.made_up()
        for metric in ("load_ms", "ttfb_ms"):
            got = region_percentiles(exports, metric, self.min_count)
            expect(
                isinstance(got, dict),
                "what region_percentiles returns",
                '{region: {"count": n, "p50": ms, "p95": ms, "p99": ms}}',
                repr(got)[:200],
                HINT_RUM,
            )
            for region, samples in raw.items():
                values = samples[metric]
                if len(values) < self.min_count:
                    expect(
                        region not in got,
                        f"region {region!r}, {len(values)} beacons (min_count {self.min_count})",
                        "left out: too few beacons to say anything about its p99",
                        got.get(region),
                        HINT_RUM,
                    )
                    continue
                expect(
                    region in got,
                    f"the regions in your answer for {metric}",
                    f"{region!r} among them ({len(values)} beacons)",
                    sorted(got),
                    HINT_RUM,
                )
                self.compare(exports, region, metric, values, got[region])

    def compare(
        self, exports: dict[str, Any], region: str, metric: str, values: np.ndarray, got: Any
    ) -> None:
        expect(
            isinstance(got, dict) and got.get("count") == len(values),
            f"count of {metric} beacons from {region} (at every PoP together)",
            len(values),
            got.get("count") if isinstance(got, dict) else got,
            "count every PoP's beacons of the region",
        )
        per_pop = per_pop_percentiles(exports, region, metric)
        for name, q in QUANTILES.items():
            true = float(np.quantile(values, q, method="lower"))
            answer = got.get(name)
            if isinstance(answer, int | float) and abs(answer - true) <= self.TOLERANCE * true:
                continue
            raise CheckFailed(
                f"{name} of {metric} in {region} ({len(values)} beacons at {len(per_pop)} PoPs)",
                f"{true:.1f} ms (the exact {name} of the raw samples, ±{self.TOLERANCE:.1%})",
                answer,
                hint=f"{diagnose(got, per_pop, exports, region, metric)} ({HINT_RUM})",
            )


def per_pop_percentiles(exports: dict[str, Any], region: str, metric: str) -> pd.DataFrame:
    """Each PoP's own count and percentiles for one region and metric (rows: PoPs)."""
    from kit.services.rum import sketch_from_export

    rows = {}
    for pop, export in exports.items():
        data = export["regions"].get(region, {}).get(metric)
        if data and data["count"]:
            sketch = sketch_from_export(data, export["relative_accuracy"])
            rows[pop] = {"count": int(sketch.count)} | {
                n: sketch.get_quantile_value(q) for n, q in QUANTILES.items()
            }
    return pd.DataFrame.from_dict(rows, orient="index")


def merged_percentiles(exports: dict[str, Any], region: str, metric: str) -> dict[str, float]:
    """The percentiles of one region's sketches merged across PoPs ({} if it has none)."""
    from kit.services.rum import sketch_from_export

    merged = None
    for export in exports.values():
        data = export["regions"].get(region, {}).get(metric)
        if data and data["count"]:
            sketch = sketch_from_export(data, export["relative_accuracy"])
            if merged is None:
                merged = sketch
            else:
                merged.merge(sketch)
    if merged is None:
        return {}
    return {n: merged.get_quantile_value(q) for n, q in QUANTILES.items()}


def equal_weight_percentiles(exports: dict[str, Any], region: str, metric: str) -> dict[str, float]:
    """Percentiles of the PoPs' bins mixed with every PoP weighing the same (a wrong merge)."""
    from kit.services.rum import sketch_from_export

    parts = [
        (e["regions"][region][metric], e["relative_accuracy"])
        for e in exports.values()
        if e["regions"].get(region, {}).get(metric, {}).get("count")
    ]
    if not parts:
        return {}
    mixed: dict[str, float] = {}
    each = sum(data["count"] for data, _ in parts) / len(parts)  # beacons each PoP stands for
    for data, _ in parts:
        for index, count in data["bins"].items():
            mixed[index] = mixed.get(index, 0.0) + count / data["count"] * each
    sketch = sketch_from_export({"bins": mixed, "zero_count": 0}, parts[0][1])
    return {n: sketch.get_quantile_value(q) for n, q in QUANTILES.items()}


def diagnose(
    got: Mapping[str, Any],
    per_pop: pd.DataFrame,
    exports: dict[str, Any],
    region: str,
    metric: str,
) -> str:
    """Name the mistake an answer matches: the known wrong numbers closest to all three
    of its percentiles (each within 3 %), if any."""
    answer = {n: got.get(n) for n in QUANTILES}
    if not all(isinstance(v, int | float) for v in answer.values()) or per_pop.empty:
        return "each percentile is a number of milliseconds"
    counts = per_pop["count"]
    other = "ttfb_ms" if metric == "load_ms" else "load_ms"
    candidates: list[tuple[dict[str, float], str]] = [
        (
            {n: float(per_pop[n].mean()) for n in QUANTILES},
            "that is the average of the per-PoP percentiles: percentiles do not average; "
            "merge the PoPs' sketches, then ask the merged sketch",
        ),
        (
            {n: float((per_pop[n] * counts).sum() / counts.sum()) for n in QUANTILES},
            "that is the per-PoP percentiles averaged, weighted by count: still not a "
            "percentile of all the beacons; merge the sketches",
        ),
        *(
            (
                {n: float(row[n]) for n in QUANTILES},
                "that is one PoP's percentiles: the region's beacons arrive at several PoPs",
            )
            for _, row in per_pop.iterrows()
        ),
        (
            equal_weight_percentiles(exports, region, metric),
            "that is the PoPs' bins mixed with every PoP weighing the same (averaging its "
            "bins): merging adds the counts, so each beacon weighs the same",
        ),
        (
            merged_percentiles(exports, region, other),
            f"those are the percentiles of {other}: the check asked for {metric}",
        ),
    ]

    def distance(values: dict[str, float]) -> float:
        if not values:
            return float("inf")
        return max(abs(answer[n] - v) / max(abs(v), 1e-9) for n, v in values.items())

    nearest, message = min(((distance(v), m) for v, m in candidates), key=lambda c: c[0])
    if nearest <= 0.03:
        return message
    return (
        "merged sketches give every beacon the same weight: a sketch merged by averaging "
        "its bins, or values mixed across regions, does not"
    )
