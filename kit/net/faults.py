"""Faults as data: a schedule of fault events, written by hand or drawn from a seed.

A schedule is a list of events, each a time (seconds from the start) and a call
on the world with its arguments::

    [{"at": 0.0, "do": "fail_node", "args": ["pop-tokyo"]},
     {"at": 5.0, "do": "restore_node", "args": ["pop-tokyo"]}]

``random_schedule`` draws such a list from a seed: the same seed gives the same
faults, so a chaos experiment can be repeated and compared. ``flapping`` takes a
link down and up on a period (the IoT chapter's intermittent uplink). ``play``
runs a schedule against a running world, in the background, and returns a
handle whose ``stop()`` ends it early; ``log`` records what happened when.
Every fault a schedule injects is undone by a later event, so a schedule that
runs to the end leaves the world as it found it.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

# The World methods a schedule may call: each fault and its undo.
ACTIONS = {"fail_node", "restore_node", "cut_link", "restore_link", "partition", "heal", "set_link"}


@dataclass(frozen=True)
class FaultEvent:
    at: float
    do: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, data: dict, where: str = "event") -> FaultEvent:
        if not isinstance(data, dict) or "at" not in data or "do" not in data:
            raise ValueError(f"{where}: needs 'at' (seconds) and 'do' (an action)")
        if data["do"] not in ACTIONS:
            known = ", ".join(sorted(ACTIONS))
            raise ValueError(f"{where}.do: unknown action {data['do']!r}; known: {known}")
        at = data["at"]
        if not isinstance(at, int | float) or at < 0:
            raise ValueError(f"{where}.at: {at!r} is not a time in seconds")
        return cls(float(at), data["do"], tuple(data.get("args", ())), dict(data.get("kwargs", {})))


def parse_schedule(events: list[dict]) -> list[FaultEvent]:
    """Validate a schedule given as data; events are sorted by time."""
    return sorted(
        (FaultEvent.parse(e, f"schedule[{i}]") for i, e in enumerate(events)), key=lambda e: e.at
    )


def random_schedule(
    nodes: list[str], seed: int, duration: float, faults: int = 3, outage: tuple = (1.0, 5.0)
) -> list[FaultEvent]:
    """``faults`` node failures among ``nodes``, each restored after an outage, from ``seed``."""
    rng = random.Random(seed)
    events = []
    for _ in range(faults):
        node = rng.choice(nodes)
        length = rng.uniform(*outage)
        start = rng.uniform(0, max(duration - length, 0))
        events += [
            FaultEvent(start, "fail_node", (node,)),
            FaultEvent(start + length, "restore_node", (node,)),
        ]
    return sorted(events, key=lambda e: e.at)


def flapping(a: str, b: str, period: float, down_for: float, cycles: int) -> list[FaultEvent]:
    """The link a--b goes down for ``down_for`` s at the start of each ``period``."""
    events = []
    for i in range(cycles):
        events += [
            FaultEvent(i * period, "cut_link", (a, b)),
            FaultEvent(i * period + down_for, "restore_link", (a, b)),
        ]
    return events


class Playback:
    """A schedule running in the background against a world."""

    def __init__(self, world: Any, events: list[FaultEvent]) -> None:
        self.world, self.events = world, events
        self.log: list[tuple[float, str]] = []
        self.error: Exception | None = None  # what stopped the schedule early, if anything
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.monotonic()
        for ev in self.events:
            if self._stop.wait(max(0.0, ev.at - (time.monotonic() - t0))):
                return
            try:
                getattr(self.world, ev.do)(*ev.args, **ev.kwargs)
            except Exception as e:  # e.g. the world was stopped: end here, say why in wait()
                self.error = e
                return
            self.log.append((time.monotonic() - t0, f"{ev.do}{ev.args}"))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the schedule to finish; True if it did. Raises what stopped it early."""
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return not self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def play(world: Any, events: list[FaultEvent] | list[dict]) -> Playback:
    """Run a schedule (events or their data) against a running world, in the background."""
    if events and isinstance(events[0], dict):
        events = parse_schedule(events)  # type: ignore[arg-type]
    pb = Playback(world, sorted(events, key=lambda e: e.at))  # type: ignore[arg-type]
    pb._thread.start()
    return pb
