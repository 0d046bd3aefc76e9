"""Chapter 07's measurements, tables and plots: where reads and writes go, and what it costs.

Each function runs one experiment on a world, or turns its rows into a table or a
figure, so the notebook's cells stay a line or two and the closing claims read
the same tables. These are **samplers**, not load tests: a few dozen requests per
city, one at a time over a kept-alive connection (as one browser tab makes
them), because what the chapter measures is latency, which shows at any load.

- `sample_ops`: reads and writes of the notes from each city, once through the
  nearest PoP (reads at its replica, writes forwarded to the primary) and once
  through the PoP in Ashburn next to the primary (everything central);
- `mix` and `crossover`: the mean and p95 of a mix of r reads per write, computed
  from those samples (each operation weighted by its share of the mix), for r
  from 1 to 100, and where the replicas start to win, per city;
- `colocation`: N sequential queries from a handler at the Tokyo PoP, against
  the Tokyo replica, the Frankfurt replica, and with the handler placed next to
  the Frankfurt replica (the Tokyo PoP sends the request on);
- `history_table`, `history_plot`: the workload's violations and read latency,
  with and without bookmarks;
- `data_claims`: the closing table.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from kit.nb.claims import Claim
from kit.nb.history import History

CITIES = ["user-tokyo", "user-singapore", "user-berlin", "user-london", "user-newyork"]
CITIES += ["user-saopaulo"]
RATIOS = [1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100]
SETUPS = ("replicas + central writes", "everything central")

# Reads and writes of one key, alternating, over one kept-alive connection per URL.
_SAMPLER = r"""
import http.client, json, sys, time, urllib.parse
targets, key, count = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for name, url in targets.items():
    parts = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=10)
    for i in range(2 * count + 1):
        kind = "write" if i % 2 else "read"
        started = time.time()
        c.request("PUT" if kind == "write" else "GET", "/notes/" + key,
                  body=f"{name}-{i}".encode() if kind == "write" else None)
        r = c.getresponse(); r.read()
        if i:  # the first read opens the connection: left out
            print(json.dumps({"setup": name, "kind": kind, "status": r.status,
                              "ms": 1000 * (time.time() - started)}), flush=True)
"""


def sample_ops(
    world: Any, edge: Any, cities: Iterable[str] = CITIES, count: int = 12
) -> pd.DataFrame:
    """`count` reads and `count` writes per city and setup: one row per operation."""
    targets = {SETUPS[0]: edge.anycast_url, SETUPS[1]: edge.pop_url("pop-virginia")}

    def job(city: str) -> Any:
        def run() -> list[dict[str, Any]]:
            argv = [sys.executable, "-c", _SAMPLER, json.dumps(targets), f"mix-{city}", str(count)]
            out = world.run(city, shlex.join(argv), timeout=120)
            return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

        return run

    cities = list(cities)
    with ThreadPoolExecutor(max_workers=len(cities)) as pool:  # every city at once
        found = dict(zip(cities, pool.map(lambda city: job(city)(), cities), strict=True))
    rows = [{"city": city[5:], **row} for city, lines in found.items() for row in lines]
    return pd.DataFrame(rows)


def mix(reads_ms: np.ndarray, writes_ms: np.ndarray, ratio: float) -> tuple[float, float]:
    """Mean and p95 of a mix of `ratio` reads per write, from samples of each.

    Each read sample stands for ratio/(ratio+1) of the operations divided by the
    number of read samples, each write sample for the rest: the weighted
    distribution of the mix, whose p95 is the smallest latency with at least 95 %
    of the weight at or below it.
    """
    reads, writes = np.asarray(reads_ms, float), np.asarray(writes_ms, float)
    share = ratio / (ratio + 1)
    values = np.concatenate([reads, writes])
    weights = np.concatenate(
        [np.full(len(reads), share / len(reads)), np.full(len(writes), (1 - share) / len(writes))]
    )
    mean = float(np.sum(values * weights))
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    p95 = float(values[order][np.searchsorted(cumulative, 0.95 - 1e-9)])
    return mean, p95


def crossover_table(samples: pd.DataFrame, ratios: Iterable[int] = RATIOS) -> pd.DataFrame:
    """Mean and p95 (ms) per city, setup and read:write ratio."""
    rows = []
    ok = samples[samples["status"] == 200]
    for (city, setup), ops in ok.groupby(["city", "setup"], sort=False):
        reads = ops.loc[ops["kind"] == "read", "ms"].to_numpy()
        writes = ops.loc[ops["kind"] == "write", "ms"].to_numpy()
        for ratio in ratios:
            mean, p95 = mix(reads, writes, ratio)
            rows.append({"city": city, "setup": setup, "ratio": ratio, "mean": mean, "p95": p95})
    return pd.DataFrame(rows)


WIN = 0.95  # the replicas win where they are at least 5 % faster: a tie is noise, not a win


def crossover(table: pd.DataFrame) -> pd.DataFrame:
    """Per city and metric: the smallest ratio from which the replicas are at least 5 %
    faster than everything central, at every ratio after it too."""
    rows = []
    for city, ops in table.groupby("city", sort=False):
        row: dict[str, Any] = {"city": city}
        for metric in ("mean", "p95"):
            wide = ops.pivot(index="ratio", columns="setup", values=metric).sort_index()
            edge_wins = wide[SETUPS[0]] <= WIN * wide[SETUPS[1]]
            winning = [r for r in wide.index if edge_wins.loc[r:].all()]  # and stays ahead
            row[f"{metric}: edge wins from"] = _ratio(winning[0], wide.index) if winning else None
            top = wide.index.max()
            row[f"{metric} at {top}:1 (edge / central, ms)"] = (
                f"{wide.loc[top, SETUPS[0]]:.0f} / {wide.loc[top, SETUPS[1]]:.0f}"
            )
        rows.append(row)
    return pd.DataFrame(rows).set_index("city").fillna(f"never (to {max(RATIOS)}:1)")


def _ratio(r: int, grid: pd.Index) -> str:
    return f"{r}:1" if r != grid.min() else f"{r}:1 or less"


def crossover_plot(table: pd.DataFrame, textbook: float = 10) -> Figure:
    """Edge latency over central latency against the read:write ratio, per city."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, metric in zip(axes, ("mean", "p95"), strict=True):
        for city, ops in table.groupby("city", sort=False):
            wide = ops.pivot(index="ratio", columns="setup", values=metric).sort_index()
            ax.plot(wide.index, wide[SETUPS[0]] / wide[SETUPS[1]], marker="o", ms=3, label=city)
        ax.axhline(1, color="grey", lw=1)
        ax.axvline(textbook, color="grey", ls=":", lw=1)
        ax.text(textbook, ax.get_ylim()[1] if ax.get_ylim()[1] < 3 else 2.5, " textbook 10:1",
                va="top", fontsize=8, color="grey")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("reads per write")
        ax.set_title(f"{metric} latency")
    axes[0].set_ylabel("replicas + central writes\n÷ everything central")
    axes[1].legend(fontsize=8, loc="upper right")
    fig.suptitle("Below 1, the edge's replicas win (a sampler, not a load test)")
    fig.tight_layout()
    return fig


# -- colocation ------------------------------------------------------------------------------

COLOCATED = """
async def fetch(request, env, ctx):
    n = int(request.query.get("n", "1"))
    elsewhere = env.config.get("place_at", {}).get(env.pop)
    if elsewhere:  # run next to the data: the whole request goes to that PoP
        return await env.fetch(f"{elsewhere}{request.path}?n={n}")
    for i in range(n):  # one query after another, as code that needs each answer does
        await env.db.query("SELECT value FROM notes WHERE key = ?", [f"colo-{i}"])
    return Response.json({"n": n, "pop": env.pop, "database": env.db.replica})
"""

_TIMER = r"""
import http.client, json, sys, time, urllib.parse
url, counts, repeat = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
parts = urllib.parse.urlsplit(url)
c = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
c.request("GET", "/colo?n=1"); c.getresponse().read()  # the connection, opened
for n in counts:
    for _ in range(repeat):
        started = time.time()
        c.request("GET", f"/colo?n={n}"); r = c.getresponse(); body = r.read()
        print(json.dumps({"n": n, "status": r.status, "ms": 1000 * (time.time() - started),
                          "body": body.decode()[:200]}), flush=True)
"""


def time_queries(
    world: Any, user: str, url: str, counts: Iterable[int], repeat: int = 2
) -> list[dict[str, Any]]:
    """From `user`, GET `url`/colo?n=N `repeat` times for each N: one row per request."""
    argv = [sys.executable, "-c", _TIMER, url, json.dumps(list(counts)), str(repeat)]
    out = world.run(user, shlex.join(argv), timeout=180)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def colocation_plot(rows: pd.DataFrame) -> Figure:
    """Median time per request against N, one line per placement."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    medians = rows.groupby(["placement", "n"], sort=False)["ms"].median().unstack(0)
    for placement in medians.columns:
        ax.plot(medians.index, medians[placement], marker="o", label=placement)
    ax.set_xlabel("sequential queries per request (N)")
    ax.set_ylabel("ms, user in Tokyo (median)")
    ax.set_xticks(list(medians.index))
    ax.legend(fontsize=8)
    ax.set_title("A Tokyo request that needs N queries")
    fig.tight_layout()
    return fig


def colocation_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Median ms per request, placement by N."""
    return rows.groupby(["placement", "n"], sort=False)["ms"].median().unstack(1).round(0)


# -- histories ------------------------------------------------------------------------------


def history_table(runs: Mapping[str, tuple[History, pd.DataFrame]]) -> pd.DataFrame:
    """Per run: operations, errors, violations of each guarantee, reads sent on per city."""
    from kit.nb.data_checks import violations_summary

    return pd.DataFrame(
        {name: violations_summary(history, table) for name, (history, table) in runs.items()}
    ).T


def read_latency(runs: Mapping[str, tuple[History, pd.DataFrame]]) -> pd.DataFrame:
    """p50 and p95 of the answered reads (ms), per run and city of the user."""
    rows = []
    for name, (_, table) in runs.items():
        reads = table[(table["kind"] == "read") & table["end"].notna()]
        for session, ops in reads.groupby(reads["session"].str[:3]):
            rows.append(
                {
                    "run": name,
                    "city": session,
                    "p50": ops["ms"].median(),
                    "p95": ops["ms"].quantile(0.95),
                }
            )
    return pd.DataFrame(rows).set_index(["run", "city"]).round(0)


def violations_seen(run: tuple[History, pd.DataFrame]) -> pd.DataFrame:
    """The run's violations, with `at` in seconds since its start (not the clock's epoch)."""
    history, table = run
    broken = history.violations()
    broken["at"] = (broken["at"] - table["start"].min()).round(2)
    return broken.rename(columns={"at": "at (s)"})


def history_plot(runs: Mapping[str, tuple[History, pd.DataFrame]]) -> Figure:
    """Left: violations over time (reads per second that broke a guarantee); right: read p95."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    for name, (history, table) in runs.items():
        broken = history.violations()
        start = table["start"].min()
        times = (broken["at"] - start) if len(broken) else pd.Series(dtype=float)
        bins = np.arange(0, table["t"].max() + 1.0, 0.5)
        counts, _ = np.histogram(times, bins=bins)
        left.step(bins[:-1], counts * 2, where="post", label=f"{name}: {len(broken)} in all")
    left.set_xlabel("s since the start (replicas paused and lag varied underneath)")
    left.set_ylabel("violations per second")
    left.legend(fontsize=8)
    latency = read_latency(runs)["p95"].unstack(0)
    latency.plot.bar(ax=right, rot=0)
    right.set_ylabel("read p95 (ms)")
    right.set_xlabel("the session's city (first three letters)")
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


# -- the closing table ------------------------------------------------------------------------


def data_claims(
    crossovers: pd.DataFrame,
    colocated: pd.DataFrame,
    histories: pd.DataFrame,
    without: str,
    with_tokens: str,
) -> list[Claim]:
    """The chapter's claims, next to this run's numbers."""
    means = crossovers["mean: edge wins from"].to_dict()
    p95s = crossovers["p95: edge wins from"].to_dict()
    per_city = "; ".join(f"{c}: mean {means[c]}, p95 {p95s[c]}" for c in crossovers.index)
    n = max(colocated.columns)
    at_n = colocated[n].to_dict()
    placements = ", ".join(f"{name} {ms:.0f} ms" for name, ms in at_n.items())
    before, after = histories.loc[without], histories.loc[with_tokens]
    return [
        Claim(
            "Read locally, write centrally: the edge wins once reads outnumber writes",
            "about 10:1",
            per_city,
            "a write from the edge crosses to the primary anyway, so it costs about as much "
            "as a central one; whether the edge pays depends on how far the city is from the "
            "primary and from its replica (none near São Paulo), and on the metric: the p95 "
            "of a mix is a write until writes are under 5 % of it, so there the two stay "
            "close until then",
        ),
        Claim(
            "Colocate compute with its data",
            "a Tokyo function querying Frankfurt throws the edge away",
            f"{n} queries from Tokyo: {placements}",
            "each query pays the round trip between the handler and its database; placing "
            "the handler next to the data pays one long trip per request instead of one "
            "per query",
        ),
        Claim(
            "Replicas break read-your-writes unless reads carry a token",
            "(no number given)",
            f"without bookmarks {before['read your writes']} read-your-writes and "
            f"{before['monotonic reads']} monotonic-read violations in "
            f"{before['operations']} operations; with yours {after['read your writes']} and "
            f"{after['monotonic reads']} in {after['operations']}",
            "lag is real: a replica applies a write about half a shipping interval plus a "
            "round trip after it commits, and much later while it is paused",
        ),
    ]
