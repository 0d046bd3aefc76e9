"""What one student's world costs a machine: memory and CPU, idle and under a chapter's load.

    sudo .venv/bin/python bench/classroom_bench.py

A classroom server runs one world per student (worlds coexist: each has its own
namespaces, addresses and scratch folder). This measures, for the heaviest
setup the chapters use (the default world with the edge on every PoP, the
replicated database and the KV store with actors):

- memory: the proportional set size (PSS, from /proc/PID/smaps_rollup; shared
  pages counted once across processes) of every process of the world, plus a
  notebook kernel's own (this process, which holds the world, as a kernel does);
- CPU: the share of one core that the world's processes use, idle (nothing but
  its timers and the delay line) and while a chapter-sized load runs (Locust
  from two cities, 16 users each, against the PoPs, with a handler deployed);
- and a JupyterLab server's own memory, the other per-student process of a
  classroom server (one per student under JupyterHub).

Prints a table and exits 0. Needs root (Mininet worlds).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.control import deploy  # noqa: E402
from kit.db import start_database  # noqa: E402
from kit.edge import start_edge  # noqa: E402
from kit.kv import start_kv  # noqa: E402
from kit.load import run_loads  # noqa: E402
from kit.net import World  # noqa: E402
from kit.net.registry import world_processes  # noqa: E402

HANDLER = """
async def fetch(request, env, ctx):
    return await env.origin.fetch(request)
"""
TICKS = os.sysconf("SC_CLK_TCK")


def pss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_share(pids: list[int], seconds: float) -> float:
    """Share of one core the processes used over the next `seconds`."""
    before = sum(cpu_s(p) for p in pids)
    time.sleep(seconds)
    return (sum(cpu_s(p) for p in pids) - before) / seconds


def start_student(world: World) -> object:
    db = start_database(world)
    kv = start_kv(world)
    edge = start_edge(world, database=db, kv=kv)
    deploy(HANDLER, edge.pops)
    return edge


def measure(worlds: list[World]) -> dict[str, float]:
    pids = [pid for world in worlds for pid in world_processes(world.record)]
    memory = sum(pss_mb(pid) for pid in pids) + pss_mb(os.getpid())
    idle = cpu_share(pids, 5.0)
    return {"processes": len(pids), "memory_mb": memory, "idle_cpu": idle}


def under_load(world: World, edge: object, seconds: int = 15) -> tuple[float, float]:
    """CPU of the world's services, and of the load's Locust processes, during a load."""
    import threading

    services = world_processes(world.record)
    shares: list[float] = []

    def sample() -> None:
        time.sleep(3)  # Locust has started: the world's new processes are the load's
        locusts = [pid for pid in world_processes(world.record) if pid not in services]
        window = seconds - 6
        before = [sum(cpu_s(p) for p in group) for group in (services, locusts)]
        time.sleep(window)
        after = [sum(cpu_s(p) for p in group) for group in (services, locusts)]
        shares.extend((a - b) / window for a, b in zip(after, before, strict=True))

    sampler = threading.Thread(target=sample)
    sampler.start()
    run_loads(world, ["user-london", "user-tokyo"], edge.anycast_url, users=16, run_time_s=seconds)
    sampler.join()
    return shares[0], shares[1]


def lab_server_mb() -> float:
    """A JupyterLab server's PSS once it has started (no notebook open)."""
    import subprocess
    import urllib.request

    lab = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", "--allow-root",
         "--port=8891", "--ip=127.0.0.1", "--IdentityProvider.token=bench"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen("http://127.0.0.1:8891/api/status?token=bench", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        time.sleep(2)
        return pss_mb(lab.pid)
    finally:
        lab.terminate()
        lab.wait(20)


def main() -> None:
    with World() as world:
        edge = start_student(world)
        time.sleep(3)
        row = measure([world])
        row["load_cpu"], row["locust_cpu"] = under_load(world, edge)
    lab = lab_server_mb()
    print("a student's world: the default world, edge on every PoP, database, KV and actors\n")
    print(f"processes of the world:         {row['processes']}")
    print(f"memory (PSS), world + kernel:   {row['memory_mb']:.0f} MB")
    print(f"memory (PSS), JupyterLab:       {lab:.0f} MB")
    print(f"CPU idle:                       {row['idle_cpu']:.2f} cores")
    print(f"CPU under a 2 x 16-user load:   {row['load_cpu']:.2f} cores (the world's services)")
    print(f"                                {row['locust_cpu']:.2f} cores (the load: Locust)")


if __name__ == "__main__":
    main()
