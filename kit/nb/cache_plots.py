"""Chapter 06's measurements, tables and plots: caching, compression and collapsing.

Each function runs one experiment on a world and returns a pandas table, so the
notebook's cells stay a line or two and the closing claims read the same tables:

- `outage_run`: readers in several cities read pages every quarter second while
  the origin answers 503 for a stretch (an application that fails behind a live
  load balancer); availability and latency before, during and after, for a
  policy (`outage_plot` draws them side by side);
- `encoding_costs`: bytes and CPU time of brotli, zstd and gzip for the origin's
  own kinds of body, in this process (the PoP compresses with the same
  `kit.services.encoding` at the same levels);
- `transfer_times`: one asset fetched with each Accept-Encoding from the factory
  (behind its 2 Mbit/s uplink) and from a city on a fast link;
- `burst`: many simultaneous misses for one key against as many for distinct keys,
  counted at the origin (request collapsing);
- `handshakes`: what a new connection to the origin costs a PoP, against one
  reused from its pool;
- `streamed_vs_buffered`: time to first byte and total time of a miss, for a body
  the PoP buffers and one it streams.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from kit.nb.cache_checks import Readers
from kit.nb.claims import Claim
from kit.nb.measure import http_timing, http_timing_reused
from kit.services.encoding import compress
from kit.services.origin import Origin, asset_bytes


def outage_run(
    world: Any,
    edge: Any,
    rules: list[dict[str, Any]],
    readers: Iterable[str],
    *,
    seconds: float = 6.0,
    outage: tuple[float, float] = (2.0, 5.0),
    think_ms: float = 150.0,
) -> pd.DataFrame:
    """Readers read one page each every 0.25 s; the origin fails pages during `outage`.

    One row per read: reader, t (s since the start), phase, status, ms, cache.
    """
    edge.origin_config({"rules": rules, "think_ms": think_ms, "version": "v1"})
    edge.purge()
    pages = {host: f"/page/outage-{host}" for host in readers}
    runs = Readers()
    count = int(seconds / 0.25)
    start = time.time()
    for host, path in pages.items():
        runs.start(host, world, host, edge.anycast_url + path, count=count, every_s=0.25)
    try:
        time.sleep(max(0.0, start + outage[0] - time.time()))
        edge.origin_config({"rules": [{"match": "/page/*", "status": 503}, *rules]})
        time.sleep(max(0.0, start + outage[1] - time.time()))
        edge.origin_config({"rules": rules})
        results = runs.rows()
    finally:
        edge.origin_config({"rules": [], "think_ms": 0})
    rows = []
    for host, reads in results.items():
        for r in reads:
            t = r["t"] - start
            phase = "before" if t < outage[0] else "during" if t < outage[1] else "after"
            rows.append(
                {"reader": host, "t": t, "phase": phase, "status": r.get("status", 0)}
                | {"ms": r["ms"], "cache": r.get("cache")}
            )
    return pd.DataFrame(rows)


def outage_summary(runs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per policy and phase: availability (% of 200s), p50 and p99 ms, and hit ratio.

    Each reader's first read is left out: it is a miss for every policy (the cache
    starts empty), and would put the same cold start into every p99.
    """
    rows = []
    for name, table in runs.items():
        table = table[table.t > table.groupby("reader")["t"].transform("min")]
        for phase in ("before", "during", "after"):
            part = table[table.phase == phase]
            if part.empty:
                continue
            rows.append(
                {
                    "policy": name,
                    "phase": phase,
                    "reads": len(part),
                    "available %": 100 * (part.status == 200).mean(),
                    "p50 ms": part.ms.quantile(0.5),
                    "p99 ms": part.ms.quantile(0.99),
                    "served by the PoP %": 100 * part.cache.isin(["HIT", "STALE"]).mean(),
                }
            )
    return pd.DataFrame(rows).set_index(["policy", "phase"]).round(1)


def outage_plot(runs: Mapping[str, pd.DataFrame], outage: tuple[float, float]) -> Figure:
    """Latency of every read over time, failures marked, one panel per policy."""
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 3.2), sharey=True)
    axes = [axes] if len(runs) == 1 else list(axes)
    for ax, (name, table) in zip(axes, runs.items(), strict=True):
        ok, failed = table[table.status == 200], table[table.status != 200]
        ax.axvspan(*outage, color="tab:red", alpha=0.12, label="origin answers 503")
        ax.scatter(ok.t, ok.ms, s=10, label="200")
        ax.scatter(failed.t, failed.ms, s=18, marker="x", color="tab:red", label="error")
        ax.set(title=name, xlabel="seconds", yscale="log")
    axes[0].set_ylabel("read time, ms")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def _bodies() -> dict[str, bytes]:
    """The origin's own kinds of body: a page, a script, a stylesheet, JSON, random bytes."""
    page = Origin.page(None, "home", "v1").encode()  # type: ignore[arg-type]
    items = [{"id": i, "name": f"item {i}", "price": i * 7 % 100} for i in range(400)]
    return {
        "page (html)": page,
        "200k.js": asset_bytes(200 << 10, "js"),
        "50k.css": asset_bytes(50 << 10, "css"),
        "api (json)": json.dumps(items).encode(),
        "100k.bin": asset_bytes(100 << 10, "bin"),
    }


def encoding_costs(repeat: int = 5) -> pd.DataFrame:
    """Bytes and CPU ms per encoding, for each kind of body (CPU: best of `repeat`)."""
    rows = []
    for name, body in _bodies().items():
        for encoding in ("identity", "gzip", "zstd", "br"):
            cpu = []
            for _ in range(repeat if encoding != "identity" else 1):  # identity: no work
                started = time.process_time()
                out = body if encoding == "identity" else compress(body, encoding)
                cpu.append(time.process_time() - started)
            rows.append(
                {
                    "body": name,
                    "encoding": encoding,
                    "bytes": len(out),
                    "% of identity": 100 * len(out) / len(body),
                    "CPU ms": 1000 * min(cpu),
                    "MB/s": len(body) / max(min(cpu), 1e-6) / 1e6
                    if encoding != "identity"
                    else None,
                }
            )
    return pd.DataFrame(rows).set_index(["body", "encoding"]).round(2)


def transfer_times(
    world: Any, edge: Any, hosts: Iterable[str], path: str = "/static/200k.js", count: int = 3
) -> pd.DataFrame:
    """Median total time of GET `path` per host and Accept-Encoding (after a warm-up read)."""
    url = edge.anycast_url + path
    rows = []
    for host in hosts:
        for encoding in ("identity", "gzip", "zstd", "br"):
            headers = {"Accept-Encoding": encoding}
            http_timing(world, host, url, headers)  # in the cache, compressed copy made
            timings = [http_timing(world, host, url, headers) for _ in range(count)]
            rows.append(
                {
                    "host": host,
                    "encoding": encoding,
                    "bytes": timings[0].bytes,
                    "total ms": sorted(t.total_ms for t in timings)[len(timings) // 2],
                }
            )
    table = pd.DataFrame(rows)
    identity = table[table.encoding == "identity"].set_index("host")["total ms"]
    table["saved ms"] = table.apply(lambda r: identity[r.host] - r["total ms"], axis=1)
    return table.set_index(["host", "encoding"]).round(1)


_BURST = r"""
import http.client, json, sys, threading, urllib.parse
base, paths = urllib.parse.urlsplit(sys.argv[1]), json.loads(sys.argv[2])
barrier, out = threading.Barrier(len(paths)), []
def get(path):
    c = http.client.HTTPConnection(base.hostname, base.port or 80, timeout=10)
    c.connect()
    barrier.wait()
    c.request("GET", path)
    r = c.getresponse(); r.read()
    out.append([r.status, r.getheader("x-cache")])
threads = [threading.Thread(target=get, args=(p,)) for p in paths]
[t.start() for t in threads]; [t.join() for t in threads]
print(json.dumps(out))
"""


def burst(
    world: Any, edge: Any, host: str, paths: list[str], think_ms: float = 300
) -> dict[str, Any]:
    """`len(paths)` requests at the same instant from `host`; what reached the origin."""
    edge.origin_config({"think_ms": think_ms})
    before = edge.metrics("origin")["requests"]
    args = [sys.executable, "-c", _BURST, edge.anycast_url, json.dumps(paths)]
    answers = json.loads(world.run(host, shlex.join(args), timeout=30).strip().splitlines()[-1])
    edge.origin_config({"think_ms": 0})
    statuses = [status for status, _ in answers]
    return {
        "requests": len(paths),
        "distinct keys": len(set(paths)),
        "at the origin": edge.metrics("origin")["requests"] - before,
        "200s": statuses.count(200),
        "x-cache": pd.Series([cache for _, cache in answers]).value_counts().to_dict(),
    }


def handshakes(
    world: Any, edge: Any, pops: Iterable[str], path: str = "/api/items/1"
) -> pd.DataFrame:
    """From each PoP host to the origin: a request on a new connection, then one reused."""
    rows = []
    for pop in pops:
        fresh, reused = http_timing_reused(world, pop, edge.origin_url + path)
        rows.append(
            {
                "PoP": pop,
                "connect ms": fresh.connect_ms,
                "new connection, total ms": fresh.total_ms,
                "reused, total ms": reused.total_ms,
                "saved per miss, ms": fresh.total_ms - reused.total_ms,
            }
        )
    return pd.DataFrame(rows).set_index("PoP").round(1)


def streamed_vs_buffered(world: Any, edge: Any, host: str) -> pd.DataFrame:
    """A miss of a body the PoP reads whole first (≤ 256 KB), and one it streams."""
    rows = []
    for label, size in (("buffered by the PoP", "240k"), ("streamed through", "270k")):
        path = f"/static/{size}.txt?r={time.time_ns()}"
        t = http_timing(world, host, edge.anycast_url + path, {"Accept-Encoding": "identity"})
        rows.append(
            {"body": f"{label} ({size})", "TTFB ms": t.ttfb_ms, "total ms": t.total_ms}
            | {"last byte after the first, ms": t.total_ms - t.ttfb_ms}
        )
    return pd.DataFrame(rows).set_index("body").round(1)


def cache_claims(
    outage: pd.DataFrame,
    costs: pd.DataFrame,
    transfers: pd.DataFrame,
    collapsing: Mapping[str, Mapping[str, Any]],
    rum: pd.DataFrame,
    without: str,
    with_policy: str,
) -> list[Claim]:
    """The chapter's claims next to this run's numbers (for `what_you_measured`)."""
    during = outage.xs("during", level="phase")
    before = outage.xs("before", level="phase")
    br = costs.loc[("200k.js", "br"), "% of identity"]
    factory = transfers.xs("br", level="encoding")["saved ms"]
    one, many = collapsing["one key"], collapsing["distinct keys"]
    if rum.empty:
        percentiles = "(not measured: region_percentiles is not written yet)"
    else:
        worst = rum.iloc[rum["average off by"].str.rstrip("%").astype(float).abs().argmax()]
        percentiles = (
            f"{worst.name}: p95 {worst.iloc[2]:.0f} ms; the average of per-PoP p95s "
            f"says {worst.iloc[4]:.0f} ms ({worst.iloc[6]})"
        )
    return [
        Claim(
            "Cache-Control decides what the edge may keep",
            "(no number)",
            f"{before.loc[with_policy, 'served by the PoP %']:.0f} % of reads served by the "
            f"PoP with your policy, {before.loc[without, 'served by the PoP %']:.0f} % "
            "with max-age only",
            "the same pages and readers; the difference is what the headers allow",
        ),
        Claim(
            "stale-while-revalidate hides origin latency",
            "(no number)",
            f"p99 {before.loc[with_policy, 'p99 ms']:.0f} ms with it, "
            f"{before.loc[without, 'p99 ms']:.0f} ms without",
            "without it, the first reader after each expiry waits for the origin",
        ),
        Claim(
            "stale-if-error hides origin failure",
            "(no number)",
            f"{during.loc[with_policy, 'available %']:.0f} % available during the outage "
            f"with it, {during.loc[without, 'available %']:.0f} % without",
            "the outage here is the origin answering 503 for 3 s",
        ),
        Claim(
            "compression cuts bytes",
            "(no number)",
            f"brotli: a script to {br:.0f} % of its size; "
            + ", ".join(f"{ms:.0f} ms saved from {host}" for host, ms in factory.items()),
            "the origin's text is made of a dozen words, so it compresses better than "
            "real text; random bytes do not compress at all",
        ),
        Claim(
            "request collapsing: one origin request for many misses",
            "(no number)",
            f"{one['requests']} misses for one key: {one['at the origin']} at the origin; "
            f"for {many['distinct keys']} keys: {many['at the origin']}",
            "waiters are served what the first request stored",
        ),
        Claim(
            "percentiles, not averages, describe users",
            "(no number)",
            percentiles,
            "a region's beacons split unevenly across PoPs of different latency",
        ),
    ]
