"""The emulated world on Mininet: description, links, routing, faults, processes, clean-up.

    from kit.net import World
    with World() as world:
        print(world.ping("user-berlin", "pop-frankfurt"))

Modules, lowest first: ``cities`` (the latency data and its source), ``topology``
(the description and address plan), ``routing`` (shortest paths, anycast),
``links`` and ``delayline`` (link emulation), ``registry`` (what a world created,
and clean-up), ``procs`` (services on hosts), ``faults`` (schedules of faults),
``world`` (the running world), ``fidelity`` (configured vs measured RTT). The
kit's services are started on a world one layer up, by ``kit.edge``.
"""

from kit.net.topology import WorldSpec, WorldSpecError, default_world, parse_world
from kit.net.world import World, WorldError

__all__ = ["World", "WorldError", "WorldSpec", "WorldSpecError", "default_world", "parse_world"]
