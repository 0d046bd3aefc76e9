"""An actor's round trip from every city, against the RTTs the world is configured with.

    sudo .venv/bin/python bench/actor_bench.py

An actor lives at one PoP (`kit/runtime/actors.py`). Here it lives in Ashburn
(`pop-virginia`, given as its location), and users in every city call it
through the PoP the anycast address takes them to: user -> nearest PoP -> the
actor's home -> back. On one reused connection, a request's time to first byte
is then the user's RTT to its PoP, plus that PoP's RTT to the home, plus the
work done on the way. The table puts each city's median beside the sum of the
two configured RTTs (the world's table, `World.configured_rtt`), and beside a
read of KV from the same PoP's cache, which never leaves it.

The difference between the measured median and the configured sum is what the
kit adds: two handler calls (the caller's and the actor's), the forwarding
between PoPs, and the storage read. The farthest city shows whether that
overhead stays small against a long path. Prints a table and exits 0. Needs
root (a Mininet world).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.control import deploy  # noqa: E402
from kit.edge import start_edge  # noqa: E402
from kit.kv import start_kv  # noqa: E402
from kit.nb.measure import WRITE_OUT, http_request, parse_write_out  # noqa: E402
from kit.net import World  # noqa: E402

HOME = "pop-virginia"
USERS = ["user-newyork", "user-london", "user-berlin", "user-saopaulo", "user-singapore"]
USERS += ["user-tokyo"]
SAMPLES = 30

HANDLER = """
class Counter:
    def __init__(self, state, env):
        self.storage = state.storage

    async def fetch(self, request):
        return Response.json({"n": await self.storage.get("n") or 0})

async def fetch(request, env, ctx):
    if request.path == "/kv":
        return Response.json({"n": await env.kv.get("n", cache_ttl_s=600)})
    return await env.actors.get("Counter", "bench", location=env.config["home"]).fetch("/")
"""


def ttfb_ms(world: World, user: str, url: str) -> list[float]:
    """SAMPLES GETs on one connection; the TTFB of all but the first (which connects)."""
    curl = ["curl", "-s", "-m", "10", "-w", f"'{WRITE_OUT}'"]
    curl += [f"-o /dev/null {url}"] * (SAMPLES + 1)
    timings = parse_write_out(world.run(user, " ".join(curl), 120))
    assert all(t.status == 200 for t in timings), timings
    return [t.ttfb_ms for t in timings[1:]]


def main() -> None:
    rows = []
    with World() as world:
        kv = start_kv(world)
        edge = start_edge(world, kv=kv)
        deploy(HANDLER, edge.pops, config={"home": HOME})
        for user in USERS:
            answer = http_request(world, user, f"{edge.anycast_url}/actor")  # places it; warms
            assert answer["status"] == 200, answer
            pop = answer["headers"]["x-edge-pop"]
            http_request(world, user, f"{edge.anycast_url}/kv")  # the PoP caches the key
            actor = statistics.median(ttfb_ms(world, user, f"{edge.anycast_url}/actor"))
            cached = statistics.median(ttfb_ms(world, user, f"{edge.anycast_url}/kv"))
            to_pop = world.configured_rtt(user, pop)
            to_home = 0.0 if pop == HOME else world.configured_rtt(pop, HOME)
            rows.append((user, pop, to_pop, to_home, actor, cached))
    print(f"actor at {HOME}; medians of {SAMPLES} requests on one connection per city\n")
    head = ("city", "via PoP", "RTT user-PoP", "RTT PoP-home", "configured", "actor TTFB")
    head += ("actor/configured", "KV read TTFB")
    print("  ".join(f"{h:>16}" for h in head))
    for user, pop, to_pop, to_home, actor, cached in rows:
        configured = to_pop + to_home
        cells = (user, pop, f"{to_pop:.1f} ms", f"{to_home:.1f} ms", f"{configured:.1f} ms")
        cells += (f"{actor:.1f} ms", f"{actor / configured:.2f}×", f"{cached:.1f} ms")
        print("  ".join(f"{c:>16}" for c in cells))
    farthest = max(rows, key=lambda row: row[2] + row[3])
    overhead = farthest[4] - (farthest[2] + farthest[3])
    print(f"\nfarthest city: {farthest[0]}, {overhead:+.1f} ms over its configured path")


if __name__ == "__main__":
    main()
