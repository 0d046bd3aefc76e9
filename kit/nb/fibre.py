"""The fibre bound: how fast light in glass could make each backbone link, and the plot of it.

    backbone = backbone_table(world)          # one row per backbone link: km, configured, bound
    backbone["measured_ms"] = ...             # the chapter measures it
    plot_fibre_bound(backbone, ("tokyo", "virginia"))

Light in optical fibre travels at c divided by the glass's refractive index
(about 1.47), so a round trip over ``km`` of fibre takes at least
``2 * km / FIBRE_KM_PER_MS``. Real cables are longer than the great circle
between two cities, and routers and queues add their time: the ratio of the
real RTT to the bound is the link's *stretch*.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

FIBRE_KM_PER_MS = 299_792.458 / 1.47 / 1000  # light in glass: ≈204 km per ms
EARTH_RADIUS_KM = 6371.0


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The distance between two points along the Earth's surface (the haversine formula)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (lat1, lon1, lat2, lon2))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def fibre_bound_ms(km: float) -> float:
    """The round trip of light in glass over ``km`` each way."""
    return 2 * km / FIBRE_KM_PER_MS


def backbone_table(world: Any) -> pd.DataFrame:
    """One row per backbone link: its regions, cities, km, configured RTT, fibre bound, stretch."""
    regions = world.spec.regions
    rows = []
    for link in world.spec.backbone:
        a, b = regions[link.a], regions[link.b]
        km = great_circle_km(a.lat, a.lon, b.lat, b.lon)
        rows.append(
            {
                "a": link.a,
                "b": link.b,
                "link": f"{a.city}–{b.city}",
                "km": km,
                "configured_ms": link.params.rtt_ms,
                "fibre_bound_ms": fibre_bound_ms(km),
            }
        )
    table = pd.DataFrame(rows)
    table["stretch"] = table["configured_ms"] / table["fibre_bound_ms"]
    return table


def plot_fibre_bound(
    backbone: pd.DataFrame, claim: Sequence[str], ax: plt.Axes | None = None
) -> plt.Axes:
    """Each link's measured RTT against its distance, under the fibre bound's line.

    ``backbone`` is a ``backbone_table`` with a ``measured_ms`` column; the link
    between the two regions of ``claim`` is drawn in red and annotated.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    longest = backbone["km"].max() * 1.05
    ax.plot(
        [0, longest],
        [0, fibre_bound_ms(longest)],
        color="tab:green",
        label=f"fibre bound: light in glass, {FIBRE_KM_PER_MS:.0f} km/ms",
    )
    ax.scatter(
        backbone["km"],
        backbone["measured_ms"],
        color="tab:blue",
        zorder=3,
        label="backbone links, measured (median RTT)",
    )
    picked = backbone[backbone["a"].isin(claim) & backbone["b"].isin(claim)]
    for row in picked.itertuples():
        ax.vlines(row.km, row.fibre_bound_ms, row.measured_ms, color="tab:red", ls="--")
        ax.scatter([row.km], [row.measured_ms], color="tab:red", zorder=4)
        ax.annotate(
            f"{row.link}: {row.measured_ms:.0f} ms measured,\n"
            f"{row.fibre_bound_ms:.0f} ms for light in fibre",
            (row.km, row.measured_ms),
            xytext=(-10, 10),
            textcoords="offset points",
            ha="right",
            color="tab:red",
        )
    ax.set_xlim(0, longest)
    ax.set_ylim(0, backbone["measured_ms"].max() * 1.25)
    ax.set_xlabel("great-circle distance (km)")
    ax.set_ylabel("round-trip time (ms)")
    ax.set_title("Every backbone link takes longer than light in fibre")
    ax.grid(color="0.9")
    ax.legend(loc="upper left")
    return ax
