"""The factory on a world (kit/iot.py): real Mosquitto brokers, paho sensors, the uplink's faults.

Sensors on iot-sensor1..3 publish numbered readings to Mosquitto on iot-core, whose
bridge forwards them over the factory's uplink to a second Mosquitto in the cloud;
an ingest at each broker counts what arrived, per sensor, by sequence number. The
pure parts (configs, schedules, counting) are unit tests; the rest runs on the
session's default world, and two tests on small worlds of their own that are
stopped, or whose owner is killed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_services_support import wait_until

from kit.iot import (
    CORE,
    SENSORS,
    Bridge,
    broker_config,
    delivery,
    drain_seconds,
    outages,
    quantiles,
    start_factory,
)
from kit.net import World, registry
from kit.net.procs import ServiceError
from kit.services.ingest import SensorCount, parse_readings
from kit.services.sensor import reading_values

ROOT = Path(__file__).resolve().parents[1]


def factory_world(name: str) -> dict:
    """The factory, its uplink to Frankfurt and a cloud there: a world that starts fast."""
    return {
        "name": name,
        "regions": {
            "factory": {"city": "Stuttgart", "country": "DE"},
            "frankfurt": {"city": "Frankfurt", "country": "DE"},
        },
        "backbone": [{"a": "factory", "b": "frankfurt", "rtt_ms": 6, "bw_mbit": 2}],
        "nodes": {
            "origin-eu": {"kind": "origin", "region": "frankfurt"},
            "iot-core": {"kind": "iot", "region": "factory"},
            "iot-sensor1": {"kind": "iot", "region": "factory"},
        },
    }


def alive(pid: int) -> bool:
    return registry.running(pid)


# -- unit: configs, schedules, counting ------------------------------------------------


@pytest.mark.unit
def test_the_core_brokers_config_bridges_telemetry_out_and_commands_in(tmp_path):
    text = broker_config(
        "10.11.1.2", tmp_path / "iot-core.mosquitto", Bridge(), "10.1.1.2:1883", 50
    )
    lines = text.splitlines()
    assert "listener 1883 10.11.1.2" in lines  # the host's address, not every address
    assert "user root" in lines and "max_queued_messages 50" in lines
    assert f"persistence_location {tmp_path}/" in lines
    assert f"log_dest file {tmp_path}/iot-core.mosquitto.log" in lines
    bridge = lines[lines.index("connection cloud") :]
    assert "address 10.1.1.2:1883" in bridge and "cleansession false" in bridge
    assert "topic factory/+/telemetry out 1" in bridge and "topic factory/+/command in 1" in bridge
    assert "connection cloud" not in broker_config("10.1.1.2", tmp_path / "cloud").splitlines()
    with pytest.raises(ValueError, match="at least 5 s"):
        broker_config("10.11.1.2", tmp_path / "x", Bridge(keepalive_s=2), "10.1.1.2:1883")
    with pytest.raises(ValueError, match="needs the address"):
        broker_config("10.11.1.2", tmp_path / "x", Bridge())


@pytest.mark.unit
def test_an_outage_schedule_is_seeded_fits_and_restores_every_cut():
    schedule = outages(seed=7, duration=30, count=4, length=(1.0, 4.0))
    assert schedule == outages(seed=7, duration=30, count=4, length=(1.0, 4.0))
    assert schedule != outages(seed=8, duration=30, count=4, length=(1.0, 4.0))
    assert [e.do for e in schedule] == ["cut_link", "restore_link"] * 4
    assert all(e.args == ("factory", "frankfurt") for e in schedule)
    times = [e.at for e in schedule]
    assert times == sorted(times) and times[0] >= 0 and times[-1] <= 30
    for cut, restore in zip(schedule[::2], schedule[1::2], strict=True):
        assert 1.0 <= restore.at - cut.at <= 4.0
    assert all(b.at - a.at >= 1.0 for a, b in zip(schedule[1::2], schedule[2::2], strict=False))
    with pytest.raises(ValueError, match="do not fit"):
        outages(seed=1, duration=10, count=4, length=(3.0, 5.0))
    spaced = outages(seed=7, duration=30, count=3, length=(1.0, 2.0), apart=5.0)
    assert all(b.at - a.at >= 5.0 for a, b in zip(spaced[1::2], spaced[2::2], strict=False))


@pytest.mark.unit
def test_parse_readings_takes_readings_and_batches_and_refuses_the_rest():
    one = parse_readings(b'{"sensor": "s1", "seq": 3, "t": 1.5, "temp_c": 60}')
    assert one == [{"sensor": "s1", "seq": 3, "t": 1.5, "temp_c": 60}]
    batch = parse_readings(b'[{"sensor": "s1", "seq": 3}, {"sensor": "s2", "seq": 0}]')
    assert [(r["sensor"], r["seq"], r["t"]) for r in batch] == [("s1", 3, None), ("s2", 0, None)]
    for bad in (
        b"\xff\xfe not json",
        b'{"sensor": "s1", "seq": 3',
        b'{"sensor": "s1"}',
        b'{"sensor": "s1", "seq": "3"}',
        b'{"sensor": "s1", "seq": true}',
        b'{"sensor": "s1", "seq": -1}',
        b'{"sensor": "", "seq": 1}',
        b'[{"sensor": "s1", "seq": 1}, 7]',
        b"[]",
        b"42",
    ):
        assert parse_readings(bad) is None, bad


@pytest.mark.unit
def test_counting_by_sequence_number_finds_holes_duplicates_and_reordering():
    counted = SensorCount()
    for seq in (0, 1, 3, 2, 2, 6):
        counted.add(seq, sent=100.0, arrived=100.5, size=10)
    summary = counted.summary()
    assert summary["unique"] == 5 and summary["duplicates"] == 1
    assert summary["missing"] == 2  # 4 and 5
    assert summary["reordered"] == 1  # 2 after 3
    assert summary["bytes"] == 60 and summary["delay_ms"]["p50"] == 500.0


@pytest.mark.unit
def test_sensor_values_are_a_function_of_seed_sensor_and_seq():
    assert reading_values("s1", 5, seed=2) == reading_values("s1", 5, seed=2)
    assert reading_values("s1", 5, seed=2) != reading_values("s2", 5, seed=2)
    values = [reading_values("s1", seq) for seq in range(3000)]
    anomalies = sum(v["vib_mm_s"] > 6 for v in values)
    assert 10 <= anomalies <= 60  # about 1 %: rare, but there
    assert all(50 < v["temp_c"] < 80 for v in values)


@pytest.mark.unit
def test_delivery_and_drain_are_computed_from_reports_and_arrivals():
    reports = {"h1": {"sensor": "h1", "published": 10}, "h2": {"sensor": "h2", "published": 4}}
    arrived = {"sensors": {"h1": {"unique": 8, "duplicates": 2, "reordered": 1}}}
    table = delivery(reports, arrived)
    assert table["h1"] == {
        "published": 10,
        "arrived": 8,
        "lost": 2,
        "duplicates": 2,
        "reordered": 1,
    }
    assert table["h2"]["lost"] == 4  # nothing of it arrived
    detail = {"sensors": {"h1": {"entries": [[0, 9.0, 9.1], [1, 9.5, 12.5], [2, 11.0, 11.1]]}}}
    assert drain_seconds(detail, since=10.0) == pytest.approx(2.5)
    assert drain_seconds(detail, since=20.0) is None
    assert quantiles([3, 1, 2, 4], (0.5,)) == [3]


# -- world: the session's default world ------------------------------------------------


@pytest.fixture(scope="module")
def site(world):
    factory = start_factory(world)
    yield factory
    factory.stop()


def test_a_tcp_health_check_waits_for_the_port_and_names_a_service_that_never_opens(world):
    host = "iot-sensor3"
    ok = world.start_service(
        host,
        ["python", "-m", "http.server", "8123", "--bind", world.ip(host)],
        name="tcp-ok",
        health_url=f"tcp://{world.ip(host)}:8123",
    )
    world.stop_service(ok)
    with pytest.raises(ServiceError, match="did not answer tcp://"):
        world.start_service(
            host,
            ["sleep", "30"],
            name="tcp-never",
            health_url=f"tcp://{world.ip(host)}:8124",
            timeout=1.0,
        )


def test_readings_reach_the_core_broker_and_through_the_bridge_the_cloud(world, site):
    site.forget()
    reports = site.run_sensors(
        count=60, rate=50, qos=1, options=["--malformed", "0.1", "--wrong-topic", "0.1"]
    )
    assert all(r["published"] == 60 and r["acked"] == 60 for r in reports.values())
    # QoS 1 end to end: every reading at the core and in the cloud, once each
    assert wait_until(lambda: all(v["arrived"] == 60 for v in arrived(site, "cloud", reports)))
    for where in ("core", "cloud"):
        for host, row in delivery(reports, site.arrivals(where)).items():
            assert row == {**row, "lost": 0, "duplicates": 0, "reordered": 0}, (where, host)
    # Garbage on the telemetry topic crosses a plain bridge; stray topics do not
    malformed = sum(r["bad"]["malformed"] for r in reports.values())
    strays = sum(r["bad"]["wrong_topic"] for r in reports.values())
    assert malformed and strays, "the seeds should give both kinds of bad input"
    assert site.arrivals("cloud")["malformed"] == malformed
    assert site.arrivals("core")["malformed"] == malformed


def test_readings_posted_over_http_are_counted_as_mqtt_ones_are(world, site):
    site.forget()
    batch = [{"sensor": "gateway-7", "seq": seq, "t": time.time()} for seq in (0, 1, 2, 2, 4)]
    body = json.dumps(batch)
    answer = world.run(CORE, f"curl -s -X POST --data-binary '{body}' {site.ingest_url}/readings")
    assert json.loads(answer) == {"accepted": 5, "new": 4}
    bad = world.run(
        CORE, f"curl -s -o /dev/null -w '%{{http_code}}' -X POST -d x {site.ingest_url}/readings"
    )
    assert bad == "400"
    counted = site.arrivals("cloud")["sensors"]["gateway-7"]
    assert (counted["unique"], counted["duplicates"], counted["missing"]) == (4, 1, 1)


def test_the_uplink_can_be_narrowed_and_widened_again(world, site):
    before = world.link("factory", "frankfurt").params.bw_mbit
    site.narrow_uplink(0.25)
    try:
        assert world.link("factory", "frankfurt").params.bw_mbit == 0.25
    finally:
        site.narrow_uplink(before or 0)
    assert world.link("factory", "frankfurt").params.bw_mbit == before


def arrived(site, where, reports):
    return delivery(reports, site.arrivals(where)).values()


def test_a_reading_is_answered_by_the_local_rule_and_by_the_cloud(world, site):
    site.echo(core=True, cloud=True)
    try:
        reports = site.run_sensors(hosts=SENSORS[:1], count=30, rate=20, qos=1, listen=True)
    finally:
        site.echo(core=False, cloud=False)
    loops = reports[SENSORS[0]]["loop_ms"]
    assert len(loops["core"]) == 30 and len(loops["cloud"]) == 30


def test_the_uplink_carries_the_readings_bytes(world, site):
    before = site.uplink_bytes()
    reports = site.run_sensors(hosts=SENSORS[:1], count=100, rate=100, qos=1)
    assert wait_until(lambda: next(iter(arrived(site, "cloud", reports)))["arrived"] == 100)
    after = site.uplink_bytes()
    sent = after["up"] - before["up"]
    # each reading is a JSON object of about 85 bytes, plus its topic and headers
    assert sent > 100 * 85, sent
    assert after["down"] > before["down"]  # PUBACKs and TCP ACKs come back


def test_a_cut_uplink_queues_qos1_readings_in_the_bridge_and_delivers_them(world, site):
    site.forget()
    runs = site.start_sensors(duration=6, rate=10, qos=1)
    time.sleep(1.5)
    site.cut_uplink()
    try:
        time.sleep(3)
        stuck = site.arrivals("cloud")
    finally:
        site.restore_uplink()
    restored = time.time()
    reports = {run.host: run.wait(30) for run in runs}
    assert wait_until(
        lambda: all(row["arrived"] == row["published"] for row in arrived(site, "cloud", reports)),
        timeout=30,
    ), delivery(reports, site.arrivals("cloud"))
    table = delivery(reports, site.arrivals("cloud"))
    assert all(row["lost"] == 0 and row["reordered"] == 0 for row in table.values()), table
    # during the cut nothing more arrived than before it; the backlog came after
    during = sum(s["unique"] for s in stuck["sensors"].values())
    assert during < sum(row["published"] for row in table.values())
    drain = drain_seconds(site.arrivals("cloud", detail=True), restored)
    assert drain is not None, "readings published during the cut arrived only after it"
    print(f"bridge over a 3 s cut: {table}, drained {drain:.2f} s after restore")


def test_a_flooding_sensor_does_not_starve_the_others_at_the_core_broker(world, site):
    site.forget()
    flood = site.start_sensors(hosts=SENSORS[:1], duration=3, qos=0, options=["--flood"])
    steady = site.start_sensors(hosts=SENSORS[1:2], count=20, rate=10, qos=1)
    reports = {run.host: run.wait(30) for run in flood + steady}
    assert reports[SENSORS[0]]["published"] > 10 * reports[SENSORS[1]]["published"], reports
    # The broker acknowledged every steady reading; the core's ingest may still be working
    # through the flood in front of the last one, so it gets a while to count them all.
    steady_report = {SENSORS[1]: reports[SENSORS[1]]}
    wait_until(lambda: all(r["lost"] <= 0 for r in arrived(site, "core", steady_report)), 15)
    core = delivery(steady_report, site.arrivals("core"))
    assert core[SENSORS[1]]["lost"] == 0 and core[SENSORS[1]]["duplicates"] == 0, core


# The next two start a factory of their own on the session's world, which replaces the
# module's (one factory per world): they come after every test that uses `site`.


def test_a_short_bridge_queue_drops_readings_and_the_broker_says_so(world):
    small = start_factory(world, max_queued=10)
    try:
        runs = small.start_sensors(duration=5, rate=10, qos=1)
        time.sleep(1)
        small.cut_uplink()
        try:
            time.sleep(3)
        finally:
            small.restore_uplink()
        reports = {run.host: run.wait(30) for run in runs}
        # what reached the core broker is all there (its ingest may count late on a busy
        # machine, hence the wait): the loss is the bridge's queue
        wait_until(lambda: all(row["lost"] <= 0 for row in arrived(small, "core", reports)), 15)
        time.sleep(2)  # the backlog that was kept crosses in well under a second
        table = delivery(reports, small.arrivals("cloud"))
        lost = sum(row["lost"] for row in table.values())
        assert lost > 0, table
        assert "Outgoing messages are being dropped" in small.broker_log(tail=None)
        core = delivery(reports, small.arrivals("core"))
        assert all(row["lost"] == 0 for row in core.values()), core
    finally:
        small.stop()


def test_a_crashed_core_broker_loses_the_bridges_queue_and_comes_back(world):
    crashing = start_factory(world)
    try:
        runs = crashing.start_sensors(duration=6, rate=10, qos=1)
        time.sleep(1)
        crashing.cut_uplink()
        try:
            time.sleep(2)  # about 60 readings queued for the bridge, in memory
            old = crashing.services["core-broker"]
            crashing.crash_core_broker()
            assert not old.running and crashing.services["core-broker"].running
        finally:
            crashing.restore_uplink()
        reports = {run.host: run.wait(30) for run in runs}
        crashing.wait_bridge(True, timeout=60)
        last = {r["sensor"]: r["published"] - 1 for r in reports.values()}

        def every_last_arrived() -> bool:
            seen = crashing.arrivals("cloud")["sensors"]
            return all(seen.get(name, {}).get("highest") == seq for name, seq in last.items())

        wait_until(every_last_arrived, 15)
        table = delivery(reports, crashing.arrivals("cloud"))
        assert sum(row["lost"] for row in table.values()) > 0, table  # the queue died
        seen = crashing.arrivals("cloud")["sensors"]
        # readings flow again (sensors and bridge reconnected): each sensor's last one arrived
        assert {name: seen[name]["highest"] for name in last} == last, table
    finally:
        crashing.stop()


SPOOLER = """
import os, sqlite3, time
db = sqlite3.connect(os.environ["SPOOL"])
db.execute("CREATE TABLE spool (sensor TEXT, seq INTEGER)")
db.commit()
print("spooling for", os.environ["CORE_BROKER"], "to", os.environ["CLOUD_BROKER"], flush=True)
time.sleep(600)
"""


def test_stopping_the_factory_leaves_no_process_and_no_file(world):
    other = start_factory(world, cloud="origin-eu")
    with pytest.raises(ServiceError, match="SyntaxError"):
        other.start_function("def broken(:\n", name="broken")
    function = other.start_function(SPOOLER, name="spooler")
    assert wait_until(lambda: "spooling for" in function.log())
    assert f"for {other.core_broker} to {other.cloud_broker}" in function.log()
    pids = [s.proc.pid for s in [*other.services.values(), function]]
    assert all(alive(pid) for pid in pids)
    scratch = Path(world.record.scratch)
    assert (scratch / "iot-core.mosquitto.conf").exists() and other.spool_path().exists()
    other.stop()
    assert not any(alive(pid) for pid in pids)
    left = [p.name for p in scratch.iterdir() if not p.name.endswith(".log")]
    assert not [name for name in left if "mosquitto" in name or "ingest" in name], left
    assert not list(scratch.glob("iot-core.*.sqlite*")) and not list(scratch.glob("iot-core.*.py"))


# -- worlds of their own: stopped, or their owner killed --------------------------------


@pytest.mark.world
def test_a_stopped_world_leaves_no_mosquitto():
    with World(factory_world("iot-tidy")) as w:
        site = start_factory(w, cloud="origin-eu")
        report = site.run_sensors(hosts=["iot-sensor1"], count=5, rate=50)
        assert report["iot-sensor1"]["published"] == 5
        brokers = [site.services[k].proc.pid for k in ("core-broker", "cloud-broker")]
        record = w.record
    assert not any(alive(pid) for pid in brokers)
    assert not Path(record.scratch).exists()


OWNER = """
import json, sys, time
from kit.net import World
from kit.iot import start_factory
w = World(json.loads(sys.argv[1])).start()
site = start_factory(w, cloud="origin-eu")
site.start_sensors(hosts=["iot-sensor1"], duration=600, rate=5)
pids = [s.proc.pid for s in w.services]
print(json.dumps({"id": w.record.id, "pids": pids}), flush=True)
time.sleep(600)
"""


@pytest.mark.world
def test_a_killed_kernel_takes_its_brokers_and_sensors_along():
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, json.dumps(factory_world("iot-crash"))],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        started = json.loads(owner.stdout.readline() or "{}")
        assert started, "the owner did not start its factory"
        assert len(started["pids"]) == 5 and all(alive(p) for p in started["pids"])
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        owner.stdout.close()
    # the death signal: each process dies with the world's owner, Mosquitto included
    assert wait_until(lambda: not any(alive(p) for p in started["pids"]), timeout=10)
    record = next(r for r in registry.load_records() if r.id == started["id"])
    assert registry.world_processes(record) == []
    registry.reap(record)  # the record and scratch folder, as `python -m kit clean` would
    assert not Path(record.scratch).exists()
