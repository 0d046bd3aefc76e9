"""The KV store on a world: its central store next to the origin, read through PoPs.

    from kit.kv import start_kv

    kv = start_kv(world)                      # the central store, on the origin's host
    edge = start_edge(world, kv=kv)           # every PoP's handlers get env.kv
    kv.url                                    # http://10.x:7100 (reachable from world hosts)
    kv.metrics()["writes"], kv.forget()       # counters; forget every key

The glue between `kit.services.kv` (the central store, whose docstring says how
reads are cached at each PoP and how conflicting writes resolve) and a world,
as `kit.edge` is for origins and PoPs. The service is the world's:
`world.stop()` stops it; `kv.stop()` stops it earlier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kit.control import call, protocol
from kit.net.procs import Service, wait_healthy
from kit.net.world import World

PORT = 7100


class KvStore:
    """A running central KV store on one world host (see the module docstring)."""

    def __init__(self, world: World, host: str, service: Service, socket: Path) -> None:
        self.world, self.host, self.service = world, host, service
        self.target = f"unix:{socket}"

    @property
    def url(self) -> str:
        return f"http://{self.world.ip(self.host)}:{PORT}"

    def metrics(self) -> dict[str, Any]:
        return call(self.target, "GET", protocol.METRICS)

    def admit_peers(self, secret: str) -> None:
        """Let the PoPs that send this secret place actors (kit.edge does it)."""
        call(self.target, "POST", protocol.KV_PEERS, {"secret": secret})

    def forget(self) -> int:
        """Forget every key; how many there were."""
        return call(self.target, "DELETE", protocol.KV)["forgotten"]

    def stop(self) -> None:
        self.world.stop_service(self.service)
        Path(self.target.removeprefix("unix:")).unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"<KvStore on {self.host}:{PORT}>"


def start_kv(world: World, host: str = "origin", timeout: float = 20.0) -> KvStore:
    """Start the central KV store on `host` (default: next to the origin, in Ashburn)."""
    socket = Path(world.record.scratch) / f"{host}.kv.sock"
    socket.unlink(missing_ok=True)
    argv = ["python", "-m", "kit.services.kv", "--host", "0.0.0.0", "--port", str(PORT)]
    argv += ["--log-sample", "0", "--unix", str(socket)]
    service = world.launch_service(host, argv, name="kv", health_url=f"unix:{socket}")
    wait_healthy([service], timeout)
    return KvStore(world, host, service, socket)
