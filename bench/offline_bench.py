"""Chapter 10's app on the default world: a page per strategy online and offline, CRDT bytes.

    sudo .venv/bin/python bench/offline_bench.py [--device user-tokyo] [--runs 5] [--edits 1000]

(a) Time to a page. The sync service runs on `origin` (Ashburn) and a proxy with
    Workbox's strategies on the device. For each strategy the route `/app/` (the page
    and its four assets) gets that strategy (NetworkFirst and NetworkOnly with a 3 s
    network timeout), the cache is emptied and the page loaded once online to fill it
    (for CacheOnly, which never fetches, once with CacheFirst: a precached page).
    Then the page is loaded `--runs` times online and `--runs` times with the device's
    access link cut (the device has no route), and lie-fi (the link up, every packet
    lost) once. Each load is timed on the device from the first request to the last
    byte of the last asset (the assets fetched at once, as a browser does), and the
    median is printed with how many of the five parts came back 200 (a request the
    client gave up on, after 10 s in lie-fi, is not). "none" is the page with no route
    at all (no service worker): every request to the network.

(b) CRDT bytes. A pycrdt document gets `--edits` single-character inserts at seeded
    positions (typing into a note, with the cursor moving about). Printed: the text's
    own size, the whole document as one update, the update one edit makes, and the
    update of the last 100 edits, made while offline, as a device would send them
    on reconnect. Then the device sends those 100 edits to the server and asks it for
    what it is missing (Yjs sync steps 1 and 2), timed on the device.

(c) Replay after reconnect. A program on the device holds `--queued` notes made
    offline, each with its idempotency key, and sends them one after another on one
    connection once the network is back (Workbox's background sync replays its queue
    in order, one request at a time). Printed: the time from the first connection to
    the last answer, the request bytes the server counted, and the bytes that crossed
    the device's access link each way (IP packets, every header).

(d) The outbox at scale. The chapter's solution `Outbox` (read from
    solutions/10-offline-sync.ipynb) runs on user-newyork with `--outbox-ops` operations
    (10,000 by default; 0 skips it) through the check's faults: the link cut about once
    every 250 operations, one answer in ten lost after the server applied it, two spells of
    503, a restart halfway. Printed: how many were applied once, twice, or lost, counted in
    the server's log, the attempts, and the time. Chapter 10's check runs 500 (what fits in
    about 30 s); this is the 10,000 of the issue.

Prints tables and exits 0. Needs root (a Mininet world).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

from pycrdt import Doc, Text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.net import World  # noqa: E402
from kit.offline import OfflineApp, start_offline  # noqa: E402

STRATEGIES = ("CacheFirst", "NetworkFirst", "StaleWhileRevalidate", "NetworkOnly", "CacheOnly")
TIMEOUT_S = 3.0
LIE_FI_GIVE_UP_S = 10.0  # the client (a user) gives up on a request after this long


def route(strategy: str) -> list[dict]:
    if strategy == "none":
        return []
    timed = strategy in ("NetworkFirst", "NetworkOnly")
    return [
        {
            "match": "/app/",
            "strategy": strategy,
            **({"network_timeout_s": TIMEOUT_S} if timed else {}),
        }
    ]


def loads(app: OfflineApp, device: str, runs: int, give_up_s: float = 20) -> tuple[float, str]:
    """Median time to the page over `runs` loads, and how many parts came back 200 (worst).
    A request the client gave up on (after `give_up_s`) counts as not 200."""
    times, parts = [], []
    for _ in range(runs):
        page = app.page(device, timeout=give_up_s)
        if runs > 1:
            app.settle(device)  # background fetches (StaleWhileRevalidate) end before the next
        times.append(page.ms)
        parts.append(sum(part.status == 200 for part in page.parts))
    return statistics.median(times), f"{min(parts)}/5"


def pages(app: OfflineApp, device: str, runs: int) -> list[tuple]:
    rows = []
    for strategy in ("none", *STRATEGIES):
        app.clear_cache(device)
        if strategy == "CacheOnly":  # it never fetches: the page is precached by CacheFirst
            app.set_routes(device, route("CacheFirst"))
            app.page(device)
        app.set_routes(device, route(strategy))
        app.page(device)  # the first visit, online: fills the cache
        app.settle(device)
        online = loads(app, device, runs)
        app.offline(device)
        try:
            offline = loads(app, device, runs)
        finally:
            app.online(device)
        app.lie_fi(device)
        try:
            lie_fi = loads(app, device, 1, give_up_s=LIE_FI_GIVE_UP_S)
        finally:
            app.online(device)
        app.settle(device, timeout=120)  # fetches stuck in lie-fi finish once it is over
        rows.append((strategy, *online, *offline, *lie_fi))
        print(f"  {strategy} measured", file=sys.stderr)
    return rows


def crdt(app: OfflineApp, device: str, edits: int) -> tuple[list[tuple[str, str]], dict]:
    rng = random.Random(10)
    doc = Doc()
    text = doc.get("note", type=Text)
    offline_from = edits - 100
    one_edit = 0
    for i in range(edits):
        if i == offline_from:
            app.push_update(device, "bench", doc.get_update())  # the server has it all so far
            before_offline = doc.get_state()
        before = doc.get_state()
        text.insert(rng.randint(0, len(text)), rng.choice("abcdefghij "))
        one_edit = len(doc.get_update(before))
    offline_update = doc.get_update(before_offline)
    push = app.push_update(device, "bench", offline_update)
    other = Doc()  # a second device that has nothing yet
    pull = app.pull_missing(device, "bench", other.get_state())
    other.apply_update(pull.body)
    assert str(other.get("note", type=Text)) == str(text), "the server's copy differs"
    sizes = [
        ("text (UTF-8)", f"{len(str(text).encode())} B"),
        ("whole document as an update", f"{len(doc.get_update())} B"),
        ("update of one edit", f"{one_edit} B"),
        ("update of the last 100 edits", f"{len(offline_update)} B"),
    ]
    timing = {"push_ms": push.ms, "push_status": push.status, "pull_ms": pull.ms}
    timing["pull_bytes"] = len(pull.body)
    return sizes, timing


REPLAY = """
import http.client, json, os, socket, time
from urllib.parse import urlsplit
server = urlsplit(os.environ["SYNC_URL"])
queue = [(f"q-{i}", json.dumps({"id": f"q{i}", "text": f"made offline, number {i}"}))
         for i in range(QUEUED)]
while True:  # wait for the network
    try:
        socket.create_connection((server.hostname, server.port), 0.5).close()
        break
    except OSError:
        time.sleep(0.05)
t0, conn = time.perf_counter(), None
for key, body in queue:
    while True:
        try:
            conn = conn or http.client.HTTPConnection(server.hostname, server.port, timeout=5)
            conn.request("POST", "/notes", body, {"Idempotency-Key": f'"{key}"',
                                                 "Content-Type": "application/json"})
            answer = conn.getresponse()
            answer.read()
            if answer.status < 300:
                break
        except (OSError, http.client.HTTPException):
            conn = None
        time.sleep(0.05)
print(json.dumps({"ms": (time.perf_counter() - t0) * 1000}), flush=True)
"""


def link_bytes(world: World, device: str) -> tuple[int, int]:
    """(sent, received) bytes on the device's access link, from its interface counters."""
    link = world.link(device)
    intf = link.a_intf if link.a == device else link.b_intf
    for line in world.run(device, "cat /proc/net/dev").splitlines():
        name, _, counters = line.partition(":")
        if name.strip() == intf:
            fields = counters.split()
            return int(fields[8]), int(fields[0])
    raise RuntimeError(f"no interface {intf} on {device}")


def replay(app: OfflineApp, world: World, device: str, queued: int) -> dict:
    app.forget()
    app.set_routes(device, [])
    app.offline(device)
    program = app.start_program(device, REPLAY.replace("QUEUED", str(queued)), name="replay")
    time.sleep(1.0)  # it waits for the network
    sent0, received0 = link_bytes(world, device)
    app.online(device)
    program.proc.wait(120)
    sent1, received1 = link_bytes(world, device)
    counts = app.server_counts()
    assert counts["applied"] == queued and len(counts["per_key"]) == queued, counts
    return {
        "ms": json.loads(program.log().splitlines()[-1])["ms"],
        "server_bytes_in": counts["bytes_in"],
        "up": sent1 - sent0,
        "down": received1 - received0,
    }


def outbox_at_scale(app: OfflineApp, ops: int) -> dict:
    """The chapter's solution outbox through the check's faults, `ops` operations."""
    from kit.nb.notebooks import read_notebook
    from kit.nb.offline_checks import OutboxProbe, judge_outbox

    solution = Path(__file__).resolve().parents[1] / "solutions" / "10-offline-sync.ipynb"
    cell = next(
        c for c in read_notebook(solution).cells if c.metadata.get("exercise") == "10-outbox"
    )
    duration = ops * 0.06  # about the run's length: the cuts fall all along it
    run = OutboxProbe(app, "user-newyork").run(
        cell.source, ops, duration=duration, cuts=max(3, ops // 250)
    )
    judge_outbox(run)  # raises CheckFailed if anything was lost, doubled or reordered
    per_op = run.per_op()
    return {
        "ops": ops,
        "once": sum(n == 1 for n in per_op),
        "twice": sum(n > 1 for n in per_op),
        "lost": sum(n == 0 for n in per_op),
        "attempts": len(run.attempts),
        "lost answers": run.counts.get("answers_lost", 0),
        "replayed": run.counts.get("replayed", 0),
        "seconds": run.seconds,
    }


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--device", default="user-tokyo")
    cli.add_argument("--runs", type=int, default=5)
    cli.add_argument("--edits", type=int, default=1000)
    cli.add_argument("--queued", type=int, default=50)
    cli.add_argument("--outbox-ops", type=int, default=10_000)
    args = cli.parse_args()
    with World() as world:
        devices = (args.device, *(["user-newyork"] if args.device != "user-newyork" else []))
        app = start_offline(world, devices=devices)
        rtt = world.configured_rtt(args.device, "origin")
        rows = pages(app, args.device, args.runs)
        sizes, timing = crdt(app, args.device, args.edits)
        replayed = replay(app, world, args.device, args.queued)
        scale = outbox_at_scale(app, args.outbox_ops) if args.outbox_ops else None
        mechanism = world.mechanism
    print(f"\n(a) time to a page (page + 4 assets) from {args.device}, median of {args.runs}")
    print(f"    configured RTT to origin: {rtt:.0f} ms; links: {mechanism}")
    head = ("strategy", "online ms", "ok", "offline ms", "ok", "lie-fi ms", "ok")
    print("    " + "".join(f"{h:>12}" if i else f"{h:<22}" for i, h in enumerate(head)))
    for strategy, on, on_ok, off, off_ok, lie, lie_ok in rows:
        cells = (f"{on:.1f}", on_ok, f"{off:.1f}", off_ok, f"{lie:.1f}", lie_ok)
        print(f"    {strategy:<22}" + "".join(f"{c:>12}" for c in cells))
    print(f"\n(b) a pycrdt note after {args.edits} single-character edits")
    for name, value in sizes:
        print(f"    {name:<32}{value:>10}")
    print(
        f"    sync after reconnect: sending the 100 offline edits took {timing['push_ms']:.1f} ms"
        f" (HTTP {timing['push_status']}); a new device fetched the whole document "
        f"({timing['pull_bytes']} B) in {timing['pull_ms']:.1f} ms"
    )
    print(f"\n(c) {args.queued} notes made offline, replayed in order after reconnect")
    print(f"    {replayed['ms']:.0f} ms from the first connection to the last answer")
    print(f"    request bodies the server counted: {replayed['server_bytes_in']} B")
    print(f"    on the device's link: {replayed['up']} B up, {replayed['down']} B down")
    if scale:
        print(
            f"\n(d) the chapter's outbox, {scale['ops']} operations through cuts and lost answers"
        )
        print(
            f"    applied once {scale['once']}, twice {scale['twice']}, lost {scale['lost']}; "
            f"{scale['attempts']} attempts, {scale['lost answers']} answers lost, "
            f"{scale['replayed']} replayed from a key; {scale['seconds']:.0f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
