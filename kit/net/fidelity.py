"""How faithful are the links? Configured vs measured round-trip times.

Used by ``python -m kit verify``, the tests and ``bench/world_bench.py``: one
way of measuring, so the three agree. Echoes come from ``World.ping_many``
(microsecond resolution, every pair at once); the error of a pair is measured
minus configured, at p50 and p99.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

P50_LIMIT_MS, P99_LIMIT_MS = 1.0, 3.0


@dataclass
class PairFidelity:
    src: str
    dst: str
    configured: float
    errors: list[float]  # measured - configured, sorted, one per echo that came back
    sent: int

    def error(self, q: float) -> float | None:
        """The q-quantile (0..1) of the error in ms, None if no echo came back."""
        if not self.errors:
            return None
        return self.errors[min(len(self.errors) - 1, int(len(self.errors) * q))]

    @property
    def lost(self) -> int:
        return self.sent - len(self.errors)

    @property
    def ok(self) -> bool:
        p50, p99 = self.error(0.5), self.error(0.99)
        return p50 is not None and abs(p50) <= P50_LIMIT_MS and abs(p99) <= P99_LIMIT_MS

    def row(self) -> dict[str, Any]:
        p50, p99 = self.error(0.5), self.error(0.99)
        return {
            "from": self.src,
            "to": self.dst,
            "configured": round(self.configured, 2),
            "p50": None if p50 is None else round(self.configured + p50, 2),
            "p99": None if p99 is None else round(self.configured + p99, 2),
            "err_p50": None if p50 is None else round(p50, 2),
            "err_p99": None if p99 is None else round(p99, 2),
            "lost": self.lost,
        }


def verify_pairs(world: Any) -> list[tuple[str, str]]:
    """Every user to every PoP and origin, and both ends of every backbone link."""
    spec = world.spec
    servers = [n.name for n in spec.nodes.values() if n.kind in ("pop", "origin")]
    pairs = [(u.name, s) for u in spec.of_kind("client") for s in servers]
    pairs += [(spec.regions[b.a].router, spec.regions[b.b].router) for b in spec.backbone]
    return pairs


def configured(world: Any, a: str, b: str) -> float:
    """Configured RTT between two nodes, or two region routers (a backbone link)."""
    if a in world.spec.nodes and b in world.spec.nodes:
        return world.configured_rtt(a, b)
    return world.link(a, b).params.rtt_ms


def measure(
    world: Any,
    pairs: list[tuple[str, str]],
    count: int = 500,
    interval: float = 0.01,
    at_once: int = 18,
) -> list[PairFidelity]:
    """Configured vs measured RTT of each pair (after a short warm-up).

    Pairs are measured ``at_once`` at a time. All 53 pairs of the default world at
    once, 100 echoes/s each over paths of up to 10 delayed links, would put some
    50,000 frames/s through the delay line: the measurement itself would be the
    load that stretches the tail it is trying to judge.
    """
    world.ping_many(pairs, count=2, interval=0.05)
    measured = {}
    for i in range(0, len(pairs), at_once):
        measured |= world.ping_many(pairs[i : i + at_once], count=count, interval=interval)
    result = []
    for a, b in pairs:
        cfg = configured(world, a, b)
        result.append(PairFidelity(a, b, cfg, sorted(r - cfg for r in measured[(a, b)]), count))
    return result


def pooled(pairs: list[PairFidelity], q: float) -> float:
    """The q-quantile of the error over every echo of every pair."""
    errors = sorted(e for p in pairs for e in p.errors)
    return errors[min(len(errors) - 1, int(len(errors) * q))]
