"""Widgets that make an idea tangible: pick a city, or slow a link and measure again.

    city_picker(world, lambda user: ttfb_bars(measure_ttfb(world, [user], url)))
    slow_link(world, "tokyo", "virginia", lambda: measure_ttfb(world, ["user-tokyo"], url))

Each widget is a thin shell: its callback calls one plain function (the one the
learner passes in, or ``set_and_measure``) and shows what it returns in an
``Output`` area. The plain functions are what the tests exercise; the widgets
only wire a control to them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
from IPython.display import display


def set_and_measure(world: Any, a: str, b: str, rtt_ms: float, measure: Callable[[], Any]) -> Any:
    """Set the link between ``a`` and ``b`` to ``rtt_ms``, then return ``measure()``."""
    world.set_link(a, b, rtt_ms=rtt_ms)
    return measure()


def _show_in(output: widgets.Output, make: Callable[[], Any]) -> None:
    output.clear_output(wait=True)
    with output:
        result = make()
        if result is not None:
            display(result)


def city_picker(world: Any, show: Callable[[str], Any], kind: str = "client") -> widgets.VBox:
    """A drop-down of the world's nodes of ``kind``; picking one shows ``show(name)``."""
    names = [n.name for n in world.spec.of_kind(kind)]
    choice = widgets.Dropdown(options=names, description=kind)
    output = widgets.Output()
    choice.observe(lambda change: _show_in(output, lambda: show(change["new"])), names="value")
    return widgets.VBox([choice, output])


def slow_link(
    world: Any,
    a: str,
    b: str,
    measure: Callable[[], Any],
    rtt_ms: tuple[float, float] = (0, 400),
) -> widgets.VBox:
    """A slider for the RTT of one link and a button that applies it and shows ``measure()``."""
    current = world.link(a, b).params.rtt_ms
    slider = widgets.FloatSlider(
        value=current,
        min=rtt_ms[0],
        max=rtt_ms[1],
        step=5,
        description=f"{a}–{b} RTT (ms)",
        style={"description_width": "initial"},
        layout={"width": "500px"},
    )
    button = widgets.Button(description="apply and measure")
    output = widgets.Output()
    button.on_click(
        lambda _: _show_in(output, lambda: set_and_measure(world, a, b, slider.value, measure))
    )
    return widgets.VBox([widgets.HBox([slider, button]), output])
