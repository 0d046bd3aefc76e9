"""Progress for long waits in a notebook: one line, updated in place, that stays as a summary.

    world = start_world()            # world 'textbook' is up in 1.0 s   (one line, not ten)

``World.start(progress=callback)`` calls back with one line per step;
``steps_line`` makes such a callback that shows the latest step on a single
line (``kit.load.progress.ProgressLine``, the same line load tests use).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kit.load.progress import ProgressLine


def steps_line(label: str, enabled: bool = True) -> Callable[[str], None]:
    """A ``progress`` callback showing ``label: latest step`` on one line."""
    line = ProgressLine(label, total=0, enabled=enabled)
    line.show(f"{label}: starting")

    def say(step: str) -> None:
        line.show(f"{label}: {step}")

    return say


def start_world(*args: Any, progress: bool = True, **kwargs: Any) -> Any:
    """``World(*args, **kwargs).start()`` with its steps on one progress line."""
    from kit.net import World  # the world is only needed here, not to plot or check

    return World(*args, **kwargs).start(progress=steps_line("world", enabled=progress))
