"""Chapter 05's helpers without a world: layouts, timelines, made-up pages and visitors."""

import html
import random

from kit.nb.esi_checks import PERSONAL, Layout, Timeline, visitor_id


def test_a_layout_round_trips_and_its_paths_have_no_commas():
    layout = Layout.parse("shop", "nav:600:10,user,offers:5:40")
    assert [f.name for f in layout.fragments] == ["nav", PERSONAL, "offers"]
    assert layout.fragments[2].ttl == 5 and layout.fragments[2].think_ms == 40
    assert (
        "," not in layout.page() and "," not in layout.whole()
    )  # a load's paths are comma-separated
    assert layout.page() == "/esi/page/shop?f=nav:600:10%2Cuser%2Coffers:5:40"
    assert layout.whole().endswith("&think=40")  # the origin's render: its slowest part


def test_made_up_layouts_differ_and_hold_what_was_asked():
    rng = random.Random()
    a, b = (
        Layout.made_up(rng, slow_ms=[700], cached=3),
        Layout.made_up(rng, slow_ms=[700], cached=3),
    )
    assert a.name != b.name
    for layout in (a, b):
        assert len(layout.fragments) == 5
        assert sum(f.name == PERSONAL for f in layout.fragments) == 1
        assert [f.think_ms for f in layout.fragments if f.ttl == 0 and f.name != PERSONAL] == [700]


def test_a_visitor_id_needs_escaping_and_is_a_valid_cookie_value():
    uid = visitor_id(random.Random())
    assert html.escape(uid) != uid
    assert not set(uid) & set(';, "\\')


def test_a_timeline_says_when_text_had_arrived():
    page = Timeline(200, {}, 5.0, [(10.0, "<h1>ti"), (12.0, "tle</h1>"), (800.0, "<div>")], 801.0)
    assert page.first_byte_ms == 10.0
    assert page.when("<h1>title</h1>") == 12.0 and page.when("<div>") == 800.0
    assert page.when("missing") is None and page.body.endswith("<div>")
