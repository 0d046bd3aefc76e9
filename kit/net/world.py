"""The emulated world: a Mininet network built from a ``WorldSpec``.

    with World() as world:                      # the textbook's default world
        world.ping("user-tokyo", "pop-tokyo")   # -> list of RTTs in ms
        world.fail_node("pop-tokyo")            # Tokyo's anycast moves on

Building a world
----------------
Every host is a Mininet ``Host`` (a shell in its own network namespace): one
router per region, and each PoP, origin, database, client and IoT device. There
are no switches: each link is a point-to-point veth pair, so nothing of a world
lives in the root namespace and two worlds can run side by side. Routers forward
IPv4; the kit installs their routes (see ``kit.net.routing``).

Each link gets its ``LinkParams`` from the chosen mechanism (``kit.net.links``):
netem on the link's ends, or the delay line through the hidden node ``dl``.
MAC addresses are fixed and ARP entries static, so no first packet waits for ARP.

Faults
------
``fail_node``/``restore_node`` take a node (or a region: its router) off the
network by setting its interfaces down; ``cut_link``/``restore_link`` do it to one
link; ``partition``/``heal`` cut every backbone link between two sides. After
every change the routes are recomputed from what is still up, as a converged
routing protocol would, and anycast moves to the nearest healthy PoP.
``set_link`` changes delay, jitter, loss or bandwidth of a running link; routes
keep using the description's latencies, as real routing costs would.

Lifecycle
---------
``start()`` first removes whatever crashed worlds left behind (``registry.clean``),
then records every process it starts. ``stop()`` (also on ``with`` exit and at
interpreter exit) stops services, the delay line and hosts, and removes the
record. Processes carry ``PR_SET_PDEATHSIG``, so a killed kernel takes its world
with it; ``python -m kit clean`` removes anything that still survived.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import re
import subprocess
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import Host

from kit.net import registry, routing
from kit.net.links import Links, links_for, probe
from kit.net.procs import Service, wait_healthy
from kit.net.topology import LinkParams, WorldSpec, backbone_subnet, default_world, parse_world

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG, SIGKILL = 1, 9
RTTPROBE = Path(__file__).with_name("rttprobe.py")


def _die_with_owner() -> None:
    """Runs in each child before exec: die when the world's owner dies."""
    _libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)


def require_root() -> None:
    """Worlds are network namespaces: they need Linux and root. Say so plainly."""
    if not sys.platform.startswith("linux"):
        raise WorldError(
            "Edge Lab's worlds run on Linux only (network namespaces). On another system, "
            "use the Vagrant VM: see README.md."
        )
    if os.geteuid() != 0:
        raise WorldError(
            "Edge Lab's worlds need root: Mininet creates network namespaces and links. "
            "Start JupyterLab with `sudo make lab` (or use the Vagrant VM)."
        )


class WorldHost(Host):
    """A Mininet host whose processes carry the world's mark and die with its owner."""

    def _popen(self, cmd: list[str], **params: Any) -> subprocess.Popen:
        env = {**os.environ, **(params.pop("env", None) or {})}
        env[registry.MARK] = self.params["world_id"]
        params.setdefault("preexec_fn", _die_with_owner)
        return super()._popen(cmd, env=env, **params)


@dataclass
class WorldLink:
    """One emulated link: its two ends (node, interface, address) and current params."""

    id: str
    a: str
    b: str
    a_intf: str
    b_intf: str
    a_ip: str
    b_ip: str
    params: LinkParams
    backbone: bool

    def other(self, node: str) -> tuple[str, str]:
        """(peer node, peer address) seen from ``node``."""
        return (self.b, self.b_ip) if node == self.a else (self.a, self.a_ip)


@dataclass
class Echoes:
    """What came back from a series of ICMP echoes."""

    rtts: list[float]  # ms, in order of sending; lost echoes are missing
    reordered: int  # replies that arrived after a later one


class WorldError(RuntimeError):
    """Something a learner asked of a world that it cannot do; the message says why."""


_running: weakref.WeakSet[World] = weakref.WeakSet()


class World:
    """An emulated world of PoPs, origins, users and devices (see the module docstring)."""

    def __init__(
        self,
        spec: WorldSpec | dict | None = None,
        *,
        links: str | None = None,
        seed: int = 1,
    ) -> None:
        if spec is None:
            spec = default_world()
        self.spec = spec if isinstance(spec, WorldSpec) else parse_world(spec)
        self.seed = seed
        self._forced_mechanism = links
        self.startup_s = 0.0
        self._lock = threading.RLock()  # a fault schedule may run in a background thread
        self._forget()

    def _forget(self) -> None:
        """The state of a stopped world: nothing running, no faults, no routes."""
        self.net: Mininet | None = None
        self.record: registry.Record | None = None
        self.linker: Links | None = None  # the link mechanism, chosen at start
        self.links: dict[frozenset[str], WorldLink] = {}
        self.services: list[Service] = []
        self.failed: set[str] = set()
        self.cut: set[frozenset[str]] = set()
        self._partition_cuts: set[frozenset[str]] = set()
        self._routes: dict[str, dict[str, str]] = {}  # router -> the routes it has
        self._link_up: dict[str, bool] = {}
        self._owner: dict[str, str] = {}  # link address -> node that has it
        self.graph: routing.Graph | None = None

    # -- lifecycle ----------------------------------------------------------------

    def start(self, progress: Callable[[str], None] | None = None) -> World:
        """Build and start the world; ``progress`` gets a line per step."""
        say = progress or (lambda _msg: None)
        if self.net is not None:
            raise WorldError("this world is already running; call world.stop() first")
        require_root()
        t0 = time.monotonic()
        for old in list(_running):  # a notebook cell run twice: one world is enough
            if old.spec.name == self.spec.name:
                replaced = f"stopping the {old.spec.name!r} world this process started earlier"
                say(replaced)
                warnings.warn(f"{replaced}: one world per name", stacklevel=2)
                old.stop()
        for wid, n in registry.clean():
            say(f"removed {n} processes left by crashed world {wid}")

        self.linker = links_for(probe(self._forced_mechanism).mechanism)
        setLogLevel("error")  # Mininet's info lines go to stderr, which nbval compares
        self.record = registry.Record.create(self.spec.name)
        _running.add(self)
        atexit.register(self.stop)
        try:
            say(f"creating {len(self.spec.regions) + len(self.spec.nodes)} hosts")
            self._create_hosts()
            say(f"linking them ({self.mechanism})")
            self._create_links()
            self._configure_hosts()
            self.linker.start(self)
            self._apply_link_params(self.links.values())
            say("installing routes")
            self._apply_faults()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - t0
        say(f"world {self.spec.name!r} is up in {self.startup_s:.1f} s")
        return self

    def stop(self) -> None:
        """Stop everything the world started; safe to call twice."""
        if self.record is None:
            return
        for svc in self.services:
            svc.stop()
        if self.linker:
            self.linker.stop()
        if self.net is not None:
            for host in self.net.hosts:
                host.terminate()
        registry.reap(self.record)  # whatever the learner started in the hosts
        self._forget()
        _running.discard(self)
        atexit.unregister(self.stop)

    def __enter__(self) -> World:
        return self if self.net is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self.net is not None

    @property
    def mechanism(self) -> str:
        """How links are emulated: "netem" or "delayline" ("" until started)."""
        return self.linker.name if self.linker else ""

    # -- building -------------------------------------------------------------------

    def _create_hosts(self) -> None:
        self.net = Mininet(topo=None, build=False, controller=None, host=WorldHost)
        params = {"ip": None, "world_id": self.record.id}
        names = [r.router for r in self.spec.regions.values()] + list(self.spec.nodes)
        names += self.linker.hidden_hosts
        for name in names:
            host = self.net.addHost(name, **params)
            self.record.add_process(host.pid, f"shell of {name}", host_shell=True)

    def _create_links(self) -> None:
        spec, n_intf = self.spec, {}
        mac = iter(range(1, 1 << 24))

        def new_intf(node: str) -> str:
            n_intf[node] = n_intf.get(node, -1) + 1
            return f"eth{n_intf[node]}"

        def add(a: str, b: str, a_ip: str, b_ip: str, p: LinkParams, backbone: bool) -> None:
            lid = str(len(self.links))
            lk = WorldLink(lid, a, b, new_intf(a), new_intf(b), a_ip, b_ip, p, backbone)
            self.links[frozenset((a, b))] = lk
            self._owner[a_ip], self._owner[b_ip] = a, b
            # Fixed, unique MACs: 02:ed:... is a locally administered range.
            macs = [
                f"02:ed:{(m >> 16) & 255:02x}:{(m >> 8) & 255:02x}:{m & 255:02x}:00"
                for m in (next(mac), next(mac), next(mac), next(mac))
            ]
            self._macs[(a, lk.a_intf)], self._macs[(b, lk.b_intf)] = macs[:2]
            self.linker.wire(self.net, lk, macs)

        self._macs: dict[tuple[str, str], str] = {}
        for bb in spec.backbone:
            net30 = backbone_subnet(bb.number)
            ra, rb = spec.regions[bb.a].router, spec.regions[bb.b].router
            add(ra, rb, str(net30[1]), str(net30[2]), bb.params, True)
        for node in spec.nodes.values():
            region = spec.regions[node.region]
            sub = node.subnet(region)
            add(region.router, node.name, str(sub[1]), str(sub[2]), node.access, False)

    def _configure_hosts(self) -> None:
        """Addresses, static ARP, forwarding and default routes, one script per host."""
        quiet = "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
        scripts: dict[str, list[str]] = {
            h.name: [quiet, "ip link set lo up"] for h in self.net.hosts
        }
        for region in self.spec.regions.values():
            scripts[region.router] += [
                "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 "
                "net.ipv4.conf.default.rp_filter=0",
                f"ip addr add {region.router_ip}/32 dev lo",
            ]
        for lk in self.links.values():
            plen = 30 if lk.backbone else 24
            scripts[lk.a].append(f"ip addr add {lk.a_ip}/{plen} dev {lk.a_intf}")
            scripts[lk.b].append(f"ip addr add {lk.b_ip}/{plen} dev {lk.b_intf}")
            for node, lines in [
                *self._link_up_commands(lk).items(),
                *self.linker.setup_commands(lk).items(),
            ]:
                scripts[node] += lines
        for node in self.spec.nodes.values():
            if node.kind == "pop":
                scripts[node.name].append(f"ip addr add {self.spec.anycast}/32 dev lo")
        self._run_scripts(scripts)

    def _link_up_commands(self, lk: WorldLink) -> dict[str, list[str]]:
        """Bring a link's ends up with their static ARP entry and, on a host, its default route.

        Setting an interface down makes the kernel forget its routes and ARP entries,
        so restoring a link runs these again (routers get their routes re-installed).
        """
        cmds: dict[str, list[str]] = {}
        for node, intf in ((lk.a, lk.a_intf), (lk.b, lk.b_intf)):
            peer, peer_ip = lk.other(node)
            peer_intf = lk.b_intf if node == lk.a else lk.a_intf
            cmds[node] = [
                f"ip link set {intf} up",
                f"ip neigh replace {peer_ip} lladdr {self._macs[(peer, peer_intf)]} "
                f"dev {intf} nud permanent",
            ]
            if node in self.spec.nodes:  # a host's only link: its way out
                cmds[node].append(f"ip route replace default via {peer_ip}")
        return cmds

    def _run_scripts(self, scripts: dict[str, list[str]]) -> None:
        """Run one shell script per host, all at once, and fail loudly on any error."""
        procs = {
            name: self.popen(
                name,
                ["sh", "-ec", "\n".join(lines)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for name, lines in scripts.items()
            if lines
        }
        errors = []
        for name, p in procs.items():
            out = p.communicate()[0]
            if p.returncode:
                errors.append(f"{name}: {out.strip()}")
        if errors:
            raise WorldError("configuring hosts failed:\n" + "\n".join(errors))

    def _apply_link_params(self, links: Iterable[WorldLink]) -> None:
        with self._lock:
            self._apply_link_params_locked(links)

    def _apply_link_params_locked(self, links: Iterable[WorldLink]) -> None:
        scripts: dict[str, list[str]] = {}
        for lk in links:
            for node, lines in self.linker.params_commands(lk).items():
                scripts.setdefault(node, []).extend(lines)
        self._run_scripts(scripts)

    # -- routing and faults ------------------------------------------------------------

    def _apply_faults(self) -> None:
        """Set every link up or down and every route to match the faults in force."""
        with self._lock:
            self._apply_faults_locked()

    def _apply_faults_locked(self) -> None:
        spec = self.spec
        down_nodes = {self._node_of(n) for n in self.failed}
        cuts = self.cut | self._partition_cuts
        updown: dict[str, list[str]] = {}
        for key, lk in self.links.items():
            up = key not in cuts and lk.a not in down_nodes and lk.b not in down_nodes
            was_up = self._link_up.get(lk.id, True)  # links are built up
            self._link_up[lk.id] = up
            if up and not was_up:
                for node, lines in self._link_up_commands(lk).items():
                    updown.setdefault(node, []).extend(lines)
                    self._routes.pop(node, None)  # the kernel dropped them: install all again
            elif was_up and not up:
                updown.setdefault(lk.a, []).append(f"ip link set {lk.a_intf} down")
                updown.setdefault(lk.b, []).append(f"ip link set {lk.b_intf} down")
        self._run_scripts(updown)

        down_regions = frozenset(r.name for r in spec.regions.values() if r.router in down_nodes)
        region_cuts = frozenset(
            frozenset(spec.regions[r].name for r in self._regions_of_link(k))
            for k in cuts
            if self.links[k].backbone
        )
        graph = routing.backbone_graph(spec, down_regions, region_cuts)
        pops = [p.name for p in spec.of_kind("pop") if self._reachable_node(p.name, down_nodes)]
        scripts: dict[str, list[str]] = {}
        for region in spec.regions.values():
            if region.name in down_regions:
                continue
            want = self._router_routes(region.name, graph, pops)
            have = self._routes.get(region.router, {})
            cmds = [
                f"ip route replace unreachable {pfx}"
                if how == "unreachable"
                else f"ip route replace {pfx} {how}"
                for pfx, how in want.items()
                if have.get(pfx) != how
            ]
            if cmds:
                scripts[region.router] = cmds
            self._routes[region.router] = want
        self._run_scripts(scripts)
        self.graph = graph

    def _reachable_node(self, node: str, down_nodes: set[str]) -> bool:
        """A node is healthy when it is up and its access link is not cut."""
        region = self.spec.regions[self.spec.nodes[node].region]
        key = frozenset((region.router, node))
        cuts = self.cut | self._partition_cuts
        return node not in down_nodes and region.router not in down_nodes and key not in cuts

    def _regions_of_link(self, key: frozenset[str]) -> list[str]:
        by_router = {r.router: r.name for r in self.spec.regions.values()}
        return [by_router[n] for n in key]

    def _router_routes(self, region: str, graph: routing.Graph, pops: list[str]) -> dict[str, str]:
        """The routing table one region router should have: prefix -> 'via X' or 'unreachable'."""
        spec = self.spec
        me = spec.regions[region]
        dist, hops = routing.shortest_paths(graph, region)
        routes: dict[str, str] = {}

        def via_region(target: str) -> str:
            lk = self.links[frozenset((me.router, spec.regions[hops[target]].router))]
            return f"via {lk.other(me.router)[1]}"

        for other in spec.regions.values():
            if other.name != region:
                routes[str(other.prefix)] = (
                    via_region(other.name) if other.name in hops else "unreachable"
                )
        best = routing.nearest_pop(spec, graph, region, pops)
        anycast = f"{spec.anycast}/32"
        if best is None:
            routes[anycast] = "unreachable"
        elif spec.nodes[best[0]].region == region:
            routes[anycast] = f"via {self.ip(best[0])}"
        else:
            routes[anycast] = via_region(spec.nodes[best[0]].region)
        return routes

    def _node_of(self, name: str) -> str:
        """A node name, or a region name meaning its router."""
        if name in self.spec.nodes:
            return name
        if name in self.spec.regions:
            return self.spec.regions[name].router
        if any(r.router == name for r in self.spec.regions.values()):
            return name
        raise WorldError(
            f"no node or region named {name!r}; nodes: {', '.join(self.spec.nodes)}; "
            f"regions: {', '.join(self.spec.regions)}"
        )

    def _link_key(self, a: str, b: str | None) -> frozenset[str]:
        """The link between two nodes/regions, or a node's access link when ``b`` is None."""
        na = self._node_of(a)
        if b is None:
            if na not in self.spec.nodes:
                raise WorldError(f"{a!r} is a region; name the other end of the link too")
            nb = self.spec.regions[self.spec.nodes[na].region].router
        else:
            nb = self._node_of(b)
        key = frozenset((na, nb))
        if key not in self.links:
            raise WorldError(f"there is no link between {na!r} and {nb!r}")
        return key

    def _require_running(self) -> None:
        if self.net is None:
            raise WorldError("the world is not running; start it with world.start()")

    def fail_node(self, name: str) -> None:
        """Take a node (or a region's router) off the network."""
        self._require_running()
        self.failed.add(self._node_of(name))
        self._apply_faults()

    def restore_node(self, name: str) -> None:
        self._require_running()
        self.failed.discard(self._node_of(name))
        self._apply_faults()

    def cut_link(self, a: str, b: str | None = None) -> None:
        """Cut the link between ``a`` and ``b`` (or ``a``'s access link)."""
        self._require_running()
        self.cut.add(self._link_key(a, b))
        self._apply_faults()

    def restore_link(self, a: str, b: str | None = None) -> None:
        self._require_running()
        self.cut.discard(self._link_key(a, b))
        self._apply_faults()

    def partition(self, side_a: Iterable[str], side_b: Iterable[str] | None = None) -> list[str]:
        """Cut every backbone link between two sides (regions or nodes, meaning their region).

        ``side_b`` defaults to every other region; if given, every region must be on a side.
        Returns the links cut, as ``a--b``.
        """
        self._require_running()
        a = {self._region_of(n) for n in side_a}
        b = (
            {self._region_of(n) for n in side_b}
            if side_b is not None
            else set(self.spec.regions) - a
        )
        if a & b:
            raise WorldError(f"regions on both sides: {', '.join(sorted(a & b))}")
        missing = set(self.spec.regions) - a - b
        if missing:
            raise WorldError(f"regions on neither side: {', '.join(sorted(missing))}")
        cuts = set()
        for bb in self.spec.backbone:
            if (bb.a in a and bb.b in b) or (bb.a in b and bb.b in a):
                cuts.add(
                    frozenset((self.spec.regions[bb.a].router, self.spec.regions[bb.b].router))
                )
        self._partition_cuts |= cuts
        self._apply_faults()
        return sorted("--".join(sorted(k)) for k in cuts)

    def heal(self) -> None:
        """Undo every partition."""
        self._require_running()
        self._partition_cuts.clear()
        self._apply_faults()

    def _region_of(self, name: str) -> str:
        node = self._node_of(name)
        if node in self.spec.nodes:
            return self.spec.nodes[node].region
        return next(r.name for r in self.spec.regions.values() if r.router == node)

    def set_link(
        self,
        a: str,
        b: str | None = None,
        *,
        rtt_ms: float | None = None,
        delay_ms: float | None = None,
        jitter_ms: float | None = None,
        loss_pct: float | None = None,
        bw_mbit: float | None = None,
    ) -> LinkParams:
        """Change a running link: ``rtt_ms`` (or one-way ``delay_ms``), jitter, loss, bandwidth.

        ``bw_mbit=0`` removes a bandwidth limit. Returns the link's new parameters.
        """
        self._require_running()
        lk = self.links[self._link_key(a, b)]
        changes: dict[str, Any] = {}
        if rtt_ms is not None:
            delay_ms = rtt_ms / 2
        for field, value in (
            ("delay_ms", delay_ms),
            ("jitter_ms", jitter_ms),
            ("loss_pct", loss_pct),
        ):
            if value is not None:
                if value < 0 or (field == "loss_pct" and value > 100):
                    raise WorldError(f"{field}={value} is out of range")
                changes[field] = float(value)
        if bw_mbit is not None:
            if bw_mbit < 0:
                raise WorldError(f"bw_mbit={bw_mbit} is out of range")
            changes["bw_mbit"] = float(bw_mbit) or None
        lk.params = replace(lk.params, **changes)
        self._apply_link_params([lk])
        return lk.params

    def link(self, a: str, b: str | None = None) -> WorldLink:
        """The link between two nodes/regions (or a node's access link)."""
        return self.links[self._link_key(a, b)]

    # -- looking at the world ---------------------------------------------------------

    def ip(self, name: str) -> str:
        """The address of a node, or of a region's router."""
        return self.spec.ip(self._node_of(name))

    def host(self, name: str) -> Host:
        """The Mininet host of a node (``host.cmd('...')`` runs a shell command on it)."""
        self._require_running()
        return self.net.get(self._node_of(name))

    def configured_rtt(self, a: str, b: str) -> float | None:
        """The RTT the description gives between two nodes, along today's routes."""
        return routing.configured_rtt(self.spec, a, b, self.graph if self.running else None)

    def anycast_pop(self, region: str) -> str | None:
        """Which PoP the anycast address reaches from ``region`` right now."""
        self._require_running()
        node = self.spec.regions[self._region_of(region)].router
        anycast = f"{self.spec.anycast}/32"
        while node not in self.spec.nodes:  # follow the next hops, router by router
            how = self._routes.get(node, {}).get(anycast, "unreachable")
            if how == "unreachable":
                return None
            node = self._owner[how.split()[1]]
        return node

    def popen(
        self,
        host: str,
        argv: list[str],
        *,
        own_session: bool = False,
        record: str | None = None,
        **kwargs: Any,
    ) -> subprocess.Popen:
        """Start a process inside a host's namespace; every command the kit runs in a
        host goes through here.

        Like everything the world starts, it carries the world's mark and dies with
        the world's owner. A command stays in the caller's process group, so Ctrl-C
        in a notebook reaches it; ``own_session`` gives a long-running process (a
        service, a load run, the delay line) a session of its own instead, so an
        interrupted cell does not kill it and the kit stops it. ``record`` names
        it in the world's record, so a crashed world's clean-up finds it.
        """
        if self.net is None:
            self._require_running()
        node = self.net.get(host if host in self.linker.hidden_hosts else self._node_of(host))
        # WorldHost._popen adds the mark and the death signal; `mnexec -a PID` enters
        # the host's namespace, and `-d` (what Mininet's own popen always adds) starts
        # a new session.
        mnexec = ["mnexec", "-da" if own_session else "-a", str(node.pid)]
        proc = node._popen([*mnexec, *argv], **kwargs)
        if record:
            self.record.add_process(proc.pid, record)
        return proc

    def run(self, host: str, command: str, timeout: float = 60) -> str:
        """Run a shell command on a host and return its output (raises on failure).

        Output that is not UTF-8 (a binary body) comes back with U+FFFD in its place.
        """
        p = self.popen(
            host,
            ["sh", "-c", command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise WorldError(f"{command!r} on {host} ran past {timeout} s") from None
        if p.returncode:
            raise WorldError(f"{command!r} on {host} failed ({p.returncode}): {err.strip()}")
        return out

    def ping(self, a: str, b: str, count: int = 20, interval: float = 0.05) -> list[float]:
        """RTTs in ms of ``count`` ICMP echoes from ``a`` to ``b`` (a node, region or address)."""
        return self.ping_many([(a, b)], count, interval)[(a, b)]

    def ping_many(
        self, pairs: Iterable[tuple[str, str]], count: int = 20, interval: float = 0.05
    ) -> dict[tuple[str, str], list[float]]:
        """Measure several pairs at once; lost echoes are missing from the lists."""
        return {pair: e.rtts for pair, e in self.echoes(pairs, count, interval).items()}

    def echoes(
        self, pairs: Iterable[tuple[str, str]], count: int = 20, interval: float = 0.05
    ) -> dict[tuple[str, str], Echoes]:
        """RTTs and reordering of each pair, all pairs at once (``kit/net/rttprobe.py``)."""
        procs = {}
        for a, b in pairs:
            dst = b if re.fullmatch(r"[\d.]+", b) else self.ip(b)
            argv = [
                sys.executable,
                str(RTTPROBE),
                dst,
                "--count",
                str(count),
                "--interval",
                str(interval),
            ]
            procs[(a, b)] = self.popen(
                a, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        results = {}
        for pair, p in procs.items():
            out, err = p.communicate()
            if p.returncode:
                raise WorldError(f"measuring {pair[0]} -> {pair[1]} failed: {err.strip()}")
            data = json.loads(out)
            results[pair] = Echoes(data["rtts"], data["reordered"])
        return results

    def start_service(
        self, host: str, argv: list[str], *, timeout: float = 15.0, **options: Any
    ) -> Service:
        """Start a long-running process on a host and wait for its health URL.

        ``argv[0] == "python"`` means this interpreter, by its absolute path;
        ``options`` are ``launch_service``'s (name, health_url, env).
        """
        svc = self.launch_service(host, argv, **options)
        wait_healthy([svc], timeout)
        return svc

    def launch_service(
        self,
        host: str,
        argv: list[str],
        *,
        name: str | None = None,
        health_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Service:
        """Start a service and return at once; ``kit.net.procs.wait_healthy`` waits
        for several started side by side. It is the world's: ``stop()`` stops it."""
        self._require_running()
        if argv and argv[0] == "python":
            argv = [sys.executable, *argv[1:]]
        svc = Service(
            self, self._node_of(host), name or os.path.basename(argv[-1]), argv, health_url, env
        )
        self.services.append(svc)
        return svc.launch()

    def stop_service(self, svc: Service) -> None:
        """Stop one of the world's services before the world stops (safe to call twice)."""
        svc.stop()
        if svc in self.services:
            self.services.remove(svc)

    def table(self) -> list[dict[str, str]]:
        """One row per node: name, kind, region, city, address."""
        rows = [
            {
                "node": r.router,
                "kind": "router",
                "region": r.name,
                "city": r.city,
                "address": r.router_ip,
            }
            for r in self.spec.regions.values()
        ]
        rows += [
            {
                "node": n.name,
                "kind": n.kind,
                "region": n.region,
                "city": n.city,
                "address": self.spec.ip(n.name),
            }
            for n in self.spec.nodes.values()
        ]
        return rows

    def __repr__(self) -> str:
        state = f"running ({self.mechanism})" if self.running else "stopped"
        return f"<World {self.spec.name!r}: {len(self.spec.nodes)} nodes, {state}>"
