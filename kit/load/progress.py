"""A progress line for long waits, in a notebook or a terminal.

    bar = ProgressLine("load from user-tokyo", total=10, unit="s")
    bar.update(3, "120 req/s")          # user-tokyo ▕███░░░░░░░▏ 3/10 s  120 req/s
    bar.done("1200 requests in 10 s")

In a notebook the line is one output that is updated in place (an IPython
display handle); in a terminal it is rewritten with a carriage return. It is
plain text on purpose: the final line is what stays in the saved notebook, and
text is something nbval can compare once the numbers are sanitised, unlike a
widget whose state is not saved. ``kit.nb`` uses the same line for world start.
"""

from __future__ import annotations

import sys
from typing import Any

WIDTH = 24


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where output is rich, not a terminal)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def bar_text(label: str, done: float, total: float, unit: str = "", note: str = "") -> str:
    """``label ▕████░░░░▏ done/total unit  note`` (pure, so it is easy to test)."""
    fraction = 0.0 if total <= 0 else min(max(done / total, 0.0), 1.0)
    filled = round(fraction * WIDTH)
    bar = "█" * filled + "░" * (WIDTH - filled)
    amount = f"{done:.0f}/{total:.0f}{' ' + unit if unit else ''}"
    return f"{label} ▕{bar}▏ {amount}" + (f"  {note}" if note else "")


class ProgressLine:
    """One line of progress, updated in place (see the module docstring)."""

    def __init__(self, label: str, total: float, unit: str = "", enabled: bool = True) -> None:
        self.label, self.total, self.unit, self.enabled = label, total, unit, enabled
        self._handle: Any = None
        self._notebook = enabled and in_notebook()

    def show(self, text: str) -> None:
        """Replace the line with ``text``."""
        if not self.enabled:
            return
        if self._notebook:
            from IPython.display import display

            if self._handle is None:
                self._handle = display({"text/plain": text}, raw=True, display_id=True)
            else:
                self._handle.update({"text/plain": text}, raw=True)
        else:
            sys.stderr.write("\r\033[K" + text)
            sys.stderr.flush()

    def update(self, done: float, note: str = "") -> None:
        self.show(bar_text(self.label, done, self.total, self.unit, note))

    def done(self, text: str) -> None:
        """The final line, which stays."""
        self.show(f"{self.label}: {text}")
        if self.enabled and not self._notebook:
            sys.stderr.write("\n")
