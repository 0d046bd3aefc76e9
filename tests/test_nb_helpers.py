"""The chapter kit: tiered hints, world checks that warn, the closing table, stepped loads."""

import pytest
from test_services_support import Service, metrics

from kit.load.steps import plot_steps, step_load
from kit.nb import Claim, check_world, expect_below, what_you_measured
from kit.nb.hints import HINTS, HintError, hint, load_hints, shown


def test_hints_come_one_level_at_a_time(tmp_path):
    (tmp_path / "99.toml").write_text(
        '["99-x"]\ntitle = "a thing"\nlevels = ["nudge", "approach", "key call"]\n'
    )
    shown.clear()
    said = []
    for _ in range(4):
        hint("99-x", say=said.append, folder=tmp_path)
    assert [s.splitlines()[-1] for s in said] == ["nudge", "approach", "key call", "key call"]
    assert said[0].startswith("Hint 1 of 3 for a thing")
    assert "level 2" in said[0] and "level" not in said[2].splitlines()[0].split(":")[0][-9:]
    assert hint("99-x", 1, say=said.append, folder=tmp_path).endswith("nudge")
    with pytest.raises(HintError, match="99-x"):
        hint("99-y", say=said.append, folder=tmp_path)
    with pytest.raises(HintError, match="levels 1 to 3"):
        hint("99-x", 7, say=said.append, folder=tmp_path)


def test_every_chapter_hint_file_is_well_formed():
    for name, entry in load_hints(HINTS).items():
        assert len(entry["levels"]) >= 2, f"{name}: a nudge, then more"


def test_a_world_check_warns_and_never_raises():
    said = []
    with check_world("RTTs are as configured", say=said.append):
        expect_below(5.3, 1.0, "p99 error (ms)")
    assert said[0].startswith("⚠ RTTs are as configured")
    assert "not your code" in said[0] and "5.3" in said[0]
    with check_world("fine", say=said.append):
        pass
    assert said[1] == "✓ fine"


def test_the_closing_table():
    table = what_you_measured([Claim("a claim", "≈150 ms", "152 ms", "access links")])
    assert list(table.columns) == ["the textbook", "this run", "why they differ"]
    assert table.loc["a claim", "this run"] == "152 ms"
    with pytest.raises(ValueError):
        what_you_measured([])


@pytest.mark.loopback
def test_step_load_on_loopback(tmp_path):
    origin = Service("origin", workdir=str(tmp_path))
    try:
        steps = step_load(
            None,
            ["a"],
            origin.url,
            users=(1, 2),
            run_time_s=3,  # Locust's last CSV lags by a second or so
            paths=["/api/items/1"],
            counter=lambda: metrics(origin)["requests"],
            progress=False,
        )
        assert list(steps.index) == [1, 2]
        assert (steps["rps"] > 0).all() and (steps["failures"] == 0).all()
        assert (steps["counted_per_s"] > 0).all()  # every request reached this origin
        fig = plot_steps({"direct": steps})
        assert len(fig.axes) == 3
    finally:
        origin.stop()
