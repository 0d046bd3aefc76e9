"""Chapter 02's plots and claims: TTFB before/after routing, where anycast took users.

    table = ttfb_before_after(before, after, ["user-berlin", "user-tokyo"], "GET /api/items/1")
    table = anycast_before_during(normal, failed, "every user on the anycast address")
    what_you_measured(routing_claims(routing, normal, failed, via_pop, direct, 88, 2))

Each draws one bar chart (values written on the bars) and returns the table it drew,
so a notebook shows both and can read numbers from the table.
"""

from __future__ import annotations

import pandas as pd

from kit.nb.claims import Claim


def median_ok(samples: pd.DataFrame, host: str) -> float:
    """The median TTFB of a host's successful (200) requests; NaN if there were none."""
    rows = samples[(samples["host"] == host) & (samples["status"] == 200)]
    return float(rows["ttfb_ms"].median()) if len(rows) else float("nan")


def ttfb_before_after(
    before: pd.DataFrame, after: pd.DataFrame, users: list[str], title: str
) -> pd.DataFrame:
    """Median TTFB per user with one origin and with the nearest origin, and the saving."""
    table = pd.DataFrame(
        {
            "one origin (Ashburn)": [median_ok(before, u) for u in users],
            "nearest origin": [median_ok(after, u) for u in users],
        },
        index=users,
    )
    ax = table.plot.bar(rot=0, figsize=(7, 3.5))
    for bars in ax.containers:
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set(ylabel="median TTFB (ms)", title=title)
    table["saved"] = table["one origin (Ashburn)"] - table["nearest origin"]
    return table.round(1)


def anycast_before_during(normal: pd.DataFrame, failed: pd.DataFrame, title: str) -> pd.DataFrame:
    """Median TTFB per user with every PoP up and with one failed; moved users are labelled."""
    table = pd.DataFrame({"all PoPs up": normal["ttfb_ms"], "one PoP failed": failed["ttfb_ms"]})
    ax = table.plot.bar(rot=0, figsize=(9, 3.8), color=["tab:blue", "tab:red"])
    labels = []
    for user in table.index:
        label = f"{user}\n{normal.loc[user, 'pop']}"
        if failed.loc[user, "pop"] != normal.loc[user, "pop"]:
            label += f"\n→ {failed.loc[user, 'pop']}"
        labels.append(label)
    ax.set_xticks(range(len(table)), labels, fontsize=8)
    for bars in ax.containers:
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set(xlabel="", ylabel="median TTFB (ms), cached page", title=title)
    return table.round(1)


def routing_claims(
    routing: pd.DataFrame,
    normal: pd.DataFrame,
    failed: pd.DataFrame,
    via_pop: pd.DataFrame,
    direct: pd.DataFrame,
    frankfurt_ashburn: float,
    hop_rtt: float,
) -> list[Claim]:
    """Chapter 02's claims, each with this run's number (tables from the chapter's cells)."""
    berlin = routing.loc["user-berlin"]
    before, after = normal.loc["user-tokyo"], failed.loc["user-tokyo"]
    light, heavy = via_pop.index[0], via_pop.index[-1]
    return [
        Claim(
            "Berlin API call: Frankfurt origin instead of Ashburn",
            "saves ≈88 ms (one round trip)",
            f"TTFB {berlin['one origin (Ashburn)']:.0f} → {berlin['nearest origin']:.0f} ms, "
            f"saved {berlin['saved']:.0f} ms",
            f"the world's Frankfurt–Ashburn RTT is {frankfurt_ashburn:.0f} ms; "
            "the PoP's work and jitter add or take a few ms",
        ),
        Claim(
            "Tokyo PoP fails: where Tokyo's users go",
            "the next-nearest PoP, Singapore, +≈70 ms RTT",
            f"{before['pop']} → {after['pop']}, RTT {before['rtt_ms']:.0f} → "
            f"{after['rtt_ms']:.0f} ms, TTFB {before['ttfb_ms']:.0f} → {after['ttfb_ms']:.0f} ms",
            "a new connection pays the extra RTT twice (handshake and request)",
        ),
        Claim(
            "failover needs no DNS change and nothing on the client",
            "instant",
            "instant: the emulator recomputes its routes at once",
            "real BGP converges in seconds to minutes, and open connections break",
        ),
        Claim(
            "the edge hop next to the origin (New York)",
            "≈2 ms + the PoP's work",
            f"p50 {direct.loc[light, 'p50']:.0f} ms direct, {via_pop.loc[light, 'p50']:.0f} ms "
            f"via pop-virginia at {light} users; p99 {direct.loc[heavy, 'p99']:.0f} vs "
            f"{via_pop.loc[heavy, 'p99']:.0f} ms at {heavy}",
            f"configured hop RTT {hop_rtt:.0f} ms; a Python PoP and its handler worker cost "
            "more than a real edge, most under load",
        ),
    ]
