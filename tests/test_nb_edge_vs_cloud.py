"""Chapter 01's helpers without a world: the TTFB model check names each mistake,
random requests cover several methods and never repeat, the plots draw."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from kit.nb import edge_vs_cloud as ch
from kit.nb.checks import CheckFailed

NO_MEASUREMENTS = pd.DataFrame(
    columns=["user", "server", "connection", "rtt_ms", "server_ms", "ttfb_ms"]
)
SETUP = {None: 0, "1.3": 1, "1.2": 2}


def right(rtt_ms, server_ms, reused=False, tls=None):
    return ((0 if reused else 1 + SETUP[tls]) + 1) * rtt_ms + server_ms


WRONG = {
    "one round trip for a fresh connection": lambda r, s, reused=False, tls=None: (
        ((0 if reused else SETUP[tls]) + 1) * r + s
    ),
    "leaves out TLS": lambda r, s, reused=False, tls=None: (1 if reused else 2) * r + s,
    "swapped": lambda r, s, reused=False, tls=None: right(
        r, s, reused, {"1.2": "1.3", "1.3": "1.2"}.get(tls, tls)
    ),
    "server time twice": lambda r, s, reused=False, tls=None: right(r, s, reused, tls) + s,
}


def test_the_right_model_passes_and_a_world_far_from_it_only_warns(capsys):
    measured = pd.DataFrame(
        [
            {
                "user": "u",
                "server": "s",
                "connection": "fresh",
                "rtt_ms": 50.0,
                "server_ms": 10.0,
                "ttfb_ms": 111.0,
            },
        ]
    )
    table = ch.check_ttfb_model(right, measured, seed=1)
    assert table["predicted_ms"].tolist() == [110.0]
    # a right model far from the world: a warning about the world, and the run goes on
    far = measured.assign(ttfb_ms=300.0)
    ch.check_ttfb_model(right, far, seed=1)
    said = capsys.readouterr().out
    assert "⚠" in said and "measured TTFB u → s" in said and "300" in said


@pytest.mark.parametrize("mistake", WRONG)
def test_each_wrong_model_is_named(mistake):
    with pytest.raises(CheckFailed) as failed:
        ch.check_ttfb_model(WRONG[mistake], NO_MEASUREMENTS, seed=2)
    assert mistake in str(failed.value)


def test_random_requests_use_several_methods_and_fresh_paths():
    rng = random.Random(3)
    first, second = ch.random_requests(rng, "/x"), ch.random_requests(rng, "/x")
    assert {r["method"] for r in first} == {"GET", "POST", "PUT"}
    assert all(r["path"].startswith("/x/") and r["query"] for r in first)
    assert {r["path"] for r in first}.isdisjoint(r["path"] for r in second)
    assert all(r["body"] for r in first if r["method"] != "GET")


def test_plots_draw():
    ttfb = pd.DataFrame(
        [
            {"host": "user-a", "target": t, "ttfb_ms": v}
            for t, v in [("origin", 100), ("nearest PoP", 10)]
        ]
    )
    assert ch.plot_ttfb_per_user(ttfb, ["user-a"], {"user-a": "pop-a"}).axes
    assert ch.plot_starts({"a": 0.5, "b": 200.0}).axes


@pytest.mark.loopback
@pytest.mark.timing
def test_the_origins_workers_limit_how_many_requests_it_serves_at_once():
    """`workers` in the origin's config (chapter 01's saturating origin) queues the rest."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from test_services_support import LoopbackEdge, request

    from kit.control import call

    edge = LoopbackEdge()
    try:

        def four_at_once() -> float:
            started = time.monotonic()
            with ThreadPoolExecutor(4) as pool:
                paths = [f"/api/items/{i}?think=200" for i in range(4)]
                assert all(
                    r.status == 200 for r in pool.map(lambda p: request(edge.origin.url, p), paths)
                )
            return time.monotonic() - started

        assert four_at_once() < 0.8  # no limit: all four think at once (0.2 s, with slack)
        call(edge.origin.control, "POST", "/_kit/config", {"workers": 1})
        assert four_at_once() >= 0.8  # one worker: four rounds of 200 ms, one after another
        call(edge.origin.control, "POST", "/_kit/config", {"workers": 0})
        assert four_at_once() < 0.8
    finally:
        edge.close()


def test_the_preferred_language_is_never_listed_first():
    rng = random.Random(5)
    for _ in range(50):
        header, preferred = ch.random_accept_language(rng)
        parts = [p.strip() for p in header.split(",")]
        assert parts[0].partition(";q=")[0] != preferred
        weights = {p.partition(";q=")[0]: float(p.partition(";q=")[2] or 1) for p in parts}
        assert max(weights, key=weights.get) == preferred
        assert len(set(weights.values())) == 3  # no ties
