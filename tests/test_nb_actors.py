"""Chapter 08's kit helpers without a world: the learner's classes as a handler module,
the request driver and the poller against a local server, and the tables, plots and
claims from made-up measurements (also while an exercise is unwritten).

The checks themselves run on a world in the chapter's notebook tests and against the
wrong solutions in `tests/wrong/08-kv-and-actors/`.
"""

from __future__ import annotations

import json
import linecache
import shlex
import subprocess
import sys
import threading
import time

import matplotlib
import numpy as np
import pandas as pd
import pytest
from aiohttp import web

from kit.nb.actor_checks import _dupes, _read_hint, drive, fresh, number, yours
from kit.nb.actor_plots import (
    POLLER,
    actor_claims,
    plot_latency,
    plot_lost,
    plot_staleness,
    staleness_summary,
    with_probe,
)
from kit.nb.claims import what_you_measured
from kit.runtime.loader import load_handler

matplotlib.use("Agg")
pytestmark = pytest.mark.unit

CELL = """import json


class Tally:
    def __init__(self, state, env):
        self.storage = state.storage

    async def fetch(self, request):
        return Response.json({"id": json.dumps(1)})


async def front(request, env, ctx):
    return await env.actors.get("Tally", "t").fetch(request)
"""


def _as_a_cell(source: str) -> dict:
    """Run `source` as a notebook runs a cell: compiled under a name linecache knows."""
    name = f"<cell-{fresh('x')}>"
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    namespace: dict = {"Response": object}
    exec(compile(source, name, "exec"), namespace)
    return namespace


def test_yours_ships_classes_functions_and_the_cells_imports():
    source = yours("Tally", "front", namespace=_as_a_cell(CELL))
    assert source is not None
    assert source.startswith("import json")
    assert "class Tally:" in source and "async def front(" in source
    assert source.rstrip().endswith("fetch = front")
    handler = load_handler(source)  # what a PoP would load
    assert handler.kind == "fetch" and "Tally" in handler.namespace


def test_yours_says_none_while_a_name_is_not_defined():
    assert yours("Tally", "front", namespace={}) is None
    assert yours("Missing", namespace=_as_a_cell(CELL)) is None


def test_the_probe_loads_beside_a_handler_and_alone():
    assert load_handler(with_probe(None)).kind == "fetch"
    combined = load_handler(with_probe(yours("Tally", "front", namespace=_as_a_cell(CELL))))
    assert {"_kit_probe", "_learners", "Tally"} <= set(combined.namespace)


def test_number_and_dupes():
    assert number('{"count": 3}', "count") == 3
    assert number("not json", "count") is None and number("[1]", "count") is None
    assert "told twice or more: [2]" in _dupes([1, 2, 2, 3])
    assert "told twice" not in _dupes([1, 2, 3])


def test_a_get_that_reads_less_than_was_acknowledged_asks_about_the_await():
    assert "(awaited)" in _read_hint([2, 3], 3)
    assert "(awaited)" not in _read_hint([4, 5], 3)  # GETs that count: another mistake
    assert "(awaited)" not in _read_hint([None, 3], 3)


# -- the driver and the poller, on this machine ----------------------------------------


class Local:
    """A stand-in for a world: runs a host's command on this machine."""

    def run(self, host: str, command: str, timeout: float = 60) -> str:
        done = subprocess.run(
            ["sh", "-c", command], capture_output=True, text=True, timeout=timeout, check=True
        )
        return done.stdout


@pytest.fixture
def server():
    """A counter that answers after 50 ms, so concurrency shows in the timings."""
    state = {"n": 0, "values": {}}

    async def count(request: web.Request) -> web.Response:
        await _sleep(0.05)
        state["n"] += 1
        return web.json_response({"count": state["n"]})

    async def value(request: web.Request) -> web.Response:
        return web.Response(text=state["values"].get(request.match_info["key"], "old"))

    app = web.Application()
    app.router.add_post("/count", count)
    app.router.add_get("/_probe/kv/{key}", value)
    ready, holder = threading.Event(), {}

    def serve() -> None:
        import asyncio

        loop = asyncio.new_event_loop()
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        holder["port"] = site._server.sockets[0].getsockname()[1]
        holder["loop"] = loop
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    yield f"http://127.0.0.1:{holder['port']}", state
    holder["loop"].call_soon_threadsafe(holder["loop"].stop)
    thread.join(5)


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


@pytest.mark.loopback
@pytest.mark.timing
def test_drive_sends_each_hosts_requests_concurrently_from_one_start(server):
    base, state = server
    asks = [("POST", f"{base}/count", 0)] * 8
    rows = drive(Local(), {"a": (asks, 4), "b": (asks[:2], 1)}, start_in_s=1.0)
    assert len(rows) == 10 and set(rows.host) == {"a", "b"}
    assert (rows.status == 200).all()
    assert sorted(number(b, "count") for b in rows.body) == list(range(1, 11))
    a = rows[rows.host == "a"]
    assert a.end.max() - a.start.min() < 8 * 0.05  # four at a time, not one after another
    assert abs(rows.start.min() - rows[rows.host == "b"].start.min()) < 0.5  # together


@pytest.mark.loopback
def test_drive_waits_for_an_asks_time_and_reports_what_failed(server):
    base, _ = server
    later = time.time() + 1.5
    rows = drive(
        Local(),
        {"a": ([("POST", f"{base}/count", later), ("GET", "http://127.0.0.1:9/", 0)], 1)},
        start_in_s=0.2,
    )
    assert rows.start.iloc[0] >= later
    assert rows.status.iloc[1] == 0 and "Error" in rows.body.iloc[1]


@pytest.mark.loopback
def test_the_poller_notes_when_a_new_value_is_first_read(server):
    base, state = server
    plan = {"base": base, "until": time.time() + 3, "every": 0.05, "start_at": 0}
    plan["keys"] = [["k1", 2, "new"], ["k2", 2, "new"]]
    threading.Timer(0.5, lambda: state["values"].update(k1="new")).start()
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(POLLER)} "
    seen = json.loads(Local().run("here", command + shlex.quote(json.dumps(plan))))
    assert set(seen) == {"k1"} and seen["k1"] > plan["until"] - 3 + 0.4


# -- tables, plots and claims from made-up measurements --------------------------------

POPS = ["pop-tokyo", "pop-frankfurt", "pop-virginia"]


def _stale() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = [
        {"pop": pop, "cache_ttl_s": ttl, "stale_s": 0.1 if pop == "pop-frankfurt" else x}
        for ttl in (2, 5)
        for pop in POPS
        for x in rng.uniform(0, ttl, 3)
    ]
    return pd.DataFrame(rows)


def _steps(lost: list[int]) -> pd.DataFrame:
    rows = [
        {"clients": c, "acknowledged": 3 * c, "counted": 3 * c - k, "lost": k}
        | {"lost %": 100 * k / (3 * c), "req/s": 10.0, "p50 ms": 100.0, "p99 ms": 200.0}
        for c, k in zip((4, 16, 64), lost, strict=True)
    ]
    return pd.DataFrame(rows).set_index("clients")


LATENCY = pd.DataFrame(
    {
        "KV read (copy at the PoP)": [6.0, 15.0],
        "KV write": [160.0, 100.0],
        "actor (lives in Frankfurt)": [250.0, 20.0],
    },
    index=["tokyo", "berlin"],
)
CUT = pd.DataFrame(
    [
        {"from": "Tokyo", "what": "KV read", "status": 200},
        {"from": "Tokyo", "what": "KV write", "status": 503},
        {"from": "Tokyo", "what": "actor first called from Berlin", "status": 503},
    ]
).set_index(["from", "what"])


def test_staleness_summary_separates_the_writers_pop():
    summary = staleness_summary(_stale())
    assert list(summary.index) == [2, 5]
    assert (summary["longest at the writer's PoP (s)"] == 0.1).all()
    assert (summary["longest at other PoPs (s)"] <= summary.index.to_numpy()).all()


def test_plots_draw_from_measurements_and_from_an_unwritten_exercise():
    assert plot_staleness(_stale()).axes
    empty = pd.DataFrame(columns=["acknowledged", "lost", "lost %", "p50 ms", "p99 ms"])
    assert plot_lost({"KV": _steps([2, 30, 150]), "actor": empty}).axes
    assert plot_latency(LATENCY).axes


def test_claims_print_this_runs_numbers():
    limits = {
        "KV": {"limit": 5, "asked": 24, "allowed": 17},
        "actor": {"limit": 5, "asked": 24, "allowed": 5},
    }
    lost = {"KV": _steps([2, 30, 150]), "actor": _steps([0, 0, 0])}
    text = what_you_measured(actor_claims(_stale(), lost, LATENCY, CUT, limits)).to_string()
    assert "150 of 192 lost at 64 clients" in text and "0 of 192 lost" in text
    assert "tokyo at 250 ms" in text and "KV write 503" in text
    assert "KV: 17 of 24 allowed, actor: 5 of 24 allowed" in text and "a limit of 5" in text


def test_claims_say_what_was_not_measured():
    nothing = LATENCY.assign(**{"actor (lives in Frankfurt)": np.nan})
    claims = actor_claims(
        _stale(), {"KV": _steps([1, 2, 3]), "actor": pd.DataFrame()}, nothing, CUT
    )
    assert sum("not written yet" in c.measured for c in claims) == 3  # actor, latency, limit
