"""Hints that a learner asks for, one level at a time.

    hint("02-router")      # first call: a nudge
    hint("02-router")      # second call: the approach
    hint("02-router")      # third call: the key call; later calls repeat it
    hint("02-router", 1)   # level 1 again

An exercise's hints are tiered: a nudge that points at the idea, then the
approach, then the one call or expression that unlocks it. Each call shows the
next level, so a learner sees only as much as they asked for, and the check of
an exercise can say which level helps with the mistake it found.

The hints live in `kit/nb/hints/NN.toml`, one file per chapter, outside the
notebooks (so nothing a learner reads by default gives an answer away):

    ["02-router"]
    title = "an edge router"
    levels = ["nudge ...", "approach ...", "key call ..."]

The levels already shown are remembered per kernel (a restarted kernel starts
from the nudge again).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

HINTS = Path(__file__).resolve().parent / "hints"

shown: dict[str, int] = {}  # exercise -> the level shown last


class HintError(LookupError):
    """No hints for that name; the message lists the ones there are."""


def load_hints(folder: Path = HINTS) -> dict[str, dict]:
    """Every exercise's hints, from every chapter's file."""
    hints: dict[str, dict] = {}
    for path in sorted(folder.glob("*.toml")):
        with open(path, "rb") as file:
            for name, entry in tomllib.load(file).items():
                levels = entry.get("levels")
                if not isinstance(levels, list) or not levels:
                    raise HintError(f"{path.name}: [{name}] needs a non-empty list `levels`")
                hints[name] = entry
    return hints


def hint(
    exercise: str,
    level: int | None = None,
    say: Callable[[str], None] = print,
    folder: Path = HINTS,
) -> str:
    """Show the next level of an exercise's hints (or `level`, counted from 1)."""
    hints = load_hints(folder)
    if exercise not in hints:
        known = ", ".join(sorted(hints)) or "none"
        raise HintError(f"no hints for {exercise!r}; there are hints for: {known}")
    levels = hints[exercise]["levels"]
    number = level if level is not None else min(shown.get(exercise, 0) + 1, len(levels))
    if not 1 <= number <= len(levels):
        raise HintError(f"{exercise!r} has hint levels 1 to {len(levels)}, not {number}")
    shown[exercise] = number
    title = hints[exercise].get("title", exercise)
    more = f' (hint("{exercise}") again for level {number + 1})' if number < len(levels) else ""
    text = f"Hint {number} of {len(levels)} for {title}{more}:\n{levels[number - 1].strip()}"
    say(text)
    return text
