"""Measurements and widgets against a running world (root + Mininet)."""

import pytest

from kit.nb import check, expect_http, http_timing, http_timing_reused, measure_ttfb, rtt_matrix
from kit.nb.checks import CheckFailed
from kit.nb.widgets import city_picker, set_and_measure, slow_link


@pytest.fixture
def url(origin_url):
    return origin_url


def test_http_timing_fresh_and_reused(world, url):
    rtt = world.configured_rtt("user-tokyo", "origin")
    t = http_timing(world, "user-tokyo", url)
    assert t.status == 200 and t.new_connection
    assert t.connect_ms >= rtt  # the handshake takes a round trip
    assert t.ttfb_ms >= 2 * rtt  # and the request another one
    assert t.connect_ms <= t.ttfb_ms <= t.total_ms

    fresh, reused = http_timing_reused(world, "user-tokyo", url)
    assert fresh.new_connection and not reused.new_connection
    assert fresh.ttfb_ms - fresh.connect_ms >= rtt
    assert reused.ttfb_ms < fresh.ttfb_ms  # no handshake the second time


def test_measure_ttfb_from_several_metros(world, url):
    samples = measure_ttfb(world, ["user-tokyo", "user-berlin"], url, count=3)
    assert list(samples.groupby("host", sort=False).size().items()) == [
        ("user-tokyo", 3),
        ("user-berlin", 3),
    ]
    assert (samples["status"] == 200).all()
    medians = samples.groupby("host")["ttfb_ms"].median()
    assert medians["user-tokyo"] > medians["user-berlin"]  # Tokyo is farther from Virginia


def test_rtt_matrix_puts_configured_next_to_measured(world):
    matrix = rtt_matrix(world, ["user-tokyo"], ["pop-tokyo", "origin"], count=5)
    assert list(matrix["target"]) == ["pop-tokyo", "origin"]
    assert (matrix["lost"] == 0).all()
    for row in matrix.itertuples():
        assert row.measured_ms >= row.configured_ms * 0.9


def test_checks_against_the_world(world, url):
    with check("the origin serves its listing", say=lambda _: None):
        expect_http(world, "user-berlin", url, body_contains="Directory listing")
    with pytest.raises(CheckFailed, match="status"):
        expect_http(world, "user-berlin", url + "nothing-here")


def test_slowing_a_link_and_measuring_again(world):
    before = world.link("tokyo", "virginia").params
    try:
        rtts = set_and_measure(world, "tokyo", "virginia", before.rtt_ms + 100,
                               lambda: world.ping("user-tokyo", "origin", count=3))  # fmt: skip
        assert min(rtts) >= world.configured_rtt("user-tokyo", "origin") + 90
        panel = slow_link(world, "tokyo", "virginia", lambda: None)
        assert panel.children[0].children[0].value == before.rtt_ms + 100
    finally:
        world.set_link("tokyo", "virginia", delay_ms=before.delay_ms)


def test_city_picker_lists_the_users(world):
    picker = city_picker(world, lambda name: name)
    assert "user-tokyo" in picker.children[0].options
