"""Real page loads that report themselves: chapter 06's RUM traffic on a world.

`page_loads(world, edge, users, ...)` runs a small Python loop on every user
host at once. Each load is a GET of a page on a new connection, timed as a
browser's Navigation Timing would time it (time to first byte, time until the
whole page arrived), followed by a beacon with those two numbers, POSTed to
the PoP the page came from (`kit/services/rum.py` keeps it there, in the
sketches of the sender's region). Most loads go to the anycast address, so the
nearest PoP; a share of them goes to another PoP (`elsewhere`), as it does for
users behind a far-away DNS resolver or a roaming mobile network. Each PoP's
collector therefore holds a part of several regions.

It returns every raw sample too (region, PoP, ttfb_ms, load_ms): the RUM
pipeline never sees them, but a chapter can compare its percentiles with the
exact ones.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from kit.nb.cache_checks import QUANTILES, per_pop_percentiles

_LOADS = r"""
import http.client, json, random, sys, time, urllib.parse
near, far, path = sys.argv[1], sys.argv[2], sys.argv[5]
count, share = int(sys.argv[3]), float(sys.argv[4])
for i in range(count):
    base = far if random.random() < share else near
    host = urllib.parse.urlsplit(base)
    row = {"via": base}
    try:
        started = time.perf_counter()
        c = http.client.HTTPConnection(host.hostname, host.port or 80, timeout=8)
        c.request("GET", path, headers={"Accept-Encoding": "br, gzip"})
        r = c.getresponse()
        ttfb = time.perf_counter() - started
        r.read()
        total = time.perf_counter() - started
        c.close()
        row.update(status=r.status, pop=r.getheader("x-edge-pop"),
                   ttfb_ms=1000 * ttfb, load_ms=1000 * total)
        b = http.client.HTTPConnection(host.hostname, host.port or 80, timeout=8)
        beacon = json.dumps({"ttfb_ms": row["ttfb_ms"], "load_ms": row["load_ms"]})
        b.request("POST", "/cdn-cgi/rum", body=beacon, headers={"Content-Type": "application/json"})
        row["beacon"] = b.getresponse().status
        b.close()
    except Exception as error:
        row["error"] = str(error)
    print(json.dumps(row), flush=True)
"""


def page_loads(
    world: Any,
    edge: Any,
    users: Iterable[str],
    elsewhere: Mapping[str, str],
    loads: int = 40,
    share: float = 0.2,
    path: str = "/page/home",
) -> pd.DataFrame:
    """`loads` page loads from each user host, `share` of them via `elsewhere[user]`'s PoP.

    One row per load: user, region, pop, ttfb_ms, load_ms, beacon (the collector's status).
    """
    regions = {row["node"]: row["region"] for row in world.spec.geo_table()}

    def run(user: str) -> list[dict[str, Any]]:
        far = edge.pop_url(elsewhere[user])
        args = [sys.executable, "-c", _LOADS, edge.anycast_url, far, str(loads), str(share), path]
        out = world.run(user, shlex.join(args), timeout=loads * 20 + 10)
        rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        return [{"user": user, "region": regions[user], **row} for row in rows]

    users = list(users)
    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        rows = [row for rows in pool.map(run, users) for row in rows]
    return pd.DataFrame(rows)


def collected(edge: Any) -> dict[str, Any]:
    """Every PoP's RUM export (what `region_percentiles` takes), by PoP name."""
    return {pop: edge.rum(pop) for pop in edge.pops}


def percentiles_compared(
    exports: Mapping[str, Any],
    samples: pd.DataFrame,
    merged: Mapping[str, Mapping[str, float]],
    metric: str = "load_ms",
    quantile: str = "p95",
) -> pd.DataFrame:
    """Per region: the exact percentile of the raw loads, the merged sketches' and the
    average of the per-PoP ones, with how far each is from the exact value."""
    rows = {}
    for region, group in samples.dropna(subset=[metric]).groupby("region"):
        if region not in merged:
            continue
        exact = float(np.quantile(group[metric], QUANTILES[quantile], method="lower"))
        per_pop = per_pop_percentiles(dict(exports), region, metric)
        averaged = float(per_pop[quantile].mean())
        rows[region] = {
            "PoPs": len(per_pop),
            "beacons": int(merged[region]["count"]),
            f"exact {quantile}": exact,
            f"merged sketches {quantile}": merged[region][quantile],
            f"average of per-PoP {quantile}s": averaged,
            "merged off by": f"{merged[region][quantile] / exact - 1:+.1%}",
            "average off by": f"{averaged / exact - 1:+.1%}",
        }
    columns = ["PoPs", "beacons", f"exact {quantile}", f"merged sketches {quantile}"]
    columns += [f"average of per-PoP {quantile}s", "merged off by", "average off by"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns).round(1)
