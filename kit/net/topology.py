"""The world as data: a declarative description, its validation, and its address plan.

A world is described by a plain dictionary (so it can live in JSON, a notebook cell
or a test) with four parts::

    {
      "name": "textbook",
      "regions":  {"tokyo": {"city": "Tokyo", "country": "JP", "lat": 35.7, "lon": 139.7}},
      "backbone": [{"a": "tokyo", "b": "virginia", "rtt_ms": 150}],
      "nodes":    {"pop-tokyo": {"kind": "pop", "region": "tokyo"}},
    }

``regions`` are metro areas, each with one router. ``backbone`` links join region
routers; ``rtt_ms`` is the round trip, so each direction is delayed by half of it
(the same convention as Mininet's TCLink, whose ``delay`` is per direction).
Optional link fields: ``jitter_ms``, ``loss_pct`` (each direction) and ``bw_mbit``.
``nodes`` are the hosts: PoPs, origins, databases, clients (users of a metro) and
IoT devices. Each hangs off its region's router by an access link whose RTT
defaults by kind (``ACCESS_RTT_MS``) and can be set with ``"access": {...}``.

``parse_world`` turns the dictionary into a frozen ``WorldSpec`` or raises
``WorldSpecError`` naming the bad field (``nodes.pop-tokio.region: unknown region
'tokio'; known: ...``). Nothing here touches the network: the address plan and
the geo table are pure functions of the description, so they are unit-tested
without Mininet.

Address plan (IPv4):
- region number i (1, 2, ... in the order given) owns 10.i.0.0/16;
- the j-th node of a region sits on its own access subnet 10.i.j.0/24, the
  router at .1 and the node at .2 (clients may add more addresses in their /24,
  which is the subnet the geo table maps to their city);
- backbone link k is the point-to-point subnet 10.0.x.y/30 (see ``backbone_subnet``);
- every PoP also answers the anycast address (``ANYCAST``) on its loopback.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from kit.net.cities import BACKBONE_RTT_MS, CITIES

KINDS = ("pop", "origin", "db", "client", "iot")
ANYCAST = "10.255.0.1"

# Default access-link round trip per kind of node, in ms: servers sit in a data
# centre next to the region's router; users pay a few ms of last mile.
ACCESS_RTT_MS = {"pop": 1.0, "origin": 1.0, "db": 1.0, "client": 4.0, "iot": 1.0}

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,19}$")


class WorldSpecError(ValueError):
    """A world description that cannot be built; the message names the field."""


@dataclass(frozen=True)
class LinkParams:
    """How a link treats traffic, per direction (TCLink's meaning of each field)."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    bw_mbit: float | None = None

    @property
    def rtt_ms(self) -> float:
        return 2 * self.delay_ms


@dataclass(frozen=True)
class Region:
    name: str
    number: int
    city: str
    country: str
    lat: float
    lon: float

    @property
    def router(self) -> str:
        """Name of the region's router host."""
        return f"r-{self.name}"

    @property
    def prefix(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"10.{self.number}.0.0/16")

    @property
    def router_ip(self) -> str:
        """The router's own address (on its loopback): 10.i.0.1."""
        return f"10.{self.number}.0.1"


@dataclass(frozen=True)
class Node:
    name: str
    kind: str
    region: str
    index: int  # j in 10.i.j.0/24
    access: LinkParams
    city: str
    country: str

    def subnet(self, region: Region) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"10.{region.number}.{self.index}.0/24")


@dataclass(frozen=True)
class Backbone:
    a: str
    b: str
    number: int
    params: LinkParams


@dataclass(frozen=True)
class WorldSpec:
    name: str
    regions: dict[str, Region]
    nodes: dict[str, Node]
    backbone: list[Backbone] = field(default_factory=list)
    anycast: str = ANYCAST

    # -- the address plan ---------------------------------------------------
    def ip(self, node: str) -> str:
        """The address of a node (or of a region router, by its ``r-`` name)."""
        if node in self.nodes:
            n = self.nodes[node]
            return str(n.subnet(self.regions[n.region])[2])
        for r in self.regions.values():
            if r.router == node:
                return r.router_ip
        raise KeyError(f"no node named {node!r} in world {self.name!r}")

    def of_kind(self, kind: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == kind]

    def geo_table(self) -> list[dict[str, str]]:
        """Client subnets and their place: what the edge runtime exposes as geo data."""
        rows = []
        for n in self.nodes.values():
            region = self.regions[n.region]
            rows.append(
                {
                    "subnet": str(n.subnet(region)),
                    "country": n.country,
                    "city": n.city,
                    "region": region.name,
                    "node": n.name,
                }
            )
        return rows


def backbone_subnet(number: int) -> ipaddress.IPv4Network:
    """The /30 of backbone link ``number`` (0, 1, ...) inside 10.0.0.0/16."""
    return ipaddress.IPv4Network(f"10.0.{number // 64}.{(number % 64) * 4}/30")


# -- parsing and validation ---------------------------------------------------


def _number(where: str, value: Any, low: float = 0.0, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WorldSpecError(f"{where}: expected a number, got {value!r}")
    if value < low or (high is not None and value > high):
        limit = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise WorldSpecError(f"{where}: {value!r} must be {limit}")
    return float(value)


def _keys(where: str, data: Any, allowed: set[str], required: set[str] = frozenset()) -> dict:
    if not isinstance(data, dict):
        raise WorldSpecError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = set(data) - allowed
    if unknown:
        raise WorldSpecError(
            f"{where}: unknown field {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(allowed))}"
        )
    missing = required - set(data)
    if missing:
        raise WorldSpecError(f"{where}: missing field {sorted(missing)[0]!r}")
    return data


LINK_FIELDS = {"rtt_ms", "jitter_ms", "loss_pct", "bw_mbit"}


def parse_link(where: str, data: dict, default_rtt: float | None = None) -> LinkParams:
    """Link fields of a description (``rtt_ms`` etc.) as per-direction ``LinkParams``."""
    if "rtt_ms" not in data and default_rtt is None:
        raise WorldSpecError(f"{where}: missing field 'rtt_ms'")
    rtt = _number(f"{where}.rtt_ms", data.get("rtt_ms", default_rtt), 0, 10_000)
    jitter = _number(f"{where}.jitter_ms", data.get("jitter_ms", 0), 0, 10_000)
    loss = _number(f"{where}.loss_pct", data.get("loss_pct", 0), 0, 100)
    bw = data.get("bw_mbit")
    if bw is not None:
        bw = _number(f"{where}.bw_mbit", bw, 0.01, 100_000)
    return LinkParams(delay_ms=rtt / 2, jitter_ms=jitter, loss_pct=loss, bw_mbit=bw)


def _name(where: str, name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise WorldSpecError(
            f"{where}: bad name {name!r}: use 1-20 lowercase letters, digits or '-', "
            "starting with a letter"
        )
    return name


def parse_world(data: dict) -> WorldSpec:
    """Validate a world description; raise ``WorldSpecError`` naming the bad field."""
    _keys("world", data, {"name", "regions", "backbone", "nodes", "anycast"}, {"regions", "nodes"})
    name = _name("name", data.get("name", "world"))

    regions: dict[str, Region] = {}
    raw_regions = _keys("regions", data["regions"], set(data["regions"] or {}))
    if not raw_regions:
        raise WorldSpecError("regions: a world needs at least one region")
    if len(raw_regions) > 250:
        raise WorldSpecError("regions: at most 250 regions (10.1-250.0.0/16)")
    for i, (rname, r) in enumerate(raw_regions.items(), start=1):
        where = f"regions.{rname}"
        _name(where, rname)
        _keys(where, r, {"city", "country", "lat", "lon"}, {"city", "country"})
        country = r["country"]
        if not (isinstance(country, str) and re.fullmatch(r"[A-Z]{2}", country)):
            raise WorldSpecError(f"{where}.country: {country!r} is not a two-letter ISO code")
        regions[rname] = Region(
            name=rname,
            number=i,
            city=str(r["city"]),
            country=country,
            lat=_number(f"{where}.lat", r.get("lat", 0.0), -90, 90),
            lon=_number(f"{where}.lon", r.get("lon", 0.0), -180, 180),
        )

    def region_of(where: str, value: Any) -> str:
        if value not in regions:
            raise WorldSpecError(f"{where}: unknown region {value!r}; known: {', '.join(regions)}")
        return value

    backbone: list[Backbone] = []
    seen: set[frozenset[str]] = set()
    raw_links = data.get("backbone", [])
    if not isinstance(raw_links, list):
        raise WorldSpecError("backbone: expected a list of links")
    for k, link in enumerate(raw_links):
        where = f"backbone[{k}]"
        _keys(where, link, {"a", "b"} | LINK_FIELDS, {"a", "b", "rtt_ms"})
        a, b = region_of(f"{where}.a", link["a"]), region_of(f"{where}.b", link["b"])
        if a == b:
            raise WorldSpecError(
                f"{where}: a link joins two different regions, not {a!r} to itself"
            )
        if frozenset((a, b)) in seen:
            raise WorldSpecError(f"{where}: a second link between {a!r} and {b!r}")
        seen.add(frozenset((a, b)))
        backbone.append(Backbone(a, b, k, parse_link(where, link)))

    nodes: dict[str, Node] = {}
    per_region: dict[str, int] = {}
    raw_nodes = _keys("nodes", data["nodes"], set(data["nodes"] or {}))
    for nname, n in raw_nodes.items():
        where = f"nodes.{nname}"
        _name(where, nname)
        if nname.startswith("r-") or nname == "dl":
            raise WorldSpecError(f"{where}: names 'r-*' and 'dl' are taken by routers and links")
        _keys(where, n, {"kind", "region", "access", "city", "country"}, {"kind", "region"})
        if n["kind"] not in KINDS:
            raise WorldSpecError(
                f"{where}.kind: unknown kind {n['kind']!r}; known: {', '.join(KINDS)}"
            )
        region = regions[region_of(f"{where}.region", n["region"])]
        access = _keys(f"{where}.access", n.get("access", {}), LINK_FIELDS)
        per_region[region.name] = per_region.get(region.name, 0) + 1
        if per_region[region.name] > 254:
            raise WorldSpecError(f"{where}: more than 254 nodes in region {region.name!r}")
        nodes[nname] = Node(
            name=nname,
            kind=n["kind"],
            region=region.name,
            index=per_region[region.name],
            access=parse_link(f"{where}.access", access, ACCESS_RTT_MS[n["kind"]]),
            city=str(n.get("city", region.city)),
            country=str(n.get("country", region.country)),
        )
    if not nodes:
        raise WorldSpecError("nodes: a world needs at least one node")

    anycast = data.get("anycast", ANYCAST)
    try:
        ipaddress.IPv4Address(anycast)
    except ValueError:
        raise WorldSpecError(f"anycast: {anycast!r} is not an IPv4 address") from None
    return WorldSpec(name, regions, nodes, backbone, anycast)


# -- the textbook's world -------------------------------------------------------


def default_description(extra_pops: int = 0) -> dict:
    """The textbook's running example as a description (a fresh dict to edit).

    ``extra_pops`` adds that many more PoPs, spread round-robin over the regions:
    the same description scaled up, for the many-PoP benchmark.
    """
    regions = {
        name: {"city": city, "country": cc, "lat": lat, "lon": lon}
        for name, (city, cc, lat, lon) in CITIES.items()
    }
    backbone = [{"a": a, "b": b, "rtt_ms": rtt} for a, b, rtt in BACKBONE_RTT_MS]
    # The factory's uplink: short but narrow (2 Mbit/s), the IoT chapter's bottleneck.
    backbone.append({"a": "factory", "b": "frankfurt", "rtt_ms": 6, "bw_mbit": 2})

    nodes: dict[str, dict] = {
        "origin": {"kind": "origin", "region": "virginia"},
        "origin-eu": {"kind": "origin", "region": "frankfurt"},
        "db-primary": {"kind": "db", "region": "virginia"},
        "db-eu": {"kind": "db", "region": "frankfurt"},
        "db-ap": {"kind": "db", "region": "tokyo"},
    }
    for city in ("tokyo", "frankfurt", "virginia", "singapore", "saopaulo"):
        nodes[f"pop-{city}"] = {"kind": "pop", "region": city}
    for city in ("tokyo", "berlin", "london", "singapore", "newyork", "saopaulo"):
        nodes[f"user-{city}"] = {"kind": "client", "region": city}
    # Users the chapters' prose never names: checks send requests from them too, so
    # an answer that only works for the cities a learner has read about fails.
    for city in ("vienna", "zurich"):
        nodes[f"user-{city}"] = {"kind": "client", "region": city}
    nodes["iot-core"] = {"kind": "iot", "region": "factory"}
    for i in (1, 2, 3):
        nodes[f"iot-sensor{i}"] = {"kind": "iot", "region": "factory"}

    names = list(regions)
    for i in range(extra_pops):
        region = names[i % len(names)]
        nodes[f"pop{i + 1}-{region}"[:20]] = {"kind": "pop", "region": region}
    return {"name": "textbook", "regions": regions, "backbone": backbone, "nodes": nodes}


def default_world(extra_pops: int = 0) -> WorldSpec:
    """The textbook's world, parsed."""
    return parse_world(default_description(extra_pops))
