"""Plots of load results (matplotlib): percentiles per source, req/s and failures over time.

Each function takes a ``LoadResult`` and returns a ``Figure`` (so a notebook shows
it and a test can inspect it); ``ax`` draws into an existing axes instead.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from kit.load.runner import LoadResult


def _axes(ax: Axes | None, size: tuple[float, float] = (7, 3.5)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    return fig, ax


def plot_percentiles(
    result: LoadResult, percentiles: tuple[str, ...] = ("p50", "p95", "p99"), ax: Axes | None = None
) -> Figure:
    """Grouped bars: response-time percentiles (ms) for each source."""
    fig, ax = _axes(ax)
    table = result.summary()
    x = np.arange(len(table))
    width = 0.8 / len(percentiles)
    for i, p in enumerate(percentiles):
        bars = ax.bar(x + i * width, table[p], width, label=p)
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set_xticks(x + width * (len(percentiles) - 1) / 2, table.index)
    ax.set_ylabel("response time (ms)")
    ax.set_title("Response time percentiles per source")
    ax.legend()
    return fig


def plot_rps(result: LoadResult, ax: Axes | None = None) -> Figure:
    """Requests per second over the run, one line per source.

    Computed from the growth of the request count between history rows (Locust's own
    ``rps`` column averages over a window and stays 0 during the first seconds).
    """
    fig, ax = _axes(ax)
    total = result.history[result.history["name"] == "Aggregated"]
    for source, rows in total.groupby("source", sort=False):
        rps = (rows["requests"].diff() / rows["t_s"].diff()).replace([np.inf, -np.inf], np.nan)
        ax.plot(rows["t_s"], rps, marker=".", label=source)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("requests/s")
    ax.set_title("Throughput")
    ax.legend()
    return fig


def plot_failures(result: LoadResult, ax: Axes | None = None) -> Figure:
    """Failures per second over the run, one line per source (flat at 0 when all went well)."""
    fig, ax = _axes(ax)
    total = result.history[result.history["name"] == "Aggregated"]
    for source, rows in total.groupby("source", sort=False):
        ax.plot(rows["t_s"], rows["failures_per_s"], marker=".", label=source)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("failures/s")
    ax.set_title(f"Failures ({int(result.summary()['failures'].sum())} in all)")
    ax.set_ylim(bottom=0)
    ax.legend()
    return fig


def plot_load(result: LoadResult) -> Figure:
    """The three plots side by side: percentiles, throughput, failures."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), layout="constrained")
    plot_percentiles(result, ax=axes[0])
    plot_rps(result, ax=axes[1])
    plot_failures(result, ax=axes[2])
    return fig
