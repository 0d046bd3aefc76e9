"""The offline-first app in a real browser: how fast it opens, how fast it syncs, what it costs.

    sudo .venv/bin/python bench/pwa_bench.py [--rounds 5] [--cities user-berlin,user-tokyo]

For each user city, Chromium runs on that user's host (``kit.pwa.start_browser``)
and the app's server on the origin in Ashburn. Each round starts from a new
profile (no Service Worker, no caches, no IndexedDB) and measures, as the page
itself measures it (``performance.now()`` when the local notes are on screen):

- the first visit: everything from the origin over the world's links;
- a reload once the Service Worker controls the page: the shell from its precache;
- a reload with the user's link cut: the same, with no network at all;
- once, in lie-fi (the link up, losing every packet): a reload, how long a write
  takes to be queued (the Service Worker's timeout) and how long after the link
  heals the queue reaches the server (no ``online`` event: the page's retry).

It counts what reached the origin during the online reload (the shell should
not: only the notes' GET), then writes notes with the link cut and measures the
time from the link's restoration to the last of them applied at the server
(Background Sync's ``sync`` event wakes the Service Worker), and how often each
was applied. Last, the memory (PSS, shared pages split between processes) of
the world's processes (services, Chromium, the delay line, host shells), of
Playwright's driver and of this process.

Prints a table and exits 0. Needs root (Mininet worlds) and Debian's chromium.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.net import World, registry  # noqa: E402
from kit.pwa import descendants, pss_mb, serve_pwa, start_browser  # noqa: E402

NOTES = 5


def wait_applied(app, texts: list[str], limit: float = 90) -> float:
    """Seconds until every text is applied at the server (polled every 50 ms)."""
    t0 = time.monotonic()
    while True:
        written = [t for ts in app.applied().values() for t in ts]
        if all(t in written for t in texts):
            return time.monotonic() - t0
        if time.monotonic() - t0 > limit:
            raise RuntimeError(f"queued notes did not reach the server in {limit} s")
        time.sleep(0.05)


def measure_lie_fi(world: World, app, browser, city: str) -> dict:
    """The link up and carrying nothing (100 % loss): reload, write, heal, sync."""
    world.set_link(city, loss_pct=100)
    try:
        reload_ms = browser.reload()
        texts = [f"lie-fi {city} {uuid.uuid4().hex[:8]}" for _ in range(3)]
        t0 = time.monotonic()
        states = [browser.add_note(t) for t in texts]
        queue_s = (time.monotonic() - t0) / len(texts)
    finally:
        world.set_link(city, loss_pct=0)
    return {
        "reload": reload_ms,
        "states": states,
        "queue_s": queue_s,
        "sync_s": wait_applied(app, texts),
    }


def one_city(world: World, app, city: str, rounds: int) -> dict:
    browser = start_browser(world, city, app.url)
    rows: dict[str, list[float]] = {"first": [], "reload": [], "offline": [], "sync_s": []}
    shell_requests, applied = [], []
    try:
        for _ in range(rounds):
            browser.fresh()
            rows["first"].append(browser.open(app.url))
            browser.wait_controlled()
            before = app.files()
            rows["reload"].append(browser.reload())
            browser.wait_settled()
            after = app.files()
            shell_requests.append(
                {f: n - before.get(f, 0) for f, n in after.items() if n != before.get(f, 0)}
            )
            browser.offline()
            try:
                rows["offline"].append(browser.reload())
                texts = [f"{city} {uuid.uuid4().hex[:8]}" for _ in range(NOTES)]
                states = [browser.add_note(t) for t in texts]
                assert states == ["queued"] * NOTES, states
            finally:
                browser.online()
            rows["sync_s"].append(wait_applied(app, texts))
            written = [t for ts in app.applied().values() for t in ts]
            applied += [written.count(t) for t in texts]
        replays = app.sync.server_counts()["replayed"]
        lie_fi = measure_lie_fi(world, app, browser, city)
        chromium = browser.processes()  # its first process is also one of the world's
        world_pids = sorted(set(registry.world_processes(world.record)) | set(chromium))
        driver = [p for p in descendants(os.getpid()) if p not in world_pids]
        memory = {
            "world": pss_mb(world_pids),
            "chromium": pss_mb(chromium),
            "driver": pss_mb(driver),
            "this": pss_mb([os.getpid()]),
            "processes": len(world_pids),
        }
    finally:
        browser.stop()
    return {
        "lie_fi": lie_fi,
        "rows": rows,
        "shell": shell_requests,
        "applied": applied,
        "replays": replays,
        "memory": memory,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cities", default="user-berlin,user-tokyo")
    args = ap.parse_args()
    with World() as world:
        print(f"links: {world.mechanism}")
        app = serve_pwa(world)
        for city in args.cities.split(","):
            r = one_city(world, app, city, args.rounds)
            med = {k: statistics.median(v) for k, v in r["rows"].items()}
            rtt = world.configured_rtt(city, "origin")
            print(f"\n{city} (configured RTT to the origin {rtt:.0f} ms), {args.rounds} rounds")
            print(f"  time to interactive, first visit:      {med['first']:7.1f} ms (median)")
            print(f"  reload, Service Worker, online:        {med['reload']:7.1f} ms")
            print(f"  reload, Service Worker, link cut:      {med['offline']:7.1f} ms")
            print(f"  first visit / SW reload:               {med['first'] / med['reload']:7.1f}x")
            print(f"  files fetched from the origin per SW reload: {r['shell']}")
            print(
                f"  {NOTES} notes written offline per round: on the server "
                f"{med['sync_s']:.2f} s after the link came back (median; "
                f"max {max(r['rows']['sync_s']):.2f} s)"
            )
            print(
                f"  writes applied per note: {sorted(set(r['applied']))}, "
                f"repeats answered from their key (the whole run): {r['replays']}"
            )
            lie = r["lie_fi"]
            print(
                f"  lie-fi (link up, 100 % loss): reload {lie['reload']:.1f} ms; a write "
                f"{lie['states'][0]} after {lie['queue_s']:.1f} s; on the server "
                f"{lie['sync_s']:.1f} s after the link healed"
            )
            m = r["memory"]
            print(
                f"  memory (PSS): world {m['world']:.0f} MB ({m['processes']} processes, "
                f"Chromium {m['chromium']:.0f} MB of it), Playwright's driver "
                f"{m['driver']:.0f} MB, this process {m['this']:.0f} MB; "
                f"together {m['world'] + m['driver'] + m['this']:.0f} MB"
            )


if __name__ == "__main__":
    main()
