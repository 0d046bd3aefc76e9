"""Chapter 09's kit helpers without a world: the checks against the chapter's own solutions,
the programs that run a learner's class on the core device (against a Mosquitto and an
HTTP ingest on this machine), and the tables, plots and claims from made-up measurements.

The checks run on a world in the chapter's notebook tests, and against the wrong
solutions in `tests/wrong/09-iot-edge/`.
"""

from __future__ import annotations

import json
import linecache
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import matplotlib
import paho.mqtt.client as mqtt
import pandas as pd
import pytest
from test_services_support import wait_until

from kit.control.client import request as control_request
from kit.nb.checks import CheckFailed
from kit.nb.claims import what_you_measured
from kit.nb.iot_checks import (
    LocalProbe,
    ShadowProbe,
    SpoolProbe,
    empty_shadow,
    mine,
    reference_update,
)
from kit.nb.iot_plots import (
    iot_claims,
    loop_table,
    outage_table,
    plot_loop,
    plot_outages,
    plot_uplink,
    shadow_table,
    uplink_table,
)
from kit.nb.iot_site import site_program
from kit.nb.notebooks import read_notebook

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "solutions" / "09-iot-edge.ipynb"


def solution(exercise: str) -> str:
    """The source of an exercise cell of the chapter, markers and all (they are comments)."""
    cells = [c for c in read_notebook(CHAPTER).cells if c.metadata.get("exercise") == exercise]
    return cells[0].source


def as_a_cell(source: str) -> dict:
    """Run `source` as a notebook runs a cell: compiled under a name linecache knows."""
    name = f"<cell-09-{abs(hash(source))}>"
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    namespace: dict = {}
    exec(compile(source, name, "exec"), namespace)
    return namespace


# -- the checks against the chapter's solutions ----------------------------------------


@pytest.mark.unit
def test_each_probe_passes_the_chapters_solution_on_fresh_inputs():
    local = as_a_cell(solution("09-local"))["Local"]
    spool = as_a_cell(solution("09-spool"))["Spool"]
    shadow = as_a_cell(solution("09-shadow"))["update_shadow"]
    for _ in range(3):  # three made-up runs each
        LocalProbe().check(local)
        SpoolProbe().check(spool)
        ShadowProbe().check(shadow)


@pytest.mark.unit
def test_a_probe_says_what_is_missing_or_unwritten():
    with pytest.raises(CheckFailed, match="Local"):
        LocalProbe().check(None)

    class Unwritten:
        def __init__(self, *args):
            raise NotImplementedError()

    with pytest.raises(NotImplementedError):  # `check` turns it into its own message
        SpoolProbe().check(Unwritten)
    Spool = 1  # noqa: N806, F841 (a name in this frame: mine() looks here)
    assert mine("Spool") is None  # a module global, not a local: like a notebook's
    assert mine("CHAPTER") == CHAPTER


@pytest.mark.unit
def test_the_shadow_reference_follows_aws_semantics():
    status, doc = reference_update(empty_shadow(), {"state": {"desired": {"fan": 3}}})
    assert (status, doc["version"], doc["state"]["delta"]) == (200, 1, {"fan": 3})
    status, doc = reference_update(doc, {"state": {"reported": {"fan": 3}}, "version": 1})
    assert status == 200 and "delta" not in doc["state"] and doc["version"] == 2
    assert reference_update(doc, {"state": {"desired": {"fan": 4}}, "version": 1})[0] == 409
    status, doc = reference_update(doc, {"state": {"reported": {"fan": None}}})
    assert doc["state"]["reported"] == {} and doc["state"]["delta"] == {"fan": 3}


@pytest.mark.unit
def test_the_program_runs_the_last_definition_of_the_source():
    source = "import json\n\n\nclass Tally:\n    pass\n\n\nfetch = Tally\n"
    program = site_program(source, "spool", batch=5)
    assert "class Tally:" in program and "fetch = Tally" not in program
    assert program.rstrip().endswith("main(Tally, 'spool', '{\"batch\": 5}')")
    compile(program, "program", "exec")
    with pytest.raises(NotImplementedError):
        site_program(None, "spool")


# -- the programs on this machine: a Mosquitto, an HTTP ingest ---------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    """A Mosquitto on 127.0.0.1 that a test can kill and start again on the same port."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
        self.address = f"127.0.0.1:{self.port}"
        self.start()

    def start(self) -> None:
        argv = ["/usr/sbin/mosquitto", "-c", str(self.conf)]
        self.proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def mosquitto(tmp_path):
    broker = Mosquitto(tmp_path)
    yield broker
    broker.kill()


@pytest.fixture
def broker(mosquitto):
    return mosquitto.address


@pytest.fixture
def ingest():
    """An HTTP ingest that refuses the first three POSTs (503), then keeps every reading."""
    got: list[tuple[str, int]] = []
    posts = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["content-length"]))
            posts["n"] += 1
            if posts["n"] <= 3:
                self.send_response(503)
            else:
                got.extend((r["sensor"], r["seq"]) for r in json.loads(body))
                self.send_response(200)
            self.end_headers()

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", got
    server.shutdown()


def start(tmp_path: Path, source: str, mode: str, broker: str, url: str, **options):
    script = tmp_path / f"{mode}.py"
    script.write_text(site_program(source, mode, **options))
    env = {**os.environ, "CORE_BROKER": broker, "INGEST_URL": url}
    env["SPOOL"] = str(tmp_path / "spool.sqlite")
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE)
    report = tmp_path / "spool.sqlite.report.json"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and proc.poll() is None:
        if report.exists() and json.loads(report.read_text()).get("ready"):
            return proc, report
        time.sleep(0.05)
    raise AssertionError(f"the {mode} program did not subscribe: {proc.poll()}")


def publisher(broker: str) -> mqtt.Client:
    host, _, port = broker.rpartition(":")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{time.time()}")
    client.connect(host, int(port))
    client.loop_start()
    return client


def cell_source(exercise: str, name: str) -> str:
    """What `yours(name)` would ship: the cell's code, the entry named last."""
    return solution(exercise) + f"\n\nfetch = {name}\n"


@pytest.mark.loopback
def test_the_spool_program_delivers_every_reading_through_refused_posts(tmp_path, broker, ingest):
    url, got = ingest
    proc, report = start(tmp_path, cell_source("09-spool", "Spool"), "spool", broker, url)
    client = publisher(broker)
    sent = [(s, seq) for seq in range(40) for s in ("a", "b")]
    for s, seq in sent:
        client.publish(f"factory/{s}/telemetry", json.dumps({"sensor": s, "seq": seq}), qos=1)
    deadline = time.monotonic() + 20
    while len(set(got)) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.terminate()
    proc.wait(10)
    client.loop_stop()
    assert sorted(got) == sorted(sent)  # every reading once
    for s in ("a", "b"):
        assert [q for x, q in got if x == s] == list(range(40))  # in order per sensor
    counts = json.loads(report.read_text())
    assert counts["failed_posts"] == 3 and counts["forwarded"] == len(sent)


@pytest.mark.loopback
def test_the_spool_program_subscribes_again_after_the_core_broker_restarts(
    tmp_path, mosquitto, ingest
):
    url, got = ingest
    source = cell_source("09-spool", "Spool")
    proc, report = start(tmp_path, source, "spool", mosquitto.address, url)
    ready = json.loads(report.read_text())["ready"]
    mosquitto.kill()  # a crash: its sessions and queues are gone
    mosquitto.start()
    deadline = time.monotonic() + 30  # bounds on a busy machine, not timings
    while json.loads(report.read_text())["ready"] <= ready and time.monotonic() < deadline:
        time.sleep(0.05)
    assert json.loads(report.read_text())["ready"] > ready, "no new subscription in 30 s"
    client = publisher(mosquitto.address)
    for seq in range(10):
        client.publish("factory/a/telemetry", json.dumps({"sensor": "a", "seq": seq}), qos=1)
    deadline = time.monotonic() + 30
    while len(got) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.terminate()
    proc.wait(10)
    client.loop_stop()
    assert sorted(got) == [("a", seq) for seq in range(10)]


@pytest.mark.loopback
def test_the_local_program_forwards_what_the_class_returns_and_flushes(tmp_path, broker):
    proc, report = start(
        tmp_path, cell_source("09-local", "Local"), "local", broker, "", window=5, limit=6.0
    )
    client = publisher(broker)
    out: list[dict] = []
    subscribed = threading.Event()
    client.on_message = lambda _c, _u, m: out.append(json.loads(m.payload))
    client.on_subscribe = lambda *_: subscribed.set()
    client.subscribe("cloud/factory/out", qos=1)
    assert subscribed.wait(15), "no SUBACK for the test's own subscription"
    for seq in range(12):
        vib = 9.0 if seq == 7 else 2.0
        reading = {"sensor": "m1", "seq": seq, "temp_c": 60.0, "vib_mm_s": vib}
        client.publish("factory/m1/telemetry", json.dumps(reading), qos=1)
    client.publish("factory/m1/telemetry", b"not json", qos=1)
    client.publish("factory/m1/debug", json.dumps(reading), qos=1)
    wait_until(lambda: json.loads(report.read_text())["messages"] >= 14, 15)  # all 14 taken
    proc.terminate()  # flush: the partial window 10..11
    proc.wait(10)
    wait_until(lambda: any(o.get("first") == 10 for o in out), 15)  # the flushed one, last
    client.loop_stop()
    summaries = sorted((o["first"], o["last"], o["count"]) for o in out if "first" in o)
    assert summaries == [(0, 4, 5), (5, 9, 5), (10, 11, 2)]
    assert [o["seq"] for o in out if "first" not in o] == [7]
    counts = json.loads(report.read_text())
    assert counts["logged"] == 2 and counts["forwarded"] == 4 and counts["messages"] == 14
    assert b'"event": "log"' in proc.stdout.read()


# -- tables, plots and claims from made-up measurements --------------------------------

LOOP = {"core": [3.0] * 90 + [9.0] * 10, "cloud": [150.0] * 95 + [200.0] * 5}
LOOP |= {"cloud_host": "origin", "rtt_ms": 96.0}
ROW = {"readings": 600, "messages up": 600, "bytes up": 90000, "bytes up per reading": 150.0}


def run(how: str, lost: int, dup: int) -> dict:
    t0 = 1000.0
    arrivals = [("s1", i, t0 + i / 10, t0 + i / 10 + 0.05) for i in range(100)]
    return {
        "how": how,
        "published": 100,
        "lost": lost,
        "duplicates": dup,
        "reordered": 0,
        "drain_s": 1.5,
        "cuts": [(t0 + 2, t0 + 4)],
        "started": t0,
        "arrivals": arrivals,
    }


@pytest.mark.unit
def test_tables_and_plots_draw_from_measurements_and_from_an_unwritten_exercise():
    assert list(loop_table(LOOP)["p50 ms"]) == [3.0, 150.0]
    assert plot_loop(LOOP).axes
    local = dict(ROW, **{"messages up": 40, "bytes up": 7000, "bytes up per reading": 12.0})
    assert plot_uplink(uplink_table({"every reading": ROW, "your local function": local})).axes
    assert plot_uplink(uplink_table({"every reading": ROW, "your local function": None})).axes
    assert plot_uplink(None).axes
    runs = {"bridge": run("bridge", 30, 0), "spool": run("spool", 0, 1)}
    assert plot_outages(runs).axes and plot_outages({"bridge": runs["bridge"]}).axes
    table = outage_table({"bridge": runs["bridge"], "spool": None})
    assert "not written" in table.loc["spool", "how"]


@pytest.mark.unit
def test_claims_print_this_runs_numbers_and_what_was_not_measured():
    local = dict(ROW, **{"bytes up per reading": 12.0})
    uplink = pd.DataFrame({"every reading": ROW, "your local function": local}).T
    runs = {"bridge": run("bridge", 30, 0), "spool": run("spool", 0, 1)}
    text = what_you_measured(iot_claims(LOOP, uplink, runs)).to_string()
    assert "p50 3.0 ms" in text and "p50 150 ms" in text and "(configured RTT 96 ms)" in text
    assert "150 → 12.0 B per reading (12× less)" in text
    assert "bridge: 30 lost, 0 duplicated of 100; your spool: 0 lost, 1 duplicated" in text
    claims = iot_claims(LOOP, None, {"bridge": runs["bridge"]})
    assert sum("not measured" in c.measured for c in claims) == 3  # uplink, spool, shadow
    shadow = {"reconciled_s": 0.4, "answers": {"app": 200, "app 2": 409}}
    text = what_you_measured(iot_claims(LOOP, None, runs, shadow)).to_string()
    assert "reported = desired 0.4 s after the restore; the stale update answered 409" in text
    crashes = {"bridge": run("bridge", 60, 0), "spool": run("spool", 2, 0)}
    text = what_you_measured(iot_claims(LOOP, None, runs, None, crashes)).to_string()
    assert "bridge: 60 lost of 100; your spool: 2 lost of 100" in text


@pytest.mark.unit
def test_the_shadow_table_puts_the_cut_the_updates_and_the_device_in_order():
    t0 = 100.0
    run = {
        "cut": t0,
        "restored": t0 + 3,
        "history": [
            {"t": t0 + 1, "client": "app", "request": {"version": 1}, "status": 200, "version": 2},
            {"t": t0 + 4, "client": "device", "request": {}, "status": 200, "version": 3},
        ],
        "device": [
            {"t": t0 + 0.2, "event": "offline"},
            {"t": t0 + 3.5, "event": "applied", "delta": {"rpm": 9}, "version": 2},
        ],
    }
    table = shadow_table(run)
    assert list(table["where"]) == [
        "uplink",
        "iot-core: device",
        "cloud: app",
        "uplink",
        "iot-core: device",
        "cloud: device",
    ]
    assert list(table.index) == [0.0, 0.2, 1.0, 3.0, 3.5, 4.0]
    assert shadow_table(None) is None


def shadow_service(tmp_path, rule_source: str) -> tuple[subprocess.Popen, str]:
    """The shadow service on a Unix socket in tmp_path, with the given rule."""
    rule = tmp_path / "rule.py"
    rule.write_text(rule_source)
    sock = tmp_path / "shadow.sock"
    argv = [sys.executable, "-m", "kit.services.shadow", "--rule", str(rule), "--port", "0"]
    proc = subprocess.Popen([*argv, "--unix", str(sock)], cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    return proc, f"unix:{sock}"


# A rule, the status it earns, and what the answer must name.
BROKEN_RULES = {
    "exits": (
        "import sys\n\n\ndef update_shadow(doc, request):\n    sys.exit(3)\n",
        500,
        "SystemExit",
    ),
    # stopped at the loop's test (line 2) or its body (line 3)
    "loops": ("def update_shadow(doc, request):\n    while True:\n        pass\n", 504, "py line "),
    "blocks": (
        "import time\n\n\ndef update_shadow(doc, request):\n    time.sleep(60)\n",
        504,
        "line 5: time.sleep(60)",
    ),
}


@pytest.mark.loopback
@pytest.mark.parametrize("kind", BROKEN_RULES)
def test_a_broken_rule_changes_nothing_and_the_service_lives_on(tmp_path, kind):
    source, want, said = BROKEN_RULES[kind]
    proc, target = shadow_service(tmp_path, source)
    try:
        path = "/things/m1/shadow"
        for _ in range(2):  # the second one goes to a new worker after a loop
            status, body = control_request(target, "POST", path, {"state": {}})
            assert status == want, body
            assert said in body["error"]
        assert proc.poll() is None and control_request(target, "GET", path)[0] == 404
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.loopback
@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("def update_shadow(doc, request):\n    return (200,\n", "line 2"),
        ("def update(doc, request):\n    return 200, doc\n", "update_shadow"),
    ],
)
def test_a_rule_that_does_not_load_stops_the_service_and_says_why(tmp_path, source, said):
    rule = tmp_path / "rule.py"
    rule.write_text(source)
    argv = [sys.executable, "-m", "kit.services.shadow", "--rule", str(rule), "--port", "0"]
    run = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert said in run.stdout + run.stderr


def test_the_shadow_service_applies_its_rule_and_refuses_nothing_itself(tmp_path):
    proc, target = shadow_service(tmp_path, solution("09-shadow"))
    try:
        path = "/things/m1/shadow"
        assert control_request(target, "GET", path)[0] == 404
        status, doc = control_request(target, "POST", path, {"state": {"desired": {"rpm": 9}}})
        assert status == 200 and doc["version"] == 1 and doc["state"]["delta"] == {"rpm": 9}
        stale = {"state": {"desired": {"rpm": 5}}, "version": 0}
        assert control_request(target, "POST", path + "?client=app2", stale)[0] == 409
        assert control_request(target, "GET", path)[1] == doc
        history = control_request(target, "GET", "/_kit/shadow/history")[1]
        assert [(h["client"], h["status"], h["version"]) for h in history] == [
            ("?", 200, 1),
            ("app2", 409, 1),
        ]
    finally:
        proc.terminate()
        proc.wait(10)
