"""A load test that loads: step the number of users and watch where it bends.

    steps = step_load(world, ["user-london", "user-tokyo"], "http://10.255.0.1",
                      users=(4, 16, 64, 128), paths=["/page/home"],
                      counter=lambda: edge.metrics("origin")["requests"])
    plot_steps({"through the PoPs": steps, "straight to the origin": direct})

A short run at one number of users samples latency; it says nothing about
capacity. Capacity shows when the load grows: requests per second rise with the
users until something saturates, then flatten, while p99 bends upwards (queues
form before the median moves). `step_load` runs the same Locust load at each
number of users in turn, one after another, and returns one row per step:

    users  rps  p50  p95  p99  failures  failure_pct  [counted_per_s]

`counter` is any function returning a running total (for example the origin's
request count from its metrics): its growth during each step, divided by the
step's length, becomes `counted_per_s`, so the same table shows how much of the
load reached the origin.

Users are split evenly over the sources; each step gets `run_time_s` seconds.
A chapter whose load is more than GETs (tokens, bodies, cookies) passes its own
`locustfile` and its configuration as `env`, as `run_loads` takes them, and a
chapter that needs more from each step than these columns (leaks counted apart
from errors, a cache's hit ratio during the step) passes `observe`.
`plot_steps` draws several such tables side by side (one line per table) so a
chapter can show the pattern with and without the edge on the same axes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from kit.load.runner import LoadResult, run_loads


def step_load(
    world: Any,
    sources: Iterable[str],
    target: str,
    *,
    users: Iterable[int] = (4, 16, 64),
    run_time_s: int = 5,
    paths: Iterable[str] = ("/",),
    wait_s: float = 0.1,
    counter: Callable[[], float] | None = None,
    locustfile: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    observe: Callable[[LoadResult], Mapping[str, Any]] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Run the load at each number of users in turn; one row per step (module docstring).

    `locustfile` and `env` replace the generic GET load, as in `run_loads`.
    `observe` is called with each step's `LoadResult` as soon as the step ends; the
    columns it returns are added to that step's row (or replace its own).
    """
    sources = list(sources)
    rows = []
    for total in users:
        per_source = max(1, total // len(sources))
        before, started = (counter() if counter else 0.0), time.monotonic()
        result = run_loads(
            world,
            sources,
            target,
            paths=paths,
            users=per_source,
            run_time_s=run_time_s,
            wait_s=wait_s,
            locustfile=locustfile,
            env=env,
            progress=progress,
        )
        elapsed = time.monotonic() - started
        everything = result.stats[result.stats["name"] == "Aggregated"]
        requests, failures = everything["requests"].sum(), everything["failures"].sum()
        row = {
            "users": per_source * len(sources),
            # requests over the step's length (Locust's own rps column lags in short runs)
            "rps": requests / run_time_s,
            # the worst source's percentile: a pattern is as good as its slowest city
            "p50": everything["p50"].max(),
            "p95": everything["p95"].max(),
            "p99": everything["p99"].max(),
            "failures": int(failures),
            "failure_pct": 100 * failures / max(1, requests),
        }
        if counter:
            row["counted_per_s"] = (counter() - before) / elapsed
        if observe:
            row.update(observe(result))
        rows.append(row)
    return pd.DataFrame(rows).set_index("users")


def plot_steps(tables: Mapping[str, pd.DataFrame], counted: str = "origin requests/s") -> Figure:
    """Throughput, p50/p99 and (if counted) the counter's rate against users, per table."""
    with_counter = any("counted_per_s" in t for t in tables.values())
    panels = 3 if with_counter else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.6), layout="constrained")
    for (label, table), color in zip(tables.items(), plt.rcParams["axes.prop_cycle"], strict=False):
        c = color["color"]
        axes[0].plot(table.index, table["rps"], marker="o", color=c, label=label)
        axes[1].plot(table.index, table["p50"], marker="o", color=c, label=f"{label}: p50")
        axes[1].plot(table.index, table["p99"], marker="^", ls="--", color=c, label=f"{label}: p99")
        if with_counter and "counted_per_s" in table:
            axes[2].plot(table.index, table["counted_per_s"], marker="o", color=c, label=label)
    axes[0].set(title="Throughput", xlabel="users", ylabel="requests/s")
    axes[1].set(title="Response time", xlabel="users", ylabel="ms")
    axes[1].set_yscale("log")
    if with_counter:
        axes[2].set(title=counted.capitalize(), xlabel="users", ylabel=counted)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig
