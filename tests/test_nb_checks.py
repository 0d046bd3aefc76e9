"""Checks teach when they fail; plots return figures; progress and sanitising behave."""

import configparser
import re

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from kit.load.progress import bar_text  # noqa: E402
from kit.nb import (  # noqa: E402
    NBVAL_SANITIZE,  # noqa: E402
    checks,
    plots,
)
from kit.nb.checks import CheckFailed, check  # noqa: E402
from kit.nb.measure import parse_write_out  # noqa: E402
from kit.nb.progress import steps_line  # noqa: E402
from kit.net import default_world  # noqa: E402


def test_a_passing_check_says_so():
    said = []
    with check("the PoP is near", say=said.append):
        checks.expect_below(5.2, 20, "RTT to the PoP (ms)")
    assert said == ["✓ the PoP is near"]


def test_a_failing_check_says_what_was_expected_and_what_came_back():
    with pytest.raises(CheckFailed) as failed, check("the PoP is near", say=print):
        checks.expect_below(155.0, 20, "RTT to the PoP (ms)", hint="did you use anycast?")
    message = str(failed.value)
    assert message.splitlines() == [
        "✗ the PoP is near",
        "  checking: RTT to the PoP (ms)",
        "  expected: below 20",
        "  got:      155",
        "  hint:     did you use anycast?",
    ]
    # a notebook shows the message, not a traceback, and repr is readable too
    assert failed.value._render_traceback_() == [message]
    assert repr(failed.value) == message


def test_an_unsolved_exercise_fails_the_check_with_a_message():
    def nearest_pop():
        # YOUR CODE HERE
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="YOUR CODE HERE") as failed, check("nearest PoP"):
        nearest_pop()
    assert failed.value.check == "nearest PoP"
    assert failed.value.got == "NotImplementedError"


def test_other_errors_are_not_hidden():
    with pytest.raises(ZeroDivisionError), check("anything"):
        raise ZeroDivisionError


@pytest.mark.parametrize(
    "call, expected",
    [
        (lambda: checks.expect_equal(301, 302, "status"), "expected: 302"),
        (lambda: checks.expect_close(12.0, 5.0, 2.0, "RTT"), "expected: 5 ± 2"),
        (lambda: checks.expect_close(float("nan"), 5.0, 2.0, "RTT"), "got:      nan"),
        (lambda: checks.expect_above(0.1, 0.5, "hit ratio"), "expected: above 0.5"),
        (lambda: checks.expect_in("MISS", ["HIT"], "X-Cache"), "expected: one of ['HIT']"),
    ],
)
def test_each_expectation_fails_with_its_own_words(call, expected):
    with pytest.raises(CheckFailed, match=re.escape(expected)):
        call()


def test_expectations_return_what_they_checked():
    assert checks.expect_close(5.3, 5.0, 1.0, "RTT") == 5.3
    assert checks.expect_in("HIT", ("HIT", "STALE"), "X-Cache") == "HIT"


class FakeWorld:
    """world.run that answers like curl -i would (text mode: \\r\\n already \\n)."""

    def run(self, host, command, timeout=60):
        return "HTTP/1.1 200 OK\nContent-Type: text/html\nX-Cache: MISS\n\n<h1>origin</h1>"


def test_expect_http_checks_headers_and_body():
    world = FakeWorld()
    response = checks.expect_http(world, "user-tokyo", "http://10.255.0.1/", body_contains="origin")
    assert response["headers"]["x-cache"] == "MISS"
    with pytest.raises(CheckFailed, match="header X-Cache") as failed:
        checks.expect_http(world, "user-tokyo", "http://10.255.0.1/", headers={"X-Cache": "HIT"})
    assert failed.value.got == "'MISS'"
    with pytest.raises(CheckFailed, match="status"):
        checks.expect_http(world, "user-tokyo", "http://10.255.0.1/", status=302)


class FailingPopWorld:
    """world.run answering like a PoP whose handler raised."""

    def run(self, host, command, timeout=60):
        return (
            "HTTP/1.1 500 Internal Server Error\nx-kit-error: handler\n\n"
            "edge handler error at PoP pop-tokyo: "
            "ZeroDivisionError: division by zero (handler.py line 3)\n"
        )


def test_expect_http_shows_why_a_5xx_happened():
    with pytest.raises(CheckFailed) as failed:
        checks.expect_http(FailingPopWorld(), "user-tokyo", "http://10.255.0.1/")
    assert failed.value.got.startswith("500, saying: ")
    assert "ZeroDivisionError: division by zero (handler.py line 3)" in failed.value.got
    assert "handler.py line 3" in str(failed.value)
    answered = checks.expect_http(FailingPopWorld(), "user-tokyo", "http://x/", status=500)
    assert answered["status"] == 500  # a 5xx that was asked for is no failure


def test_curl_write_out_becomes_milliseconds():
    fresh, reused = parse_write_out("200 0.155 0.311 0.312 822 1\n200 0.000 0.156 0.157 822 0\n")
    assert (fresh.status, fresh.connect_ms, fresh.ttfb_ms, fresh.bytes) == (200, 155.0, 311.0, 822)
    assert fresh.new_connection and not reused.new_connection


def test_world_map_shows_every_node():
    spec = default_world()
    fig = plots.world_map(spec, highlight=["pop-tokyo"])
    labels = {t.get_text() for t in fig.axes[0].texts}
    assert set(spec.nodes) <= labels
    assert len(plots.node_positions(spec)) == len(spec.nodes)
    fig = plots.world_map(spec, kinds=("pop", "client"), labels="regions")
    labels = [t.get_text() for t in fig.axes[0].texts if not t.get_text().isdigit()]
    assert sorted(labels) == sorted(r.city for r in spec.regions.values() if r.name != "factory")


def test_rtt_heatmaps_side_by_side():
    rows = [
        ("user-tokyo", "origin", 155.0, 156.1),
        ("user-tokyo", "pop-tokyo", 5.0, 5.3),
        ("user-berlin", "origin", 102.0, 102.4),
        ("user-berlin", "pop-tokyo", 244.0, float("nan")),
    ]
    matrix = pd.DataFrame(rows, columns=["source", "target", "configured_ms", "measured_ms"])
    fig = plots.rtt_heatmaps(matrix)
    assert [ax.get_title() for ax in fig.axes[:2]] == [
        "configured RTT (ms)",
        "measured RTT (ms, median)",
    ]
    assert "156" in {t.get_text() for t in fig.axes[1].texts}


def test_ttfb_bars_and_cdf():
    samples = pd.DataFrame(
        {"host": ["user-tokyo"] * 3 + ["user-berlin"] * 3, "ttfb_ms": [10, 12, 30, 100, 104, 110]}
    )
    bars = plots.ttfb_bars(samples).axes[0]
    assert [round(p.get_height()) for p in bars.patches] == [12, 104]
    lines = plots.cdf(samples).axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["user-tokyo", "user-berlin"]
    assert list(lines[0].get_ydata())[-1] == 1.0


def test_progress_bar_text():
    assert bar_text("load", 5, 10, "s", "40 requests") == (
        "load ▕████████████░░░░░░░░░░░░▏ 5/10 s  40 requests"
    )
    assert bar_text("load", 20, 10).count("░") == 0


def test_steps_line_outside_a_notebook(capsys):
    say = steps_line("world")
    say("creating 29 hosts")
    assert "world: creating 29 hosts" in capsys.readouterr().err


def sanitize(text: str) -> str:
    config = configparser.ConfigParser(interpolation=None)
    config.read(NBVAL_SANITIZE, encoding="utf-8")
    for section in config.sections():
        text = re.sub(config[section]["regex"], config[section]["replace"], text)
    return text


def test_nbval_sanitizer_hides_what_varies_and_keeps_what_matters():
    a = "<World at 0x7f3a2b1c4d50> up in 1.3 s; user-tokyo: 812 requests in 10 s, 81.2 req/s"
    b = "<World at 0x7f99aa11bb22> up in 0.9 s; user-tokyo: 790 requests in 10 s, 79.0 req/s"
    assert sanitize(a) == sanitize(b)
    kept = "pop-tokyo 10.3.2.2 answers 200"
    assert sanitize(kept) == kept
