"""The world description, its validation, address plan and routing: pure unit tests."""

import copy

import pytest

from kit.net import routing
from kit.net.topology import (
    ANYCAST,
    WorldSpecError,
    backbone_subnet,
    default_description,
    default_world,
    parse_world,
)


def test_default_world_mirrors_the_textbook():
    spec = default_world()
    assert spec.nodes["origin"].region == "virginia"
    assert spec.nodes["db-primary"].region == "virginia"
    pops = {n.region for n in spec.of_kind("pop")}
    assert {"tokyo", "frankfurt", "virginia", "singapore", "saopaulo"} <= pops
    users = {n.city for n in spec.of_kind("client")}
    assert users == {"Tokyo", "Berlin", "London", "Singapore", "New York", "São Paulo"} | {
        "Vienna",
        "Zurich",
    }
    iot = spec.of_kind("iot")
    assert {n.region for n in iot} == {"factory"} and len(iot) >= 3
    uplink = next(b for b in spec.backbone if "factory" in (b.a, b.b))
    assert uplink.params.bw_mbit and uplink.params.bw_mbit <= 10


def test_address_plan_is_unique_and_inside_the_region():
    spec = default_world()
    addresses = [spec.ip(n) for n in spec.nodes] + [
        spec.ip(r.router) for r in spec.regions.values()
    ]
    assert len(addresses) == len(set(addresses))
    for n in spec.nodes.values():
        assert spec.ip(n.name).startswith(f"10.{spec.regions[n.region].number}.")
    subnets = [backbone_subnet(k) for k in range(200)]
    assert len({str(s) for s in subnets}) == 200
    assert all(s.prefixlen == 30 and str(s).startswith("10.0.") for s in subnets)
    assert spec.anycast == ANYCAST


def test_geo_table_maps_client_subnets_to_cities():
    spec = default_world()
    rows = {r["node"]: r for r in spec.geo_table()}
    berlin = rows["user-berlin"]
    assert (berlin["country"], berlin["city"]) == ("DE", "Berlin")
    assert spec.ip("user-berlin").rsplit(".", 1)[0] == berlin["subnet"].rsplit(".", 1)[0]
    assert rows["user-saopaulo"]["country"] == "BR"


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda d: d["nodes"]["pop-tokyo"].update(region="tokio"),
            "nodes.pop-tokyo.region: unknown region 'tokio'",
        ),
        (
            lambda d: d["nodes"]["pop-tokyo"].update(kind="cdn"),
            "nodes.pop-tokyo.kind: unknown kind",
        ),
        (lambda d: d["backbone"][0].update(rtt_ms=-5), "backbone[0].rtt_ms: -5 must be"),
        (lambda d: d["backbone"][1].update(rtt_ms="fast"), "backbone[1].rtt_ms: expected a number"),
        (lambda d: d["backbone"][2].pop("rtt_ms"), "backbone[2]: missing field 'rtt_ms'"),
        (lambda d: d["backbone"].append({"a": "tokyo", "b": "tokyo", "rtt_ms": 1}), "to itself"),
        (
            lambda d: d["backbone"].append({"a": "virginia", "b": "newyork", "rtt_ms": 1}),
            "a second link",
        ),
        (
            lambda d: d["nodes"]["origin"].update(colour="red"),
            "nodes.origin: unknown field 'colour'",
        ),
        (
            lambda d: d["nodes"]["origin"].update(access={"loss_pct": 150}),
            "nodes.origin.access.loss_pct: 150 must be between 0 and 100",
        ),
        (lambda d: d["regions"]["tokyo"].update(country="Japan"), "regions.tokyo.country"),
        (lambda d: d["nodes"].update({"Bad Name": {"kind": "pop", "region": "tokyo"}}), "bad name"),
        (lambda d: d.update(anycast="10.300.0.1"), "anycast"),
        (lambda d: d.pop("nodes"), "world: missing field 'nodes'"),
    ],
)
def test_a_bad_description_names_the_bad_field(edit, message):
    data = copy.deepcopy(default_description())
    edit(data)
    with pytest.raises(WorldSpecError) as err:
        parse_world(data)
    assert message in str(err.value)


def test_generated_world_scales_the_same_description():
    spec = default_world(extra_pops=100)
    assert len(spec.of_kind("pop")) == 105
    assert len({spec.ip(n) for n in spec.nodes}) == len(spec.nodes)


def test_shortest_paths_follow_the_latency_graph():
    spec = default_world()
    g = routing.backbone_graph(spec)
    # Singapore reaches Ashburn through Tokyo (35 + 75 ms one way), not Frankfurt (80 + 44).
    assert routing.region_path(g, "singapore", "virginia") == ["singapore", "tokyo", "virginia"]
    dist, hops = routing.shortest_paths(g, "berlin")
    assert hops["virginia"] == "frankfurt"
    assert dist["virginia"] == pytest.approx((9 + 88) / 2)
    # User to origin: both access links plus the backbone path, both ways.
    assert routing.configured_rtt(spec, "user-tokyo", "origin") == pytest.approx(4 + 150 + 1)
    assert routing.configured_rtt(spec, "user-tokyo", "pop-tokyo") == pytest.approx(5)


def test_cut_links_and_failed_regions_reroute():
    spec = default_world()
    cut = frozenset({frozenset(("tokyo", "virginia"))})
    g = routing.backbone_graph(spec, cut=cut)
    assert routing.region_path(g, "tokyo", "virginia") == [
        "tokyo",
        "singapore",
        "frankfurt",
        "virginia",
    ]
    g = routing.backbone_graph(spec, down_regions=frozenset({"frankfurt"}))
    assert routing.region_path(g, "berlin", "virginia") is None  # Berlin hangs off Frankfurt


def test_anycast_picks_the_nearest_healthy_pop():
    spec = default_world()
    g = routing.backbone_graph(spec)
    pops = [p.name for p in spec.of_kind("pop")]
    assert routing.nearest_pop(spec, g, "tokyo", pops)[0] == "pop-tokyo"
    assert routing.nearest_pop(spec, g, "berlin", pops)[0] == "pop-frankfurt"
    assert routing.nearest_pop(spec, g, "london", pops)[0] == "pop-frankfurt"
    assert routing.nearest_pop(spec, g, "newyork", pops)[0] == "pop-virginia"
    without_tokyo = [p for p in pops if p != "pop-tokyo"]
    assert routing.nearest_pop(spec, g, "tokyo", without_tokyo)[0] == "pop-singapore"
    assert routing.nearest_pop(spec, g, "tokyo", []) is None
