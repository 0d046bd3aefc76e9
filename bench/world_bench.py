"""Benchmarks of the emulated world, printed as tables (run as root: `make bench`).

- start/stop: the default world up with every host reachable, and down, median of
  several runs; a 100-PoP world generated from the same description.
- fidelity: measured minus configured RTT, p50 and p99, idle and while a bulk TCP
  flow runs through the same delay line, for each link mechanism this kernel has.
- memory: the proportional set size (PSS) of every process of the running default
  world, for the 2 GB VM.

Targets (from the issue): up < 5 s median, down < 2 s, 100 PoPs up < 30 s; RTT
error p50 < 1 ms and p99 < 3 ms. The targets are printed next to the numbers.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.net import World, fidelity, registry  # noqa: E402
from kit.net.links import netem_available  # noqa: E402
from kit.net.topology import default_world  # noqa: E402

RUNS = 5
FIDELITY_PAIRS = [
    ("user-tokyo", "pop-tokyo"),
    ("user-berlin", "pop-frankfurt"),
    ("user-singapore", "origin"),
    ("user-saopaulo", "pop-frankfurt"),
    ("user-newyork", "origin"),
]


def table(rows: list[list[object]], header: list[str]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def all_reachable(world: World) -> bool:
    """One echo from a user to every other node answers."""
    targets = [n for n in world.spec.nodes if n != "user-london"]
    got = world.ping_many([("user-london", t) for t in targets], count=1, interval=0.01)
    return all(got.values())


def start_stop(spec_pops: int, runs: int, links: str) -> tuple[list[float], list[float]]:
    ups, downs = [], []
    for _ in range(runs):
        t0 = time.monotonic()
        world = World(default_world(spec_pops), links=links).start()
        assert all_reachable(world), "a host was not reachable after start"
        ups.append(time.monotonic() - t0)
        t0 = time.monotonic()
        world.stop()
        downs.append(time.monotonic() - t0)
    return ups, downs


def world_memory_mb(world: World) -> float:
    """Sum of PSS over the world's processes (shells, delay line, services)."""
    total_kb = 0
    for pid in registry.world_processes(world.record):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
        except OSError:
            pass
    return total_kb / 1024


def fidelity_rows(links: str) -> list[list[object]]:
    rows = []
    with World(links=links) as world:
        idle = fidelity.measure(world, FIDELITY_PAIRS, count=500)
        rows.append(fidelity_row(links, "idle", idle, ""))
        # A bulk TCP flow London -> Frankfurt, 100 Mbit/s at London's access link,
        # through the same delay line as the pairs being measured.
        world.set_link("user-london", bw_mbit=100)
        server = world.start_service("pop-frankfurt", ["iperf", "-s", "-p", "5001"], name="iperf")
        time.sleep(0.3)
        flow = world.popen(
            "user-london",
            [
                "iperf",
                "-c",
                world.ip("pop-frankfurt"),
                "-p",
                "5001",
                "-t",
                "12",
                "-f",
                "m",
                "-y",
                "C",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(2)  # let the flow reach its rate
        busy = fidelity.measure(world, FIDELITY_PAIRS, count=500)
        out = flow.communicate()[0].strip().splitlines()
        mbit = int(out[-1].split(",")[-1]) / 1e6 if out else 0.0
        rows.append(fidelity_row(links, "bulk TCP flow", busy, f"flow {mbit:.0f} Mbit/s"))
        server.stop()
    return rows


def fidelity_row(links: str, load: str, pairs: list, note: str) -> list[object]:
    worst50 = max(abs(p.error(0.5)) for p in pairs)
    worst99 = max(abs(p.error(0.99)) for p in pairs)
    return [
        links,
        load,
        f"{fidelity.pooled(pairs, 0.5):+.2f}",
        f"{fidelity.pooled(pairs, 0.99):+.2f}",
        f"{worst50:.2f}",
        f"{worst99:.2f}",
        sum(p.lost for p in pairs),
        note,
    ]


def main() -> None:
    mechanisms = ["delayline"] + (["netem"] if netem_available()[0] else [])
    print(
        f"link mechanisms measured: {', '.join(mechanisms)}"
        + ("" if "netem" in mechanisms else " (this kernel has no sch_netem)")
    )

    rows = []
    for links in mechanisms:
        ups, downs = start_stop(0, RUNS, links)
        rows.append(
            [
                links,
                "default (29 hosts)",
                f"{statistics.median(ups):.2f}",
                f"{statistics.median(downs):.2f}",
                "< 5 s / < 2 s",
            ]
        )
        ups, downs = start_stop(100, 1, links)
        rows.append(
            [links, "100 extra PoPs (129 hosts)", f"{ups[0]:.2f}", f"{downs[0]:.2f}", "< 30 s"]
        )
    print(
        f"\nStart and stop, all hosts reachable (seconds; median of {RUNS} for the default world)"
    )
    print(table(rows, ["links", "world", "up", "down", "target"]))

    rows = []
    for links in mechanisms:
        rows += fidelity_rows(links)
    print(
        f"\nRTT error, measured - configured (ms), {len(FIDELITY_PAIRS)} pairs x 500 echoes; "
        "target p50 < 1, p99 < 3"
    )
    print(
        table(
            rows, ["links", "load", "p50 all", "p99 all", "worst p50", "worst p99", "lost", "note"]
        )
    )

    with World() as world:
        mb = world_memory_mb(world)
        n = len(registry.world_processes(world.record))
    print(
        f"\nMemory of the running default world: {mb:.0f} MB PSS in {n} processes "
        "(shells, delay line; no services started)"
    )


if __name__ == "__main__":
    main()
