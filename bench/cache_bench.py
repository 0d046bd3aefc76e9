"""What the PoP's cache features save and cost: ratios measured side by side in one run.

    .venv/bin/python bench/cache_bench.py

(a) Request collapsing. Two PoPs in front of one origin that takes 200 ms per
    request: one as it runs in the labs, one started with `--no-collapse`. In
    each round, 50 clients connect to a PoP, wait at a barrier, and ask at the
    same instant for one URL nobody has asked for yet (a page just purged, or
    just expired); the origin's own request count says how many of the 50
    reached it. Rounds alternate between the two PoPs; the table shows medians
    of the origin requests per burst and of the clients' p50/max latency.

(b) Compression. For the origin's own bodies (a page, a 200 KB script, JSON,
    random bytes): bytes and CPU per encoding at the PoP's levels (brotli 5,
    zstd 3, gzip 6), best of 5 in this process. Then the PoP's hit path for
    the 200 KB script with Accept-Encoding identity, gzip, zstd and br (the
    compressed copy made once and kept with the entry), with wrk, in
    interleaved rounds as in edge_bench.

Prints a table and exits 0. (b)'s hit path needs wrk.
"""

from __future__ import annotations

import http.client
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from edge_bench import ROUNDS, SERVER_CORE, kit_service, table, throughput

from kit.control import call, protocol
from kit.nb.cache_plots import encoding_costs
from kit.services.launch import LocalService

BURST = 50
BURSTS = 6  # per PoP, alternating
THINK_MS = 200
SCRIPT = "/static/200k.js"


def burst(pop: LocalService, path: str) -> list[float]:
    """BURST simultaneous GETs of `path` (connections opened first); each one's ms."""
    host, port = pop.url.removeprefix("http://").split(":")
    barrier, times, errors = threading.Barrier(BURST), [], []

    def client() -> None:
        try:
            connection = http.client.HTTPConnection(host, int(port), timeout=30)
            connection.connect()
            barrier.wait()
            started = time.perf_counter()
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            times.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                errors.append(response.status)
            connection.close()
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=client) for _ in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"burst of {path}: {errors[:3]}")
    return times


def origin_requests(origin: LocalService) -> int:
    return call(origin.control, "GET", protocol.METRICS)["requests"]


def collapsing_rows(tmp: Path, origin: LocalService) -> list[tuple[str, str]]:
    call(origin.control, "POST", protocol.CONFIG, {"think_ms": THINK_MS})
    pops = {
        "collapsing (the default)": kit_service("pop", tmp, "--pop", "on", "--origin", origin.url),
        "--no-collapse": kit_service(
            "pop", tmp, "--pop", "off", "--origin", origin.url, "--no-collapse"
        ),
    }
    results: dict[str, list[tuple[int, float, float]]] = {name: [] for name in pops}
    try:
        for _ in range(BURSTS):
            for name, pop in pops.items():
                before = origin_requests(origin)
                times = burst(pop, f"/page/burst-{uuid.uuid4().hex[:8]}")
                reached = origin_requests(origin) - before
                results[name].append((reached, statistics.median(times), max(times)))
    finally:
        for pop in pops.values():
            pop.stop()
        call(origin.control, "POST", protocol.CONFIG, {"think_ms": 0})
    rows = []
    for name, runs in results.items():
        reached = statistics.median(r[0] for r in runs)
        p50 = statistics.median(r[1] for r in runs)
        slowest = statistics.median(r[2] for r in runs)
        rows.append(
            (
                f"(a) {name}: origin requests per {BURST} misses",
                f"{reached:.0f} (p50 {p50:.0f} ms, max {slowest:.0f} ms)",
            )
        )
    return rows


def compression_rows() -> list[tuple[str, str]]:
    costs = encoding_costs()
    rows = []
    for (body, encoding), row in costs.iterrows():
        if encoding == "identity":
            continue
        rows.append(
            (
                f"(b) {body}, {encoding}",
                f"{row['% of identity']:.1f} % in {row['CPU ms'] * 1000:.0f} µs",
            )
        )
    return rows


def hit_path_rows(tmp: Path, origin: LocalService) -> list[tuple[str, str]]:
    pop = kit_service("pop", tmp, "--pop", "bench", "--origin", origin.url, core=SERVER_CORE)
    encodings = ("identity", "gzip", "zstd", "br")
    found: dict[str, list[float]] = {e: [] for e in encodings}
    try:
        url = pop.url + SCRIPT
        for _ in range(ROUNDS):
            for encoding in encodings:
                found[encoding].append(throughput(url, (f"Accept-Encoding: {encoding}",)))
    finally:
        pop.stop()
    base = statistics.median(found["identity"])
    rows = []
    for encoding, values in found.items():
        rps = statistics.median(values)
        rows.append(
            (f"(b) hit path, {SCRIPT}, {encoding}", f"{rps:,.0f} req/s ({rps / base:.2f}x)")
        )
    return rows


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="edgelab-bench-"))
    origin = kit_service("origin", tmp)
    try:
        rows = collapsing_rows(tmp, origin)
        rows += compression_rows()
        if shutil.which("wrk"):
            rows += hit_path_rows(tmp, origin)
        else:
            rows.append(("(b) hit path skipped", "needs wrk (apt-get install wrk)"))
    finally:
        origin.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("Edge Lab cache benchmark (loopback; (a) medians of", BURSTS, "bursts per PoP,")
    print(f"alternating; (b) best of 5 in this process, and medians of {ROUNDS} wrk rounds)\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
