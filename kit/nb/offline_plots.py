"""Chapter 10's measurements, tables and plots: pages offline, replay, merge, claims.

- `page_times(app, device, setups)`: a page (the app's shell, five requests) loaded
  through the device's proxy with each setup of routes, online, with the link cut, and
  in lie-fi; median time to interactive and how many of the five parts came back 200.
  `plot_pages` draws it; a load with a part missing is drawn hatched, as "broken".
- `replay_after_reconnect(app, device, source, ops)`: the learner's outbox holds `ops`
  mutations made offline; the link comes back; the time to the last answer, and the
  request bytes the server counted.
- `lww_run(app, run)`: the merge check's edits again, as a plain-text note whose whole
  text each device PUTs on reconnect (the server keeps the last): the edits it lost.
  `plot_merge` puts that next to the CRDT note's count, and the bytes each reconnect
  sent against the whole document.
- `browser_run(world, app, device)`: the kit's PWA (`kit.pwa`: a Service Worker built
  with Workbox) in headless Chromium on a device's host: a first visit, a reload with
  the link cut, notes written offline, and the link back; the times the page measured,
  the notes on screen and on the server, two screenshots, and the memory the world,
  Chromium and the kernel take together. `plot_browser_run` shows the screenshots with
  the times.
- `offline_claims(...)`: the chapter's "What you measured" rows from this run.

Every function takes what a run measured; with an exercise unwritten (None) the plot
says so instead of failing.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from kit.nb.claims import Claim
from kit.nb.offline_checks import NoteRun, OutboxProbe, OutboxRun
from kit.offline import OfflineApp

NETWORKS = ("online", "offline", "lie-fi")


def page_times(
    app: OfflineApp,
    device: str,
    setups: Mapping[str, list[dict[str, Any]]],
    runs: int = 3,
    give_up_s: float = 4.0,
) -> pd.DataFrame:
    """Time to interactive of the app's page per setup of routes and state of the network.

    For each setup: the cache emptied, one visit online to fill it (a precache), then
    `runs` loads online and offline (the access link cut) and one in lie-fi (the link up,
    every packet lost). A request the client gives up on (after `give_up_s`) is a part
    that did not come back."""
    rows = []
    for name, routes in setups.items():
        app.online(device)
        app.clear_cache(device)
        app.set_routes(device, routes)
        app.page(device)
        app.settle(device)
        for network in NETWORKS:
            if network == "offline":
                app.offline(device)
            elif network == "lie-fi":
                app.lie_fi(device)
            try:
                count = 1 if network == "lie-fi" else runs
                loads = [app.page(device, timeout=give_up_s) for _ in range(count)]
            finally:
                app.online(device)
            ok = min(sum(part.status == 200 for part in page.parts) for page in loads)
            rows.append(
                {
                    "setup": name,
                    "network": network,
                    "ms": round(statistics.median(page.ms for page in loads), 1),
                    "parts ok": f"{ok}/5",
                    "usable": ok == 5,
                }
            )
        app.settle(device, timeout=60)  # fetches stuck in lie-fi end once it is over
    return pd.DataFrame(rows)


def plot_pages(table: pd.DataFrame) -> Figure:
    """Time to interactive per setup, online, offline and in lie-fi; broken loads hatched."""
    fig, ax = plt.subplots(figsize=(10, 3.8))
    setups = list(dict.fromkeys(table["setup"]))
    width = 0.8 / len(NETWORKS)
    for j, network in enumerate(NETWORKS):
        part = table[table["network"] == network].set_index("setup").reindex(setups)
        xs = [i + (j - 1) * width for i in range(len(setups))]
        bars = ax.bar(xs, part["ms"], width, label=network, color=f"C{j}")
        for bar, usable in zip(bars, part["usable"], strict=True):
            if not usable:
                bar.set_hatch("//")
                bar.set_alpha(0.45)
                ax.annotate("broken", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=7)  # fmt: skip
    ax.set_xticks(range(len(setups)), setups, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("time to interactive (ms, log)")
    ax.set_title("The app's page: online, link cut, lie-fi (hatched: a part did not load)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def replay_after_reconnect(
    app: OfflineApp, device: str, source: str | None, ops: int = 100
) -> dict[str, Any]:
    """`ops` mutations made offline in the learner's outbox, sent once the link is back:
    seconds from the link coming back to the last answer, requests, request bytes."""
    if source is None:
        return {}
    run = OutboxProbe(app, device).run(source, ops, faults_on=False, wait_online=True)
    if run.error or not run.times.get("online"):
        return {}
    answered = [a for a in run.attempts if isinstance(a[2], int)]
    return {
        "operations": ops,
        "sync s": run.times["last"] - run.times["online"],
        "requests answered": len(answered),
        "request body bytes at the server": run.counts.get("bytes_in", 0),
        "applied once": sum(n == 1 for n in run.per_op()),
    }


def outbox_summary(run: OutboxRun | None) -> pd.DataFrame:
    """What the check's run did, counted at the server."""
    if run is None:
        return pd.DataFrame()
    per_op = run.per_op()
    counts = run.counts
    return pd.DataFrame(
        {
            "operations": [len(run.ops)],
            "attempts (send called)": [len(run.attempts)],
            "no answer": [sum(not isinstance(a[2], int) for a in run.attempts)],
            "answered 503": [sum(a[2] == 503 for a in run.attempts)],
            "answers lost by the server": [counts.get("answers_lost", 0)],
            "replayed from a key": [counts.get("replayed", 0)],
            "applied once": [sum(n == 1 for n in per_op)],
            "applied twice or more": [sum(n > 1 for n in per_op)],
            "lost": [sum(n == 0 for n in per_op)],
            "seconds": [round(run.seconds, 1)],
        },
        index=["your outbox"],
    )


def lww_run(app: OfflineApp, run: NoteRun | None) -> dict[str, Any]:
    """The merge check's edits on a plain-text note, merged by last write wins.

    Each device applies its own offline edits to the shared text; on reconnect (in the
    check's first-round order) it PUTs its whole text, with the time it wrote, and the
    server keeps the latest; then every device reads that."""
    if run is None:
        return {}
    note = f"lww-{run.seed:x}"
    order = [row["device"] for row in run.sync_bytes if row["round"] == 1]
    for device in order:
        text = run.base
        for kind, at, what in run.edits_by_device[device]:
            if kind == "insert":
                text = text[:at] + what + text[at:]
            else:
                text = text[:at] + text[at + what :]
        body = {"text": text}
        app.fetch(device, f"/notes/{note}", "PUT", json_body=body, direct=True)
        time.sleep(0.01)  # a later write, a later time: the last one wins
    final = app.fetch(order[0], f"/notes/{note}", direct=True).json()["text"]
    return {"edits": run.edits, **edits_lost(run, final), "winner": order[-1]}


def edits_lost(run: NoteRun, merged: str) -> dict[str, int]:
    """What a merged text lost of the run's offline edits: inserted words missing, and
    deleted letters back again. `edits_lost(run, run.newcomer)` counts the CRDT's merge
    (the text a new device gets from the server)."""
    lost_inserts = sum(m not in merged for m in run.markers)
    rest = merged
    for marker in run.markers:
        rest = rest.replace(marker, "")
    undone = max(0, len(rest) - (len(run.base) - run.deleted))
    return {"lost inserts": lost_inserts, "undone deletes": undone, "lost": lost_inserts + undone}


def merge_table(run: NoteRun | None, lww: Mapping[str, Any]) -> pd.DataFrame:
    """Edits made offline and edits lost, by last write wins and by the learner's note."""
    if run is None or not lww:
        return pd.DataFrame()
    crdt = edits_lost(run, run.newcomer)
    return pd.DataFrame(
        {
            "edits made offline": [run.edits, run.edits],
            "inserts lost": [lww["lost inserts"], crdt["lost inserts"]],
            "deletes undone": [lww["undone deletes"], crdt["undone deletes"]],
        },
        index=[f"last write wins ({lww['winner']} wrote last)", "your CRDT note"],
    )


def plot_merge(run: NoteRun | None, lww: Mapping[str, Any]) -> Figure:
    """Edits lost per merge, and the bytes each reconnect sent against the whole document."""
    fig, (lost, sizes) = plt.subplots(1, 2, figsize=(10, 3.6))
    if run is None or not lww:
        for ax in (lost, sizes):
            ax.text(0.5, 0.5, "the exercise is not written yet", ha="center", va="center")
            ax.set_axis_off()
        return fig
    crdt = edits_lost(run, run.newcomer)["lost"]
    bars = lost.bar(["last write wins", "your CRDT note"], [lww["lost"], crdt], color=["C3", "C2"])
    lost.bar_label(bars, fontsize=9)
    lost.axhline(run.edits, color="grey", ls="--", lw=1)
    lost.annotate(f"{run.edits} edits made offline", (0.5, run.edits), ha="center",
                  va="bottom", fontsize=8)  # fmt: skip
    lost.set_ylabel("edits lost in the merge")
    lost.set_ylim(0, run.edits * 1.25)
    lost.set_title("Three devices edit offline, then reconnect")
    rows = run.sync_bytes
    labels = [f"{r['device'].removeprefix('user-')} {r['round']}" for r in rows]
    sizes.bar(labels, [r["sent"] for r in rows], color="C0", label="sent by the device")
    sizes.bar(labels, [r["received"] for r in rows], bottom=[r["sent"] for r in rows],
              color="C1", label="received")  # fmt: skip
    sizes.axhline(run.whole_bytes, color="C3", ls="--", label="the whole document")
    sizes.set_ylabel("bytes per reconnect")
    sizes.set_title("What a reconnect moves (device, round)")
    sizes.tick_params(axis="x", labelsize=7)
    sizes.legend(fontsize=8)
    fig.tight_layout()
    return fig


def browser_run(world: Any, app: OfflineApp, device: str, notes: int = 3) -> dict[str, Any]:
    """The PWA in Chromium on `device` (see the module docstring); the PWA's notes API is
    `app`'s sync service, so what the server applied is counted there."""
    from kit.net import registry
    from kit.pwa import descendants, pss_mb, serve_pwa, start_browser

    app.forget()  # a clean server: the page lists only the notes written here
    pwa = serve_pwa(world, sync=app)
    browser = start_browser(world, device, pwa.url)
    try:
        run: dict[str, Any] = {"device": device, "ms": {}}
        run["ms"]["first visit, online"] = browser.open(pwa.url)
        browser.wait_controlled()  # the Service Worker installed and precached the shell
        browser.add_note("written online")
        browser.wait_settled()
        run["ms"]["reload, online"] = browser.reload()
        browser.wait_settled()
        browser.offline()  # the device's link cut in the world: Chromium sees it
        try:
            run["ms"]["reload, link cut"] = browser.reload(timeout=10)
            texts = [f"offline note {i + 1}" for i in range(notes)]
            run["states"] = [browser.add_note(text) for text in texts]
            run["on server while cut"] = sum(t in texts for w in pwa.applied().values() for t in w)
            run["offline png"] = browser.do(lambda page: page.screenshot())
        finally:
            browser.online()
        back = time.monotonic()
        deadline = back + 30
        while time.monotonic() < deadline:
            written = [t for w in pwa.applied().values() for t in w]
            if all(t in written for t in texts):
                break
            time.sleep(0.1)
        run["sync s"] = time.monotonic() - back
        run["applied"] = {t: written.count(t) for t in texts}
        synced = [e.get("how") for e in browser.events() if e.get("type") == "synced"]
        run["replayed by"] = synced[-1] if synced else "nothing yet"
        deadline = time.monotonic() + 10  # the page hears from the Service Worker
        while any(n["state"] != "synced" for n in browser.shown()) and time.monotonic() < deadline:
            time.sleep(0.1)
        run["online png"] = browser.do(lambda page: page.screenshot())
        # What a 2 GB VM must hold: the world with its services, Chromium, this kernel
        # and Playwright's driver (shared pages split between processes: PSS).
        kernel = os.getpid()
        pids = {kernel, *descendants(kernel), *registry.world_processes(world.record)}
        run["memory MB"] = pss_mb(sorted(pids | set(browser.processes())))
        return run
    finally:
        browser.stop()
        pwa.stop()


def plot_browser_run(run: Mapping[str, Any]) -> Figure:
    """The page with the link cut and after it came back, with the times it measured."""
    import io

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    applied = run["applied"]
    captions = [
        f"link cut: reload {run['ms']['reload, link cut']:.0f} ms, notes {', '.join(run['states'])}"
        f"\n(on the server: {run['on server while cut']})",
        f"link back: on the server {run['sync s']:.1f} s later (replayed by {run['replayed by']})"
        f"\neach applied {'/'.join(str(n) for n in applied.values())} time(s)",
    ]
    for ax, key, caption in zip(axes, ("offline png", "online png"), captions, strict=True):
        ax.imshow(_trimmed(plt.imread(io.BytesIO(run[key]), format="png")))
        ax.set_title(caption, fontsize=9)
        ax.axis("off")
    fig.suptitle(
        f"The PWA in Chromium on {run['device']} (Workbox's Service Worker); world, "
        f"services, Chromium and this kernel: {run['memory MB']:.0f} MB"
    )
    fig.tight_layout()
    return fig


def _trimmed(image: Any, margin: int = 12) -> Any:
    """The screenshot cut to what the page drew (its white around it removed)."""
    drawn = (image[:, :, :3] < 0.97).any(axis=2).nonzero()
    if not len(drawn[0]):
        return image
    top, left = max(drawn[0].min() - margin, 0), max(drawn[1].min() - margin, 0)
    return image[top : drawn[0].max() + margin, left : drawn[1].max() + margin]


def offline_claims(
    pages: pd.DataFrame,
    outbox: OutboxRun | None,
    replay: Mapping[str, Any],
    note: NoteRun | None,
    lww: Mapping[str, Any],
    browser: Mapping[str, Any] | None = None,
) -> list[Claim]:
    """The chapter's claims next to this run's numbers."""

    def page(setup: str, network: str) -> str:
        row = pages[(pages["setup"] == setup) & (pages["network"] == network)]
        if row.empty:
            return "not measured"
        r = row.iloc[0]
        return f"{r['ms']:.0f} ms, {r['parts ok']} parts"

    claims = [
        Claim(
            "a cache strategy keeps the app usable offline",
            "the app works offline",
            f"no service worker, offline: {page('no service worker', 'offline')}; "
            f"CacheFirst, offline: {page('CacheFirst (precached)', 'offline')}, "
            f"online: {page('CacheFirst (precached)', 'online')} (without one: "
            f"{page('no service worker', 'online')})",
            "the page is five small files; a real app's shell is bigger, so the cache saves "
            "more, and its first visit costs more",
        ),
        Claim(
            "NetworkFirst needs a timeout in lie-fi",
            "networkTimeoutSeconds (Workbox)",
            f"without one: {page('NetworkFirst, no timeout', 'lie-fi')}; "
            f"with 1 s: {page('NetworkFirst, 1 s timeout', 'lie-fi')}",
            "lie-fi here loses every packet and the user gives up after 4 s; a real one loses "
            "some, and the timeout is the same defence",
        ),
    ]
    if outbox is not None:
        per_op = outbox.per_op()
        claims.append(
            Claim(
                "background sync replays what was done offline, each once",
                "no mutation lost or applied twice",
                f"{len(outbox.ops)} operations through cuts, lost answers and 503s: "
                f"{sum(n == 0 for n in per_op)} lost, {sum(n > 1 for n in per_op)} twice "
                f"({len(outbox.attempts)} attempts)",
                "the issue's 10,000 take minutes at one request after another; the check runs "
                "what fits in about 30 s",
            )
        )
    if replay:
        claims.append(
            Claim(
                "sync after reconnect",
                "(no number given)",
                f"{replay['operations']} queued operations in {replay['sync s']:.1f} s, "
                f"{replay['request body bytes at the server']} bytes of request bodies",
                "one request after another, as Workbox's queue replays; a batch endpoint would "
                "need one round trip",
            )
        )
    if browser:
        once = sum(n == 1 for n in browser["applied"].values())
        queued = browser["states"].count("queued")
        claims.append(
            Claim(
                "a real PWA (Workbox in Chromium) works offline and syncs its writes",
                "usable offline; queued writes replayed",
                f"reload with the link cut: {browser['ms']['reload, link cut']:.0f} ms "
                f"(online: {browser['ms']['reload, online']:.0f} ms); "
                f"{len(browser['applied'])} notes written offline, {queued} queued, "
                f"{browser['on server while cut']} on the server while cut, {once} applied "
                f"once, {browser['sync s']:.1f} s after the link came back",
                f"one device and three notes; Background Sync exists in Chrome and Edge only; "
                f"world, services, Chromium and kernel took {browser['memory MB']:.0f} MB",
            )
        )
    if note is not None and lww:
        sent = [r["sent"] for r in note.sync_bytes if r["round"] == 1]
        claims.append(
            Claim(
                "a CRDT merges concurrent offline edits without losing any",
                "no edit lost",
                f"{note.edits} edits on {len(note.texts)} devices: CRDT lost "
                f"{edits_lost(note, note.newcomer)['lost']}, last write "
                f"wins lost {lww['lost']}; a reconnect sent {min(sent)}–{max(sent)} B "
                f"against a {note.whole_bytes} B document",
                "a small note: on a long document the update stays the size of the edits and "
                "the whole document grows",
            )
        )
    return claims
