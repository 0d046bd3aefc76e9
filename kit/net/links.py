"""Link emulation: one API, two mechanisms, chosen once per machine.

Every link of a world has ``LinkParams`` (TCLink's meaning: ``delay_ms`` and
``jitter_ms`` and ``loss_pct`` per direction, ``bw_mbit``). Two mechanisms
apply them:

``netem``
    The kernel's ``sch_netem`` qdisc on both ends of a direct veth pair, under an
    HTB class when the link has a bandwidth: what Mininet's TCLink does.

``delayline``
    For kernels without ``sch_netem`` (WSL2, minimal cloud and CI kernels), which
    cannot load it. The link becomes A--[aN bN]--B through a hidden node, and one
    process per world (``kit/net/delayline.py``) delays, jitters and drops frames
    between aN and bN. Bandwidth still uses HTB on A's and B's interfaces, which
    every kernel here has.

``probe()`` tries netem once in a throwaway namespace (``unshare --net``: nothing
is left behind) and caches the answer; ``EDGELAB_LINKS=netem|delayline``
overrides it. ``doctor`` prints what was chosen and why.

The world sees one interface, ``Links`` (``links_for(mechanism)`` gives one):

    wire(net, link, macs)      make the link's veth pair(s) in a Mininet net
    setup_commands(link)       shell commands per host when the world is configured
    start(world)               start what it runs (the delay line), once hosts are up
    params_commands(link)      shell commands per host giving a link its params
    stop()

``NetemLinks`` wires A--B directly and puts netem (and HTB) on both ends;
``DelayLineLinks`` wires A--[aN bN]--B through the hidden host ``dl`` and hands
delay, jitter and loss to its process, keeping only HTB on the ends.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mininet.link import Link

from kit.net.procs import stop_process
from kit.net.topology import LinkParams

MECHANISMS = ("netem", "delayline")
DELAYLINE_SCRIPT = Path(__file__).with_name("delayline.py")


@dataclass(frozen=True)
class Choice:
    mechanism: str
    why: str


@functools.cache
def netem_available() -> tuple[bool, str]:
    """Can this kernel run netem? (answer, the kernel's words when it cannot)."""
    try:
        r = subprocess.run(
            [
                "unshare",
                "--net",
                "tc",
                "qdisc",
                "add",
                "dev",
                "lo",
                "root",
                "netem",
                "delay",
                "1ms",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    return r.returncode == 0, (r.stderr or r.stdout).strip()


def probe(forced: str | None = None) -> Choice:
    """Pick the link mechanism: ``forced``, else ``$EDGELAB_LINKS``, else what the kernel has."""
    source = "asked for" if forced else "set by EDGELAB_LINKS"
    forced = forced or os.environ.get("EDGELAB_LINKS", "").strip()
    ok, said = netem_available()
    if forced:
        if forced not in MECHANISMS:
            raise ValueError(f"link mechanism {forced!r}: choose one of {', '.join(MECHANISMS)}")
        if forced == "netem" and not ok:
            raise RuntimeError(f"netem was {source}, but this kernel has no netem: {said}")
        return Choice(forced, source)
    if ok:
        return Choice("netem", "the kernel has sch_netem")
    return Choice("delayline", f"the kernel has no sch_netem ({said or 'tc failed'})")


def tc_commands(intf: str, p: LinkParams, netem: bool) -> list[str]:
    """Shell commands that give one interface its egress bandwidth (and netem).

    Starts from a clean slate, so calling it again changes a running link.
    """
    cmds = [f"tc qdisc del dev {intf} root 2>/dev/null || true"]
    parent = "root"
    if p.bw_mbit:
        cmds += [
            f"tc qdisc add dev {intf} root handle 5: htb default 1",
            f"tc class add dev {intf} parent 5: classid 5:1 htb rate {p.bw_mbit:g}mbit burst 15k",
        ]
        parent = "parent 5:1"
    if netem and (p.delay_ms or p.jitter_ms or p.loss_pct):
        spec = f"delay {p.delay_ms:g}ms"
        if p.jitter_ms:
            spec += f" {p.jitter_ms:g}ms"
        if p.loss_pct:
            spec += f" loss {p.loss_pct:g}%"
        cmds.append(f"tc qdisc add dev {intf} {parent} handle 10: netem {spec}")
    return cmds


def _direction(p: LinkParams) -> dict[str, float]:
    return {"delay_ms": p.delay_ms, "jitter_ms": p.jitter_ms, "loss_pct": p.loss_pct}


class DelayLine:
    """The one delay-line process of a world, driven through its standard input."""

    def __init__(self, world: Any, links: dict[str, LinkParams], seed: int = 1) -> None:
        """Start the process in the hidden host ``dl`` for links aN/bN, N in ``links``."""
        config = {
            "links": {
                lid: {"a": f"a{lid}", "b": f"b{lid}", "ab": _direction(p), "ba": _direction(p)}
                for lid, p in links.items()
            },
            "seed": seed,
        }
        self.proc = world.popen(
            "dl",
            [sys.executable, str(DELAYLINE_SCRIPT)],
            own_session=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._send(config)
        ready = self.proc.stdout.readline()
        if '"ready"' not in ready:
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            raise RuntimeError(f"the delay line did not start: {ready.strip()} {err.strip()}")

    def _send(self, msg: dict) -> None:
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()

    def set(self, lid: str, p: LinkParams, direction: str = "both") -> None:
        """Change delay, jitter and loss of one link (``ab``, ``ba`` or ``both`` ways)."""
        for d in ("ab", "ba") if direction == "both" else (direction,):
            self._send({"set": lid, "dir": d, **_direction(p)})

    def stats(self) -> dict:
        """Frames sent, dropped and queued per link direction, and the timing correction."""
        self._send({"stats": True})
        return json.loads(self.proc.stdout.readline())

    def stop(self) -> None:
        stop_process(self.proc, 2, ask=self.proc.stdin.close)  # it exits when its input closes
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            f.close()


class Links:
    """How a world's links get their parameters: what the world asks of a mechanism."""

    name = ""
    hidden_hosts: tuple[str, ...] = ()  # hosts it needs besides the world's own
    netem = False  # whether tc should add netem under the bandwidth

    def __init__(self) -> None:
        self.shaped: set[str] = set()  # links whose ends have a tc qdisc of ours

    def wire(self, net: Any, link: Any, macs: list[str]) -> None:
        """Make the veth pair(s) of one link; ``macs``: A's, B's, and two spare."""
        raise NotImplementedError

    def setup_commands(self, link: Any) -> dict[str, list[str]]:
        """Shell commands per host that this link needs when the world is configured."""
        return {}

    def start(self, world: Any) -> None:
        """Start whatever runs the links (nothing, for netem)."""

    def params_commands(self, link: Any) -> dict[str, list[str]]:
        """Give a link its current params: tc commands per host (run by the caller).

        tc is needed for netem, for a bandwidth, and to remove one set earlier.
        """
        p = link.params
        if not (self.netem or p.bw_mbit or link.id in self.shaped):
            return {}
        self.shaped.add(link.id)
        return {
            link.a: tc_commands(link.a_intf, p, self.netem),
            link.b: tc_commands(link.b_intf, p, self.netem),
        }

    def stop(self) -> None:
        """Stop what ``start`` started."""


class NetemLinks(Links):
    """A--B as one veth pair; the kernel's netem on both ends does the rest."""

    name = "netem"
    netem = True

    def wire(self, net: Any, link: Any, macs: list[str]) -> None:
        Link(
            net.get(link.a),
            net.get(link.b),
            intfName1=link.a_intf,
            intfName2=link.b_intf,
            addr1=macs[0],
            addr2=macs[1],
        )


class DelayLineLinks(Links):
    """A--[aN bN]--B through the hidden host ``dl``, whose process delays the frames."""

    name = "delayline"
    hidden_hosts = ("dl",)

    def __init__(self) -> None:
        super().__init__()
        self.line: DelayLine | None = None

    def wire(self, net: Any, link: Any, macs: list[str]) -> None:
        dl, lid = net.get("dl"), link.id
        Link(
            net.get(link.a),
            dl,
            intfName1=link.a_intf,
            intfName2=f"a{lid}",
            addr1=macs[0],
            addr2=macs[2],
        )
        Link(
            dl,
            net.get(link.b),
            intfName1=f"b{lid}",
            intfName2=link.b_intf,
            addr1=macs[3],
            addr2=macs[1],
        )

    def setup_commands(self, link: Any) -> dict[str, list[str]]:
        return {"dl": [f"ip link set a{link.id} up", f"ip link set b{link.id} up"]}

    def start(self, world: Any) -> None:
        links = {lk.id: lk.params for lk in world.links.values()}
        self.line = DelayLine(world, links, seed=world.seed)
        world.record.add_process(self.line.proc.pid, "delay line")

    def params_commands(self, link: Any) -> dict[str, list[str]]:
        if self.line:
            self.line.set(link.id, link.params)
        return super().params_commands(link)

    def stop(self) -> None:
        if self.line:
            self.line.stop()
            self.line = None


def links_for(mechanism: str) -> Links:
    """The ``Links`` of a mechanism named by ``probe()``."""
    return {"netem": NetemLinks, "delayline": DelayLineLinks}[mechanism]()
