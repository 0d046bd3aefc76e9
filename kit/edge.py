"""The edge on a world: origins, and a PoP service on every PoP host.

This is the glue between the layers below it: it starts `kit.services`
processes (origin, pop) on the hosts of a `kit.net` world, and talks to them
over their control sockets with `kit.control`.

    from kit.net import World
    from kit.edge import start_edge
    from kit.control import deploy

    with World() as world:
        edge = start_edge(world)                 # origin + every PoP, ~1 s
        deploy(fetch, edge.pops)                 # over the control channel
        world.run("user-berlin", f"curl -si {edge.pop_url('pop-frankfurt')}/")
        edge.metrics("origin")["requests"]       # how much the edge spared it

    edge = start_edge(world, origins=("origin", "origin-eu"))

starts an origin on each host named. The first is the PoPs' ``env.origin``; a
handler reaches the others with ``env.fetch(url)``, given their URLs
(``edge.origin_url_of("origin-eu")``) in its config. Every origin names itself
in an ``x-origin`` header on each response.

Two planes
----------
Users' requests travel the emulated network: from a user host to a PoP's
address (``edge.pop_url(name)``) or the anycast address (``edge.anycast_url``),
and on from the PoP to an origin (``edge.origin_url``, ``edge.origin_url_of(name)``),
with the latencies of the real Internet. The notebook itself lives in the root
namespace and cannot reach those addresses, so every service also listens on a
Unix socket in the world's scratch folder (``--unix``; a path works across
namespaces). That is the control plane: ``deploy(code, edge.pops)``,
``edge.metrics``, ``edge.purge``, ``edge.origin_config``. It keeps working while
a fault cuts a PoP off the network, as a real provider's management network would.

Lifecycle
---------
The processes start side by side and the call returns when every one answers
its health check (a service that fails shows the end of its log). They are the
world's services: ``world.stop()`` stops them too. ``edge.stop()`` stops them
earlier and removes their sockets. One edge per world: starting another (a
notebook cell run twice) stops the previous one first.
"""

from __future__ import annotations

import json
import os
import secrets
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kit.control import call, protocol
from kit.db import Database
from kit.kv import KvStore
from kit.net.procs import Service, wait_healthy
from kit.net.world import World, WorldError

_edges: weakref.WeakSet[Edge] = weakref.WeakSet()


class Edge:
    """Running origins and PoPs on a world (see the module docstring)."""

    def __init__(
        self,
        world: World,
        origins: list[str],
        pops: list[str],
        port: int,
        services: dict[str, Service],
    ) -> None:
        self.world, self.port = world, port
        self.origins = origins  # host names; the first is the PoPs' env.origin
        self.origin = origins[0]
        self.services = services  # host name -> its Service (origins first)
        self.targets = {name: f"unix:{_socket_path(world, name)}" for name in [*origins, *pops]}
        self.pops: dict[str, str] = {name: self.targets[name] for name in pops}

    # -- where things are -----------------------------------------------------

    def _url(self, address: str) -> str:
        return f"http://{address}" if self.port == 80 else f"http://{address}:{self.port}"

    def pop_url(self, name: str) -> str:
        """A PoP's data-plane URL, e.g. ``http://10.2.20.2`` (reachable from world hosts)."""
        return self._url(self.world.ip(self._service(name, pops_only=True)))

    @property
    def anycast_url(self) -> str:
        """The address every PoP answers; the network takes each user to the nearest one."""
        return self._url(self.world.spec.anycast)

    @property
    def origin_url(self) -> str:
        """The PoPs' origin (the first one started), e.g. ``http://10.0.0.10``."""
        return self.origin_url_of(self.origin)

    def origin_url_of(self, name: str) -> str:
        """An origin's data-plane URL, e.g. ``http://10.3.20.2`` (reachable from world hosts)."""
        return self._url(self.world.ip(self._origin(name)))

    # -- the control plane ----------------------------------------------------

    def metrics(self, name: str) -> dict[str, Any]:
        """A service's counters: requests, bytes, cache hits, origin fetches, latencies."""
        return call(self.targets[self._service(name)], "GET", protocol.METRICS)

    def reset_metrics(self) -> None:
        """Zero the counters of the origins and every PoP."""
        for target in self.targets.values():
            call(target, "POST", protocol.METRICS_RESET)

    def purge(
        self,
        name: str | None = None,
        prefix: str = "",
        *,
        url: str | None = None,
        tag: str | None = None,
    ) -> int:
        """Empty one PoP's cache (or every PoP's); ``prefix`` limits it to paths under it.

        ``url="/a/b?c=1"`` purges that URL only (every variant of it), ``tag="blue"``
        every response whose ``Surrogate-Key`` or ``Cache-Tag`` named it. Returns how
        many entries were removed.
        """
        names = [self._service(name, pops_only=True)] if name else list(self.pops)
        if tag is not None:
            path = f"{protocol.CACHE}?tag={quote(tag, safe='')}"
        elif url is not None:
            path = f"{protocol.CACHE}?url={quote(url, safe='')}"
        else:
            path = f"{protocol.CACHE}?prefix={quote(prefix)}"
        return sum(call(self.pops[n], "DELETE", path)["purged"] for n in names)

    def rum(self, name: str) -> dict[str, Any]:
        """A PoP's RUM collector: its sketches per region and metric (kit/services/rum.py)."""
        return call(self.pops[self._service(name, pops_only=True)], "GET", protocol.RUM)

    def reset_rum(self) -> None:
        """Empty every PoP's RUM collector."""
        for target in self.pops.values():
            call(target, "DELETE", protocol.RUM)

    def origin_config(
        self, changes: dict[str, Any] | None = None, *, name: str | None = None
    ) -> dict[str, Any]:
        """Merge ``changes`` into an origin's config (think_ms, version, rules); return it.

        ``name`` picks the origin (default: the first, the PoPs' ``env.origin``).
        """
        target = self.targets[self._origin(name or self.origin)]
        if changes is None:
            return call(target, "GET", protocol.CONFIG)
        return call(target, "POST", protocol.CONFIG, changes)

    def evict(self, name: str) -> dict[str, Any]:
        """Unload a PoP's handler, as a platform evicts an idle isolate: the next request
        the handler serves there loads it again and pays the cold start."""
        return call(self.pops[self._service(name, pops_only=True)], "POST", protocol.EVICT)

    def log(self, name: str, tail: int | None = 20) -> str:
        """The end of a service's log (a handler's traceback lands in its PoP's log)."""
        return self.services[self._service(name)].log(tail)

    # -- lifecycle --------------------------------------------------------------

    @property
    def running(self) -> bool:
        return any(svc.running for svc in self.services.values())

    def stop(self) -> None:
        """Stop the origins and PoPs and remove their sockets; safe to call twice."""
        for svc in self.services.values():
            self.world.stop_service(svc)
        for target in self.targets.values():  # a service killed hard leaves its socket
            Path(target.removeprefix("unix:")).unlink(missing_ok=True)
        if self.world.record:  # the logs stay until the world stops, to be read
            _geo_path(self.world).unlink(missing_ok=True)
        _edges.discard(self)

    def __enter__(self) -> Edge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _origin(self, name: str) -> str:
        if name not in self.origins:
            raise WorldError(
                f"no origin {name!r} in this edge; its origins: {', '.join(self.origins)}"
            )
        return name

    def _service(self, name: str, pops_only: bool = False) -> str:
        known = self.pops if pops_only else self.services
        if name not in known:
            what = "PoPs" if pops_only else "services"
            raise WorldError(f"no {name!r} in this edge; its {what}: {', '.join(known)}")
        return name

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        origins = " + ".join(self.origins)
        return f"<Edge {origins} + {len(self.pops)} PoPs on port {self.port}: {state}>"


def start_edge(
    world: World,
    pops: Iterable[str] | None = None,
    *,
    origins: Iterable[str] = ("origin",),
    think_ms: float = 0,
    port: int = 80,
    timeout: float = 20.0,
    database: Database | None = None,
    kv: KvStore | None = None,
    replica_for: dict[str, str] | None = None,
) -> Edge:
    """Start an origin on each of ``origins`` and a PoP on each of ``pops`` (default: every PoP).

    The first origin is the one the PoPs serve from (``env.origin``); each origin
    sends its host name in ``x-origin``. ``think_ms`` is the origins' server time
    per request. With a ``database`` (``kit.db.start_database``), each PoP's
    handlers get ``env.db`` at the database nearest to it (by configured RTT); with
    a ``kv`` store (``kit.kv.start_kv``), ``env.kv`` and ``env.actors`` (whose
    directory lives in that store; ``kit/runtime/actors.py``). ``replica_for`` places a PoP's
    ``env.db`` elsewhere: ``{"pop-tokyo": "db-eu"}`` makes Tokyo's handlers query Frankfurt.
    Returns an ``Edge``.
    """
    if not world.running:
        raise WorldError(
            "the world is not running; start it first (world.start(), or `with World() as world:`)"
        )
    spec = world.spec
    names = [p.name for p in spec.of_kind("pop")] if pops is None else list(pops)
    origins = [origins] if isinstance(origins, str) else list(origins)
    for name in [*origins, *names]:
        if name not in spec.nodes:
            raise WorldError(f"no node {name!r} in this world; nodes: {', '.join(spec.nodes)}")
    if not names:
        raise WorldError("start_edge needs at least one PoP")
    if not origins:
        raise WorldError("start_edge needs at least one origin")
    twice = sorted({n for n in [*origins, *names] if [*origins, *names].count(n) > 1})
    if twice:
        raise WorldError(f"a host runs one service; named more than once: {', '.join(twice)}")
    for old in list(_edges):  # a notebook cell run twice: one edge per world
        if old.world is world:
            old.stop()

    geo = _geo_path(world)
    geo.write_text(json.dumps(spec.geo_table()))
    origin_url = f"http://{world.ip(origins[0])}:{port}"
    common = ["--host", "0.0.0.0", "--port", str(port), "--log-sample", "0"]
    commands = {
        name: ["-m", "kit.services.origin", "--name", name, "--think-ms", str(think_ms)]
        for name in origins
    }
    for name in names:
        commands[name] = ["-m", "kit.services.pop", "--pop", name, "--origin", origin_url]
        commands[name] += ["--geo", str(geo)]
        if database is not None:
            rtt = {db: world.configured_rtt(name, db) for db in database.services}
            nearest = min(rtt, key=lambda db: float("inf") if rtt[db] is None else rtt[db])
            chosen = (replica_for or {}).get(name, nearest)
            commands[name] += [
                "--db-replica",
                database.url(chosen),
                "--db-primary",
                database.url(),
            ]

    if kv is not None:  # actors: every PoP knows its peers, the directory, a shared secret
        peers = {name: f"http://{world.ip(name)}:{port}" for name in names}
        setup = {"directory": kv.url, "peers": peers, "secret": secrets.token_urlsafe(32)}
        kv.admit_peers(setup["secret"])  # the directory places actors for these PoPs only
        setup["folder"] = str(Path(world.record.scratch) / "actors")
        actors_file = Path(world.record.scratch) / "actors.json"
        actors_file.unlink(missing_ok=True)
        descriptor = os.open(actors_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:  # root-only: it holds the PoPs' secret
            json.dump(setup, file)
        for name in names:
            commands[name] += ["--kv", kv.url, "--actors", str(actors_file)]

    edge = Edge(world, origins, names, port, {})
    try:
        for host, argv in commands.items():
            control_socket = _socket_path(world, host)
            control_socket.unlink(missing_ok=True)  # left by a service killed hard
            edge.services[host] = world.launch_service(
                host,
                ["python", *argv, *common, "--unix", str(control_socket)],
                name=argv[1].rpartition(".")[2],  # "pop" or "origin": its log is HOST.pop.log
                health_url=f"unix:{control_socket}",
            )
        wait_healthy(list(edge.services.values()), timeout)
    except BaseException:
        edge.stop()
        raise
    _edges.add(edge)
    return edge


def _geo_path(world: World) -> Path:
    return Path(world.record.scratch) / "geo.json"


def _socket_path(world: World, host: str) -> Path:
    return Path(world.record.scratch) / f"{host}.sock"
