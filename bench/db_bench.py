"""The replicated database on the default world: write rate, replication rate, apply lag.

    sudo .venv/bin/python bench/db_bench.py

(a) Writes. Writers on the origin's host (next to the primary, in Ashburn) send
    single-row transactions as fast as the primary commits them, with 1 and with
    8 at once: transactions per second.

(b) Catching up. Both replicas are paused while the writers commit a backlog;
    then they follow again and the bench times each one until its position
    reaches the primary's: transactions applied per second over the real links.

(c) Apply lag. While one writer commits a transaction every 20 ms or so, each
    replica measures every change's delay from commit to apply; the table shows
    the median of the last 100 (`median_delay_s`), at two shipping intervals,
    beside what a pull-based replica should show: a pull cycle lasts the
    interval plus a round trip, a change waits half a cycle on average for the
    pull that takes it, and then travels one way: interval/2 + RTT.

Prints a table and exits 0. Needs root (a Mininet world).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_bench import table  # noqa: E402

from kit.db import Database, start_database  # noqa: E402
from kit.net import World  # noqa: E402

WRITER_HOST = "origin"
BACKLOG = 2000
# A writer run inside a world host: COUNT inserts from CLIENTS at once; prints tx/s.
WRITER = """
import asyncio, json, sys, time
import aiohttp
URL, COUNT, CLIENTS, PAUSE = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
async def client(session, n):
    for i in range(n):
        body = {"sql": "INSERT INTO bench (at) VALUES (?)", "params": [time.time()]}
        async with session.post(URL + "/exec", json=body) as answer:
            assert answer.status == 200, await answer.text()
        if PAUSE:
            await asyncio.sleep(PAUSE)
async def run():
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session, COUNT // CLIENTS) for _ in range(CLIENTS)))
        print(json.dumps({"tx_per_s": COUNT / (time.perf_counter() - started)}))
asyncio.run(run())
"""


def write(world: World, url: str, count: int, clients: int, pause_s: float = 0.0) -> float:
    """Run the writer on WRITER_HOST; its transactions per second."""
    argv = [sys.executable, "-c", WRITER, url, str(count), str(clients), str(pause_s)]
    out, err = world.popen(WRITER_HOST, argv, stdout=-1, stderr=-1, text=True).communicate(600)
    if not out.strip():
        raise RuntimeError(f"the writer failed:\n{err}")
    return json.loads(out)["tx_per_s"]


def catch_up(world: World, db: Database) -> dict[str, float]:
    """Pause the replicas, commit a backlog, resume: each replica's applied tx/s."""
    for host in db.replicas:
        db.pause(host)
    write(world, db.url(), BACKLOG, 8)
    head = db.positions()[db.primary]
    behind = {host: db.positions()[host] for host in db.replicas}
    started = time.perf_counter()
    for host in db.replicas:
        db.resume(host)
    rates, pending = {}, set(db.replicas)
    while pending and time.perf_counter() - started < 120:
        for host in list(pending):
            if db.positions()[host] >= head:
                rates[host] = (head - behind[host]) / (time.perf_counter() - started)
                pending.remove(host)
        time.sleep(0.01)
    return rates


def apply_lag(world: World, db: Database, interval_s: float) -> dict[str, float]:
    """Median commit-to-apply delay (ms) per replica, under a steady trickle of writes."""
    db.ship_every(interval_s)
    write(world, db.url(), 150, 1, 0.02)
    time.sleep(2 * interval_s + 0.5)  # the last ones arrive
    return {host: db.position(host)["median_delay_s"] * 1000 for host in db.replicas}


def main() -> int:
    with World() as world:
        db = start_database(world)
        try:
            create = '{"sql": "CREATE TABLE bench (id INTEGER PRIMARY KEY, at REAL)"}'
            world.run(WRITER_HOST, f"curl -s -X POST -d '{create}' {db.url()}/exec")
            rows = [
                ("(a) commits, 1 writer", f"{write(world, db.url(), 500, 1):,.0f} tx/s"),
                ("(a) commits, 8 writers", f"{write(world, db.url(), 2000, 8):,.0f} tx/s"),
            ]
            db.ship_every(0.05)
            for host, rate in catch_up(world, db).items():
                rows.append((f"(b) {host} catching up {BACKLOG} tx", f"{rate:,.0f} tx/s"))
            for interval in (0.05, 0.5):
                for host, lag in apply_lag(world, db, interval).items():
                    rtt = world.configured_rtt(db.primary, host) or 0
                    expected = interval * 1000 / 2 + rtt
                    name = f"(c) {host}, shipping every {interval * 1000:.0f} ms"
                    rows.append((name, f"{lag:.0f} ms (interval/2 + RTT: {expected:.0f} ms)"))
        finally:
            db.stop()
    print("Edge Lab database benchmark (the default world; writers next to the primary)\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
