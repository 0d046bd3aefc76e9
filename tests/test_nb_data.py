"""Chapter 07's kit helpers without a world: the mix of reads and writes, the crossover,
histories built from clients' rows, the workload's plans and lag schedule, and the
fallback while an exercise is unwritten."""

import numpy as np
import pandas as pd
import pytest

from kit.nb.data_checks import (
    CITIES,
    Workload,
    history_of,
    probe_source,
    violations_summary,
    written,
)
from kit.nb.data_plots import SETUPS, crossover, crossover_table, data_claims, mix
from kit.nb.hints import load_hints

pytestmark = pytest.mark.unit


def test_a_mix_weights_reads_and_writes_by_their_share():
    reads, writes = np.array([10.0, 10.0]), np.array([100.0, 100.0, 100.0])
    mean, _ = mix(reads, writes, 9)  # 90 % reads, whatever the number of samples of each
    assert mean == pytest.approx(0.9 * 10 + 0.1 * 100)


def test_the_p95_of_a_mix_is_a_write_until_writes_are_under_five_percent():
    reads, writes = np.full(10, 10.0), np.full(10, 200.0)
    assert mix(reads, writes, 10)[1] == 200.0  # 9 % writes
    assert mix(reads, writes, 30)[1] == 10.0  # 3 % writes


def samples(city: str, edge_read: float, edge_write: float, central: float) -> list[dict]:
    rows = []
    for setup, read, write in [(SETUPS[0], edge_read, edge_write), (SETUPS[1], central, central)]:
        for i in range(10):
            jitter = i * 0.1
            rows.append(dict(city=city, setup=setup, kind="read", status=200, ms=read + jitter))
            rows.append(dict(city=city, setup=setup, kind="write", status=200, ms=write + jitter))
    return rows


def test_the_crossover_depends_on_the_city_and_the_metric():
    rows = samples("far", 5, 300, 150) + samples("nowhere", 125, 125, 120)
    rows += samples("near", 5, 150, 150)
    found = crossover(crossover_table(pd.DataFrame(rows)))
    assert found.loc["far", "mean: edge wins from"] == "2:1"  # 1:1 is 152.5 against 150
    assert found.loc["near", "mean: edge wins from"] == "1:1 or less"
    assert found.loc["far", "p95: edge wins from"] == "20:1"  # writes under 5 %
    assert found.loc["nowhere", "mean: edge wins from"].startswith("never")


def test_a_tie_is_not_a_win():
    found = crossover(crossover_table(pd.DataFrame(samples("next door", 17, 17.5, 17.2))))
    assert found.loc["next door", "mean: edge wins from"].startswith("never")


def test_failed_samples_are_left_out_of_the_mix():
    rows = samples("x", 5, 100, 100)
    rows.append(dict(city="x", setup=SETUPS[0], kind="read", status=500, ms=9999.0))
    table = crossover_table(pd.DataFrame(rows))
    assert table["mean"].max() < 200


def row(session, kind, key, value, start, end, **more):
    return {"session": session, "kind": kind, "key": key, "value": value, "start": start,
            "end": end, **more}  # fmt: skip


def test_a_history_takes_commit_order_from_the_primary_not_from_the_answer():
    rows = [
        row("a", "write", "k", "a.1", 0.0, 1.0),
        row("a", "read", "k", None, 2.0, 3.0),  # the replica did not have it yet
        row("b", "write", "k", "b.1", 4.0, None, error="timeout"),  # committed, answer lost
        row("c", "read", "k", "b.1", 5.0, 6.0),
    ]
    history = history_of(rows, {"a.1": 7, "b.1": 9})
    broken = history.violations()
    assert list(broken["guarantee"]) == ["read your writes"]
    assert broken.iloc[0]["expected at least"] == 7
    summary = violations_summary(history, pd.DataFrame(rows))
    assert summary["errors"] == 1 and summary["unknown values"] == 0


class FakeEdge:
    anycast_url = "http://10.255.0.1"

    def pop_url(self, pop):
        return f"http://{pop}"


class FakeDb:
    replicas = ["db-eu", "db-ap"]

    def __init__(self):
        self.calls = []

    def ship_every(self, s):
        self.calls.append(("ship", s))

    def pause(self, host):
        self.calls.append(("pause", host))

    def resume(self, host):
        self.calls.append(("resume", host))


def test_a_workload_has_sessions_from_every_city_some_failing_over():
    workload = Workload(None, FakeEdge(), FakeDb(), duration_s=8, seed=3)
    plans = workload.plans(start_at=100.0)
    assert {p["host"] for p in plans} == set(CITIES)
    assert len({p["session"] for p in plans}) == len(plans)
    moved = [p for p in plans if len(p["route"]) > 1]
    assert moved and all(p["route"][1][1] == f"http://{CITIES[p['host']]}" for p in moved)
    keys = [k for p in plans for k in p["keys"]]
    assert len(set(keys)) == len(keys) and all(k.startswith(workload.prefix) for k in keys)


def test_the_lag_schedule_pauses_and_resumes_each_replica():
    db = FakeDb()
    schedule = Workload(None, FakeEdge(), db, duration_s=10, seed=1).lag_schedule()
    assert [at for at, _, _ in schedule] == sorted(at for at, _, _ in schedule)
    for _, change, _ in schedule:
        change()
    for replica in db.replicas:
        assert db.calls.index(("pause", replica)) < db.calls.index(("resume", replica))
    assert len({s for kind, s in db.calls if kind == "ship"}) == 2


def unwritten(env, bookmark, wait_s):
    # YOUR CODE HERE
    raise NotImplementedError()


def done(env, bookmark, wait_s):
    return True


def test_an_unwritten_exercise_is_told_apart():
    assert not written(unwritten) and written(done) and not written(done, unwritten)


def test_the_probe_ships_the_function_with_its_caller():
    source = probe_source(done, "\n\nasync def fetch(request, env, ctx):\n    return None\n")
    assert "def done(env, bookmark, wait_s)" in source and "async def fetch" in source
    compile(source, "probe", "exec")


def test_the_claims_read_this_runs_tables():
    crossovers = pd.DataFrame(
        {"mean: edge wins from": ["1:1 or less"], "p95: edge wins from": ["20:1"]},
        index=["tokyo"],
    )
    colocated = pd.DataFrame({1: [7.0, 240.0], 8: [20.0, 1900.0]}, index=["near", "far"])
    histories = pd.DataFrame(
        {"operations": [2000, 1500], "read your writes": [240, 0], "monotonic reads": [15, 0]},
        index=["without", "with"],
    )
    claims = data_claims(crossovers, colocated, histories, "without", "with")
    assert "tokyo: mean 1:1 or less, p95 20:1" in claims[0].measured
    assert "near 20 ms" in claims[1].measured and "far 1900 ms" in claims[1].measured
    assert "240 read-your-writes" in claims[2].measured


def test_both_exercises_have_three_hint_levels():
    hints = load_hints()
    for name in ("07-wait", "07-session"):
        assert len(hints[name]["levels"]) == 3
