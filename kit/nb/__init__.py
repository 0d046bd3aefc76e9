"""Notebook helpers: checks, measurements, plots, widgets, progress, and the lab release.

    from kit.nb import check, expect_below, http_timing, world_map, start_world

Modules: ``checks`` (checks that teach when they fail; ``check_world`` for the
world's own fidelity, which warns and never stops a run), ``hints`` (tiered
hints a learner asks for: ``hint("02-router")``), ``claims`` (the closing
"what you measured" table), ``measure`` (HTTP timings
and RTTs from world hosts), ``plots`` (world map, RTT heatmaps, TTFB bars and
CDFs), ``widgets`` (pick a city, slow a link), ``progress`` (one line for long
waits), and the lab mechanics: ``notebooks`` (solution markers and stripping),
``release`` (``python -m kit.nb.release [--check]``), ``reset``
(``python -m kit.nb.reset NN``). ``nbval_sanitize.cfg`` is nbval's sanitiser.
Widgets are imported on use (``from kit.nb.widgets import ...``): ipywidgets is
only needed in a notebook.
"""

from pathlib import Path

from kit.nb.checks import (
    CheckFailed,
    check,
    check_world,
    expect,
    expect_above,
    expect_below,
    expect_close,
    expect_equal,
    expect_http,
    expect_in,
)
from kit.nb.claims import Claim, what_you_measured
from kit.nb.hints import hint
from kit.nb.measure import (
    Timing,
    http_get,
    http_timing,
    http_timing_reused,
    measure_ttfb,
    rtt_matrix,
)
from kit.nb.plots import cdf, rtt_heatmaps, ttfb_bars, world_map
from kit.nb.progress import start_world, steps_line

NBVAL_SANITIZE = Path(__file__).resolve().parent / "nbval_sanitize.cfg"

__all__ = [
    "NBVAL_SANITIZE",
    "CheckFailed",
    "Claim",
    "Timing",
    "cdf",
    "check",
    "check_world",
    "expect",
    "expect_above",
    "expect_below",
    "expect_close",
    "expect_equal",
    "expect_http",
    "expect_in",
    "http_get",
    "http_timing",
    "hint",
    "http_timing_reused",
    "measure_ttfb",
    "reset_lab",
    "rtt_heatmaps",
    "rtt_matrix",
    "start_world",
    "steps_line",
    "ttfb_bars",
    "what_you_measured",
    "world_map",
]


def reset_lab(chapter: str) -> Path:
    """Write a fresh copy of chapter ``chapter``'s lab (yours is kept beside it).

    See ``kit.nb.reset``; imported here on use, so that ``python -m kit.nb.reset``
    does not find its own module already imported.
    """
    from kit.nb.reset import reset_lab as reset

    return reset(chapter)
