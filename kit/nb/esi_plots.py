"""Chapter 05's measurements and what it shows: one page, assembled three ways.

    times = page_times(world, edge, CITIES, {"origin-rendered": layout.whole(),
                                             "ESI at the PoP": layout.page()}, uid)
    plot_page_times(times)                 # time to first byte and to the whole page, per city
    steps = page_load(world, edge, SOURCES, layout.whole())   # stepped Locust load
    esi_claims(times, loads)               # the closing table

**Per city.** Every case is the same page for the same visitor: rendered whole
at the origin (`/esi/whole/...`, private, so every view goes there), assembled
by the PoP from its cached fragments (ESI), or streamed by the learner's
handler. Each city's user fetches it `samples` times with the timeline client
of `esi_checks` (a new connection each time, the body read as it arrives), so
the first byte is the first byte of the *body*, as a browser starts to parse
it, not only the headers. The table keeps the median of each.

**Under load.** `page_load` is `kit.load.step_load` with the generic GET load
on one page and the origin's request count as the counter: what the edge saves
the origin is the origin's own number, also per page view (the PoPs' count).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from statistics import median
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from kit.load import step_load
from kit.nb.claims import Claim
from kit.nb.esi_checks import cookie, fetch_timeline


def page_times(
    world: Any,
    edge: Any,
    hosts: Iterable[str],
    cases: Mapping[str, str],
    uid: str,
    samples: int = 3,
) -> pd.DataFrame:
    """Median first-byte and whole-page time (ms) of each case's path, per city."""
    asks = [
        {"url": edge.anycast_url + path, "headers": cookie(uid), "case": case}
        for case, path in cases.items()
        for _ in range(samples)
    ]

    def one(host: str) -> list[dict[str, Any]]:
        found = fetch_timeline(
            world, host, [{k: v for k, v in a.items() if k != "case"} for a in asks]
        )
        return [
            {
                "city": host.removeprefix("user-"),
                "case": ask["case"],
                "first_byte_ms": t.first_byte_ms,
                "total_ms": t.total_ms,
                "ok": t.status == 200 and not t.error,
            }
            for ask, t in zip(asks, found, strict=True)
        ]

    hosts = list(hosts)
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        rows = [row for rows in pool.map(one, hosts) for row in rows]
    table = pd.DataFrame(rows)
    return (
        table.groupby(["city", "case"], sort=False)
        .agg(
            first_byte_ms=("first_byte_ms", median), total_ms=("total_ms", median), ok=("ok", "all")
        )
        .round(1)
    )


def plot_page_times(times: pd.DataFrame) -> Figure:
    """Per city: first byte and whole page, one bar group per case."""
    cities = list(dict.fromkeys(times.index.get_level_values("city")))
    cases = list(dict.fromkeys(times.index.get_level_values("case")))
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), layout="constrained", sharey=True)
    width = 0.8 / len(cases)
    for ax, column, title in zip(
        axes, ("first_byte_ms", "total_ms"), ("Time to first byte", "Whole page"), strict=True
    ):
        for i, case in enumerate(cases):
            values = [times.loc[(city, case), column] for city in cities]
            ax.bar([x + i * width for x in range(len(cities))], values, width, label=case)
        ax.set_xticks([x + width * (len(cases) - 1) / 2 for x in range(len(cities))], cities)
        ax.set(title=title, ylabel="ms (median)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    return fig


def page_load(
    world: Any,
    edge: Any,
    sources: Iterable[str],
    path: str,
    users: Iterable[int] = (6, 24),
    run_time_s: int = 3,
) -> pd.DataFrame:
    """Stepped Locust load on one page from `sources`; origin requests/s counted there.

    Each step also gets `origin_per_view`: the origin's requests over the page views
    the PoPs answered in the same window (both counted by the services themselves,
    so Locust's own count, which misses the end of a short run, is not used).
    """
    counts = {"views": _views(edge), "origin": edge.metrics(edge.origin)["requests"]}

    def per_view(_: Any) -> dict[str, float]:
        views, origin = _views(edge), edge.metrics(edge.origin)["requests"]
        seen = views - counts["views"]
        row = {"page_views": seen, "origin_per_view": (origin - counts["origin"]) / max(1, seen)}
        counts.update(views=views, origin=origin)
        return row

    return step_load(
        world,
        sources,
        edge.anycast_url,
        users=users,
        run_time_s=run_time_s,
        paths=[path],
        counter=lambda: edge.metrics(edge.origin)["requests"],
        observe=per_view,
    )


def _views(edge: Any) -> int:
    return sum(edge.metrics(pop)["requests"] for pop in edge.pops)


def case_summary(times: pd.DataFrame, loads: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per case: median first byte and whole page over cities, and load at the heaviest step."""
    rows = {}
    for case, table in times.groupby(level="case", sort=False):
        last = loads[case].iloc[-1] if case in loads else None
        rows[case] = {
            "first byte ms (median of cities)": table["first_byte_ms"].median(),
            "whole page ms": table["total_ms"].median(),
            "req/s": None if last is None else round(last["rps"], 1),
            "origin req/s": None if last is None else round(last["counted_per_s"], 1),
            "origin requests per view": None if last is None else round(last["origin_per_view"], 2),
            "p50 ms": None if last is None else last["p50"],
        }
    return pd.DataFrame(rows).T


def esi_claims(
    times: pd.DataFrame, loads: Mapping[str, pd.DataFrame], whole: str, esi: str, streamed: str
) -> list[Claim]:
    """The chapter's claims with this run's numbers."""
    summary = case_summary(times, loads)

    def ms(case: str, column: str) -> str:
        return f"{summary.loc[case, column]:.0f} ms"

    per_view = summary["origin requests per view"]
    return [
        Claim(
            "Streaming the shell from the edge cuts time to first byte",
            "no number; 'the user sees the page start at once'",
            f"{ms(whole, 'first byte ms (median of cities)')} origin-rendered → "
            f"{ms(streamed, 'first byte ms (median of cities)')} streamed shell",
            "the shell is cached at the PoP, so its first byte is one trip to the PoP; "
            "the origin must render every fragment first",
        ),
        Claim(
            "Assembling from cached fragments makes the whole page faster",
            "no number",
            f"{ms(whole, 'whole page ms')} origin-rendered, {ms(esi, 'whole page ms')} ESI at the "
            f"PoP, {ms(streamed, 'whole page ms')} streamed",
            "with ESI the page waits for its slowest fragment that is not cached here (the "
            "greeting, a round trip from the PoP to Ashburn); made at the edge, nothing waits",
        ),
        Claim(
            "Origin load falls",
            "no number",
            f"{per_view[whole]:.2f} → {per_view[esi]:.2f} (ESI) → {per_view[streamed]:.2f} "
            "(streamed) origin requests per page view",
            "the cached fragments never reach the origin; with ESI the private greeting still "
            "does, once per view, as the whole page did; made at the edge, it does not",
        ),
    ]
