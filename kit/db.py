"""The replicated database on a world: a primary in Ashburn, replicas near the users.

    from kit.db import start_database

    db = start_database(world)             # db-primary, and replicas on db-eu and db-ap
    db.url("db-eu")                        # http://10.x:7000: what world hosts query
    db.ship_every(2.0)                     # every replica pulls the log every 2 s
    db.pause("db-ap"); db.resume("db-ap")  # a replica stops following, then catches up
    db.positions()                         # {"db-primary": 41, "db-eu": 41, "db-ap": 37}

The glue between `kit.services.db` (the service, whose docstring says what it
serves and how replication works) and a world, as `kit.edge` is for origins and
PoPs. Each database file lives in the world's scratch folder, so it goes with the
world. Config and metrics go over each service's control socket (root-only), so
the notebook can slow or pause replication while users' queries stay on the
emulated network. The services are the world's: `world.stop()` stops them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kit.control import call, protocol
from kit.net.procs import Service, wait_healthy
from kit.net.world import World

PORT = 7000


class Database:
    """A running primary and its replicas on one world (see the module docstring)."""

    def __init__(self, world: World, primary: str, services: dict[str, Service]) -> None:
        self.world, self.primary, self.services = world, primary, services
        scratch = Path(world.record.scratch)
        self.targets = {host: f"unix:{scratch / f'{host}.db.sock'}" for host in services}

    @property
    def replicas(self) -> list[str]:
        return [host for host in self.services if host != self.primary]

    def url(self, host: str | None = None) -> str:
        """The data plane of `host` (default: the primary), reachable from world hosts."""
        return f"http://{self.world.ip(self._host(host or self.primary))}:{PORT}"

    def config(self, host: str, changes: dict[str, Any] | None = None) -> dict[str, Any]:
        """A replica's config (`ship_interval_s`, `paused`), changed by `changes` if given."""
        target = self.targets[self._host(host)]
        if changes is None:
            return call(target, "GET", protocol.CONFIG)
        return call(target, "POST", protocol.CONFIG, changes)

    def ship_every(self, seconds: float) -> None:
        """Every replica pulls the primary's log this often (replication lag ≈ RTT + this)."""
        for host in self.replicas:
            self.config(host, {"ship_interval_s": seconds})

    def pause(self, host: str) -> None:
        self.config(host, {"paused": True})

    def resume(self, host: str) -> None:
        self.config(host, {"paused": False})

    def metrics(self, host: str) -> dict[str, Any]:
        return call(self.targets[self._host(host)], "GET", protocol.METRICS)

    def positions(self) -> dict[str, int]:
        """Each database's position: the last txid it has applied."""
        return {host: self.position(host)["position"] for host in self.services}

    def position(self, host: str) -> dict[str, Any]:
        """`host`'s role, position, the head it last saw, and its lag (kit.services.db)."""
        return call(self.targets[self._host(host)], "GET", protocol.DB_POSITION)

    def stop(self) -> None:
        """Stop every database before the world stops (their files go with the world)."""
        for host, service in self.services.items():
            self.world.stop_service(service)
            Path(self.targets[host].removeprefix("unix:")).unlink(missing_ok=True)

    def _host(self, host: str) -> str:
        if host not in self.services:
            raise ValueError(f"no database on {host!r}; there are: {', '.join(self.services)}")
        return host

    def __repr__(self) -> str:
        return f"<Database primary {self.primary}, replicas {', '.join(self.replicas)}>"


def start_database(
    world: World,
    primary: str = "db-primary",
    replicas: tuple[str, ...] = ("db-eu", "db-ap"),
    timeout: float = 20.0,
) -> Database:
    """Start the primary on `primary` and a replica of it on each of `replicas`."""
    scratch = Path(world.record.scratch)
    services: dict[str, Service] = {}
    primary_url = f"http://{world.ip(primary)}:{PORT}"
    for host in (primary, *replicas):
        socket = scratch / f"{host}.db.sock"
        socket.unlink(missing_ok=True)
        argv = ["python", "-m", "kit.services.db", "--host", "0.0.0.0", "--port", str(PORT)]
        argv += ["--db", str(scratch / f"{host}.sqlite"), "--log-sample", "0"]
        argv += ["--unix", str(socket)] + (["--primary", primary_url] if host != primary else [])
        services[host] = world.launch_service(host, argv, name="db", health_url=f"unix:{socket}")
    wait_healthy(list(services.values()), timeout)
    return Database(world, primary, services)
