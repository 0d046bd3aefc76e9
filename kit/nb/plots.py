"""Plots for the chapters (matplotlib): the world map, RTT heatmaps, TTFB bars and CDFs.

Each function returns a ``Figure`` (a notebook shows it; a test inspects it) and
takes plain data: a ``WorldSpec`` (or a running ``World``) for the map, and the
tables of ``kit.nb.measure`` for the rest.

The map is an equirectangular frame (x = longitude, y = latitude) with a light
graticule: no tiles and nothing downloaded, which is enough to see that Tokyo
is far from Virginia and near its PoP. Backbone links are drawn between
regions, nodes of a region are fanned out around its city so labels stay apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

STYLE = {  # kind -> (marker, colour)
    "pop": ("^", "tab:orange"),
    "origin": ("s", "tab:red"),
    "db": ("D", "tab:purple"),
    "client": ("o", "tab:blue"),
    "iot": ("P", "tab:green"),
}
FAN_DEG = 2.5  # how far a region's nodes sit from its city on the map


def _spec(world_or_spec: Any) -> Any:
    return getattr(world_or_spec, "spec", world_or_spec)


def node_positions(spec: Any) -> dict[str, tuple[float, float]]:
    """(lon, lat) of every node: its region's city, fanned out on a small circle."""
    by_region: dict[str, list[str]] = {}
    for node in spec.nodes.values():
        by_region.setdefault(node.region, []).append(node.name)
    positions = {}
    for region, names in by_region.items():
        r = spec.regions[region]
        for i, name in enumerate(names):
            angle = 2 * math.pi * i / len(names) + math.pi / 2
            spread = FAN_DEG if len(names) > 1 else 0.0
            positions[name] = (r.lon + spread * math.cos(angle), r.lat + spread * math.sin(angle))
    return positions


def world_map(
    world_or_spec: Any,
    kinds: Iterable[str] = ("pop", "origin", "db", "client", "iot"),
    highlight: Iterable[str] = (),
    ax: Axes | None = None,
    labels: str = "nodes",
) -> Figure:
    """Regions, backbone links and nodes (by kind) on a longitude/latitude frame.

    ``labels="nodes"`` lists each region's node names beside its city (for a close
    view); ``labels="regions"`` names only the cities, which stays readable at world
    scale where New York and Ashburn, or London, Frankfurt and Berlin, sit close.
    """
    spec = _spec(world_or_spec)
    if ax is None:
        fig, ax = plt.subplots(figsize=(12, 6), layout="constrained")
    fig = ax.figure
    ax.set_xlim(-180, 180)
    ax.set_ylim(-60, 75)
    ax.set_xticks(range(-180, 181, 30))
    ax.set_yticks(range(-60, 76, 15))
    ax.grid(color="0.9")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_aspect("equal")
    for link in spec.backbone:
        a, b = spec.regions[link.a], spec.regions[link.b]
        ax.plot([a.lon, b.lon], [a.lat, b.lat], color="0.75", lw=1, zorder=1)
        ax.annotate(
            f"{link.params.rtt_ms:.0f}",
            ((a.lon + b.lon) / 2, (a.lat + b.lat) / 2),
            fontsize=7,
            color="0.5",
            ha="center",
        )
    positions = node_positions(spec)
    marked = set(highlight)
    kinds = list(kinds)
    for kind in kinds:
        nodes = [n for n in spec.nodes.values() if n.kind == kind]
        if not nodes:
            continue
        marker, colour = STYLE.get(kind, ("o", "black"))
        xy = np.array([positions[n.name] for n in nodes])
        ax.scatter(
            xy[:, 0],
            xy[:, 1],
            marker=marker,
            color=colour,
            s=60,
            label=kind,
            zorder=3,
            edgecolors=["black" if n.name in marked else colour for n in nodes],
        )
    if labels == "nodes":
        _label_nodes(ax, spec, kinds, marked)
    else:
        _label_regions(ax, spec, kinds)
    ax.legend(loc="lower left")
    ax.set_title(f"World {spec.name!r}: {len(spec.nodes)} nodes in {len(spec.regions)} regions")
    return fig


def _label_nodes(ax: Axes, spec: Any, kinds: list[str], marked: set[str]) -> None:
    """Each region's node names as one column beside its city: they never overlap."""
    for region in spec.regions.values():
        names = [n.name for n in spec.nodes.values() if n.region == region.name and n.kind in kinds]
        for i, name in enumerate(names):
            ax.annotate(
                name,
                (region.lon, region.lat),
                xytext=(10, 6 - 9 * i),
                textcoords="offset points",
                fontsize=7,
                fontweight="bold" if name in marked else "normal",
            )


def _label_regions(ax: Axes, spec: Any, kinds: list[str]) -> None:
    """City names of the regions shown, nudged down where a nearby name already stands."""
    shown = {n.region for n in spec.nodes.values() if n.kind in kinds}
    placed: list[tuple[float, float]] = []
    for region in sorted(spec.regions.values(), key=lambda r: -r.lat):
        if region.name not in shown:
            continue
        x, y = region.lon + 4, region.lat + 4
        while any(abs(x - px) < 40 and abs(y - py) < 7 for px, py in placed):
            y -= 7
        placed.append((x, y))
        ax.annotate(
            region.city,
            (region.lon, region.lat),
            xytext=(x, y),
            fontsize=8,
            arrowprops={"arrowstyle": "-", "color": "0.7", "lw": 0.5},
        )


def _heatmap(ax: Axes, table: pd.DataFrame, title: str, vmax: float) -> None:
    image = ax.imshow(table.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=vmax)
    ax.set_xticks(range(len(table.columns)), table.columns, rotation=45, ha="right")
    ax.set_yticks(range(len(table.index)), table.index)
    for (i, j), value in np.ndenumerate(table.to_numpy(dtype=float)):
        if not math.isnan(value):
            ax.text(
                j,
                i,
                f"{value:.0f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if value < vmax / 2 else "black",
            )
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, shrink=0.8, label="RTT (ms)")


def rtt_heatmaps(matrix: pd.DataFrame) -> Figure:
    """Configured vs measured RTT, side by side, from ``kit.nb.measure.rtt_matrix``."""
    configured = matrix.pivot(index="source", columns="target", values="configured_ms")
    measured = matrix.pivot(index="source", columns="target", values="measured_ms")
    measured = measured.reindex(index=configured.index, columns=configured.columns)
    vmax = float(np.nanmax([configured.to_numpy(dtype=float), measured.to_numpy(dtype=float)]))
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
    _heatmap(axes[0], configured, "configured RTT (ms)", vmax)
    _heatmap(axes[1], measured, "measured RTT (ms, median)", vmax)
    return fig


def ttfb_bars(
    samples: pd.DataFrame, value: str = "ttfb_ms", by: str = "host", ax: Axes | None = None
) -> Figure:
    """Median ``value`` per group as bars, with a line from p5 to p95 (``measure_ttfb``'s table)."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
    groups = samples.groupby(by, sort=False)[value]
    mid, low, high = groups.median(), groups.quantile(0.05), groups.quantile(0.95)
    bars = ax.bar(mid.index, mid, yerr=[mid - low, high - mid], capsize=4, color="tab:blue")
    ax.bar_label(bars, fmt="%.0f", padding=2, fontsize=8)
    ax.set_ylabel(f"{value} (median, p5–p95)")
    ax.tick_params(axis="x", rotation=30)
    return ax.figure


def cdf(
    samples: pd.DataFrame, value: str = "ttfb_ms", by: str = "host", ax: Axes | None = None
) -> Figure:
    """Empirical CDF of ``value``, one line per group: the whole distribution, not one number."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
    for name, values in samples.groupby(by, sort=False)[value]:
        x = np.sort(values.to_numpy(dtype=float))
        y = np.arange(1, len(x) + 1) / len(x)
        ax.step(x, y, where="post", label=str(name))
    ax.set_xlabel(value)
    ax.set_ylabel("fraction of requests ≤ x")
    ax.set_ylim(0, 1.02)
    ax.grid(color="0.9")
    ax.legend()
    return ax.figure
