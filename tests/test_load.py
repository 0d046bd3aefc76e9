"""Load runs: Locust's CSV files as tables from a real (loopback) run, bounds, timeout.

Locust runs as a subprocess only; this module never imports it.
"""

import asyncio
import os
import tempfile
import threading
from pathlib import Path

import matplotlib
import pytest
from aiohttp import web

matplotlib.use("Agg")

from kit.load import LoadError, plot_load, run_load, runner  # noqa: E402


@pytest.fixture(scope="module")
def server():
    """A tiny aiohttp server on 127.0.0.1 (ephemeral port) that counts what it serves."""
    served = {"/": 0, "/missing": 0}
    loop = asyncio.new_event_loop()

    async def hello(request):
        served["/"] += 1
        return web.Response(text="hello")

    async def missing(request):
        served["/missing"] += 1
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/missing", missing)
    app_runner = web.AppRunner(app)
    loop.run_until_complete(app_runner.setup())
    site = web.TCPSite(app_runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", served
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.run_until_complete(app_runner.cleanup())
    loop.close()


@pytest.fixture(autouse=True)
def own_tmp(tmp_path, monkeypatch):
    """Each test's runs keep their scratch in its own folder, told apart from the load
    tests of chapters running side by side (tests/conftest.py)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def leftovers() -> list[str]:
    """Locust processes or scratch folders of this test's runs still around."""
    here = Path(tempfile.gettempdir())
    found = [p.name for p in here.glob("edge-lab-load-*")]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if f"{here}/edge-lab-load-".encode() in cmdline:
            found.append(pid)
    return found


def test_a_real_run_becomes_tables(server):
    url, served = server
    result = run_load(None, "here", url, paths=["/", "/missing"], users=2, run_time_s=3,
                      progress=False)  # fmt: skip
    stats = result.stats.set_index("name")
    assert list(stats.index) == ["/", "/missing", "Aggregated"]
    assert (result.stats["source"] == "here").all()
    assert stats.loc["/", "requests"] > 0 and stats.loc["/", "failures"] == 0
    assert stats.loc["/missing", "failures"] == stats.loc["/missing", "requests"] > 0
    assert stats.loc["Aggregated", "requests"] == stats.loc[["/", "/missing"], "requests"].sum()
    # the CSV is written once a second, so it may miss the last requests, never add any
    assert stats.loc["/", "requests"] <= served["/"]
    assert stats.loc["/", "p50"] <= stats.loc["/", "p95"] <= stats.loc["/", "p99"]
    assert stats.loc["/", "avg_bytes"] == len("hello")

    summary = result.summary()
    assert list(summary.index) == ["here"]
    assert summary.loc["here", "failure_pct"] == pytest.approx(
        100 * stats.loc["Aggregated", "failures"] / stats.loc["Aggregated", "requests"]
    )

    history = result.history
    assert {"/", "/missing", "Aggregated"} <= set(history["name"])
    assert history["t_s"].min() == 0
    for name, rows in history.groupby("name"):  # counts only grow, for every request name
        assert rows["requests"].is_monotonic_increasing, name
    total = history[history["name"] == "Aggregated"]
    assert total["requests"].is_monotonic_increasing
    assert total["requests"].iloc[-1] == stats.loc["Aggregated", "requests"]

    failures = result.failures
    assert list(failures["name"]) == ["/missing"]
    assert "404" in failures["error"].iloc[0]
    assert failures["occurrences"].iloc[0] == stats.loc["/missing", "failures"]

    assert "Aggregated" in result.logs["here"]  # Locust's own summary is kept
    fig = plot_load(result)
    assert len(fig.axes) == 3
    assert leftovers() == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"users": 0}, "users=0"),
        ({"users": 5000}, "users=5000"),
        ({"spawn_rate": 0}, "spawn_rate=0"),
        ({"run_time_s": 0}, "run_time_s=0"),
        ({"run_time_s": 3600}, "run_time_s=3600"),
    ],
)
def test_runs_are_bounded(kwargs, message):
    with pytest.raises(LoadError, match=message):
        run_load(None, "here", "http://127.0.0.1:9", progress=False, **kwargs)


def test_without_a_world_only_loopback_is_loaded():
    with pytest.raises(LoadError, match="only 127.0.0.1"):
        run_load(None, "here", "http://10.255.0.1/", progress=False)
    with pytest.raises(LoadError, match="not a URL"):
        run_load(None, "here", "10.255.0.1", progress=False)


def test_a_broken_locustfile_reports_its_error(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("from locust import HttpUser\nraise RuntimeError('broken on purpose')\n")
    with pytest.raises(LoadError, match="broken on purpose") as failed:
        run_load(None, "here", "http://127.0.0.1:9", locustfile=broken, run_time_s=1,
                 progress=False)  # fmt: skip
    assert "exited with status" in str(failed.value)
    assert leftovers() == []


def test_the_hard_timeout_stops_locust(server, monkeypatch):
    monkeypatch.setattr(runner, "GRACE_S", 0)  # no time for Locust to start and stop
    with pytest.raises(LoadError, match="did not finish within 1 s"):
        run_load(None, "here", server[0], users=1, run_time_s=1, progress=False)
    assert leftovers() == []
