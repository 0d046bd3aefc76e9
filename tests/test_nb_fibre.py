"""The fibre bound's helpers: distances, the bound, the backbone table and its plot."""

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from kit.nb.fibre import (  # noqa: E402
    FIBRE_KM_PER_MS,
    backbone_table,
    fibre_bound_ms,
    great_circle_km,
    plot_fibre_bound,
)
from kit.net.topology import default_world  # noqa: E402


def test_tokyo_to_ashburn_is_about_10900_km():
    assert great_circle_km(35.68, 139.69, 39.04, -77.49) == pytest.approx(10_900, rel=0.02)


def test_the_bound_is_a_round_trip_in_glass():
    assert FIBRE_KM_PER_MS == pytest.approx(204, abs=1)
    assert fibre_bound_ms(1020) == pytest.approx(10, rel=0.01)


def test_the_backbone_table_and_its_plot():
    world = SimpleNamespace(spec=default_world())
    table = backbone_table(world)
    assert len(table) == len(world.spec.backbone)
    assert (table["stretch"] > 1).all()  # no configured link beats light in fibre
    table["measured_ms"] = table["configured_ms"] + 0.2
    ax = plot_fibre_bound(table, ("tokyo", "virginia"))
    assert any("Tokyo" in t.get_text() for t in ax.texts)
