"""A load test from world hosts against a server on another world host (root + Mininet)."""

from kit.load import run_loads


def test_load_from_two_metros_at_once(world, origin_url):
    url = origin_url.rstrip("/")
    result = run_loads(world, ["user-tokyo", "user-berlin"], url, users=2, run_time_s=3,
                       progress=False)  # fmt: skip
    summary = result.summary()
    assert list(summary.index) == ["user-tokyo", "user-berlin"]
    assert (summary["requests"] > 0).all()
    assert (summary["failures"] == 0).all()
    for source in summary.index:
        # a response cannot come back faster than one round trip to the origin
        assert summary.loc[source, "p50"] >= world.configured_rtt(source, "origin")
    assert set(result.history["source"]) == {"user-tokyo", "user-berlin"}
    assert result.failures.empty
