"""Routes computed from the latency graph: shortest paths and anycast.

The world has no routing protocol running inside it. The kit plays the part of a
converged one: whenever the graph changes (a link is cut, a node fails), it
computes shortest paths over the backbone, weighted by one-way delay, and installs
the result as static routes in every region router. What a learner sees is what
BGP/OSPF would give after convergence, without the minutes of convergence time.

Anycast works the same way. Every PoP answers one address; each router sends that
address towards the healthy PoP with the smallest path delay from it (region path
plus the PoP's access link). Along a shortest path the distance to the chosen PoP
falls at every hop, so a packet never loops, and failing a PoP moves its users to
the next-nearest one. All functions here are pure; ``kit.net.world`` applies them.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from kit.net.topology import WorldSpec


@dataclass(frozen=True)
class Graph:
    """The backbone as an adjacency map: region -> {neighbour region: one-way delay ms}."""

    adj: dict[str, dict[str, float]]


def backbone_graph(
    spec: WorldSpec,
    down_regions: frozenset[str] = frozenset(),
    cut: frozenset[frozenset[str]] = frozenset(),
) -> Graph:
    """The backbone without failed regions (routers) and cut links."""
    adj: dict[str, dict[str, float]] = {r: {} for r in spec.regions if r not in down_regions}
    for link in spec.backbone:
        if link.a in adj and link.b in adj and frozenset((link.a, link.b)) not in cut:
            adj[link.a][link.b] = link.params.delay_ms
            adj[link.b][link.a] = link.params.delay_ms
    return Graph(adj)


def shortest_paths(graph: Graph, source: str) -> tuple[dict[str, float], dict[str, str]]:
    """Dijkstra from ``source``: (distance to each reachable region, first hop towards it).

    Ties are broken by region name so that routes are the same on every run.
    """
    dist = {source: 0.0}
    first_hop: dict[str, str] = {}
    queue: list[tuple[float, str, str]] = [(0.0, source, "")]
    done: set[str] = set()
    while queue:
        d, region, hop = heapq.heappop(queue)
        if region in done:
            continue
        done.add(region)
        if hop:
            first_hop[region] = hop
        for nbr, w in sorted(graph.adj.get(region, {}).items()):
            nd = d + w
            if nbr not in dist or nd < dist[nbr]:
                dist[nbr] = nd
                heapq.heappush(queue, (nd, nbr, hop or nbr))
    return dist, first_hop


def region_path(graph: Graph, src: str, dst: str) -> list[str] | None:
    """The list of regions a packet crosses from ``src`` to ``dst`` (None if cut off)."""
    path = [src]
    while path[-1] != dst:
        _, hops = shortest_paths(graph, path[-1])
        if dst not in hops:
            return None
        path.append(hops[dst])
    return path


def nearest_pop(
    spec: WorldSpec, graph: Graph, region: str, healthy_pops: list[str]
) -> tuple[str, float] | None:
    """The healthy PoP closest to ``region`` and its one-way delay from the router."""
    if region not in graph.adj:
        return None
    dist, _ = shortest_paths(graph, region)
    best: tuple[float, str] | None = None
    for pop in healthy_pops:
        node = spec.nodes[pop]
        if node.region in dist:
            candidate = (dist[node.region] + node.access.delay_ms, pop)
            best = min(best, candidate) if best else candidate
    return (best[1], best[0]) if best else None


def configured_rtt(spec: WorldSpec, a: str, b: str, graph: Graph | None = None) -> float | None:
    """Round trip between two nodes as configured: access links plus backbone path."""
    graph = graph or backbone_graph(spec)
    na, nb = spec.nodes[a], spec.nodes[b]
    dist, _ = shortest_paths(graph, na.region)
    if nb.region not in dist:
        return None
    return 2 * (na.access.delay_ms + dist[nb.region] + nb.access.delay_ms)
