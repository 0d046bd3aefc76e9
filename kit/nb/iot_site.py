"""Chapter 09's programs on the core device: a learner's class, run between the brokers.

    source = site_program(yours("Tally"), "local", window=20, limit=6.0)
    service = site.start_function(source)      # kit.iot: a process on iot-core

A learner writes a class in a notebook cell; `kit.iot.Factory.start_function` runs a
Python program on `iot-core`. This module joins the two: `site_program` returns the
program's source (the learner's definitions, then a call of `main` here), and `main`
is the loop around the class, in one of two modes:

- **local** (the local function): subscribes to everything under `factory/` on the
  core broker, hands each message to `on_message(topic, payload)` (in paho's thread) and publishes
  what it returns (JSON objects) to `cloud/factory/out` on the core broker, which the
  factory's bridge forwards when it is started with `Bridge(out=("cloud/#",))`. On
  SIGTERM it publishes what `flush()` returns and exits. The class gets a `log`
  function: each call is printed as one JSON line (`service.log()` shows them).
- **spool** (store and forward): subscribes to `factory/+/telemetry` at QoS 1 with
  a persistent session, calls `put(reading)` for each reading before the broker is
  acknowledged (paho's manual acknowledgement: the PUBACK waits for `client.ack`),
  and between messages asks `next_batch(limit)` and POSTs the batch to the cloud
  ingest (`INGEST_URL/readings`); only a 200 leads to `sent(batch)`. A failed POST
  is tried again after a pause. paho's own thread only reads and hands messages
  over; every call of the class is made in the main thread, so the class may keep
  one SQLite connection.

Each mode writes a report (JSON, atomically) next to the spool file when it ends,
and every `REPORT_EVERY` seconds while it runs: messages in, objects forwarded and
their bytes, calls of `log`, POSTs that failed.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import threading
import time
import traceback
import urllib.request
from pathlib import Path
from typing import Any

REPORT_EVERY = 0.5  # seconds between reports while running
POST_TIMEOUT = 1.0  # seconds a POST to the cloud may take before it counts as failed


def site_program(source: str | None, mode: str, **options: Any) -> str:
    """The program that runs `source`'s last definition in `mode` ('local' or 'spool')."""
    if source is None:
        raise NotImplementedError("the class is not defined yet")
    if mode not in ("local", "spool"):
        raise ValueError(f"mode is 'local' or 'spool', not {mode!r}")
    root = Path(__file__).resolve().parents[2]
    entry = source.rsplit("\nfetch = ", 1)  # `yours` names the entry point last
    name = entry[1].strip() if len(entry) == 2 else None
    body = entry[0]
    return (
        f"import sys\nsys.path.insert(0, {str(root)!r})\n\n{body}\n\n\n"
        "from kit.nb.iot_site import main\n\n"
        f"main({name}, {mode!r}, {json.dumps(options)!r})\n"
    )


def start_program(site: Any, source: str | None, mode: str, **options: Any) -> Any:
    """Start `source` on iot-core in `mode` (see `site_program`) and wait until it has
    subscribed; the service (`kit.iot.Factory.start_function`)."""
    service = site.start_function(site_program(source, mode, **options), name=mode)
    path = Path(f"{site.spool_path()}.report.json")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if json.loads(path.read_text()).get("ready"):
                return service
        except (OSError, ValueError):
            pass
        if not service.running:
            break
        time.sleep(0.05)
    raise RuntimeError(
        f"the {mode} program did not subscribe. Its log ends:\n{service.log(tail=20)}"
    )


def report_path() -> Path:
    return Path(f"{os.environ['SPOOL']}.report.json")


class _Report:
    def __init__(self) -> None:
        self.counts = {
            "ready": 0,
            "messages": 0,
            "forwarded": 0,
            "bytes": 0,
            "logged": 0,
            "failed_posts": 0,
        }
        self.written = 0.0
        self.lock = threading.Lock()

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def write(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.written < REPORT_EVERY:
            return
        with self.lock:  # paho's thread writes one too (on a SUBACK)
            path = report_path()
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.counts))
            os.replace(tmp, path)
            self.written = time.monotonic()


def _subscribe(client: Any, topic: str, report: _Report) -> None:
    """Subscribe and wait for the broker's SUBACK: readings before it would go nowhere.
    The subscription is made on each CONNACK, so once per connection: after a reconnect
    (the core broker restarted) it is made again, and each SUBACK adds one to the
    report's `ready` (a test waits for it to pass 1 to know the program is back)."""
    from kit.services.sensor import no_nagle

    done: list[bool] = []

    def on_subscribe(*_: Any) -> None:
        done.append(True)
        report.add("ready")
        report.write(force=True)

    def on_connect(c: Any, *_: Any) -> None:
        no_nagle(c)
        c.subscribe(topic, qos=1)

    client.on_subscribe = on_subscribe
    client.on_connect = on_connect  # the CONNACK of `_client`'s connect() comes next
    deadline = time.monotonic() + 10
    while not done and time.monotonic() < deadline:
        client.loop(timeout=0.05)


def _client(client_id: str, clean: bool, manual_ack: bool = False) -> Any:
    import paho.mqtt.client as mqtt

    from kit.services.sensor import no_nagle

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean,
        manual_ack=manual_ack,  # then a QoS 1 message's PUBACK waits for client.ack()
    )
    client.on_connect = lambda c, *_: no_nagle(c)
    client.reconnect_delay_set(0.1, 0.3)  # back before the sensors (their paho waits 1 s+)
    host, _, port = os.environ["CORE_BROKER"].rpartition(":")
    client.connect(host, int(port), keepalive=30)
    return client


def main(cls: type, mode: str, options_json: str) -> None:
    """Run `cls` on the core device (see the module docstring); never returns."""
    options = json.loads(options_json)
    stop: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    report = _Report()
    report.write(force=True)
    try:
        (_local if mode == "local" else _spool)(cls, options, report, stop)
    except Exception:
        print(json.dumps({"event": "crashed", "error": traceback.format_exc()}), flush=True)
        report.write(force=True)
        sys.exit(1)
    report.write(force=True)
    sys.exit(0)


def _local(cls: type, options: dict, report: _Report, stop: list[bool]) -> None:
    def log(*what: Any) -> None:
        report.add("logged")
        print(json.dumps({"event": "log", "what": [str(w)[:200] for w in what]}), flush=True)

    function = cls(options["window"], options["limit"], log)
    client = _client("site-function", clean=True)

    def publish(outputs: list[dict] | None) -> None:
        for out in outputs or []:
            payload = json.dumps(out, separators=(",", ":"))
            client.publish("cloud/factory/out", payload, qos=1)
            report.add("forwarded")
            report.add("bytes", len(payload))

    def on_message(_c: Any, _u: Any, message: Any) -> None:
        report.add("messages")
        publish(function.on_message(message.topic, message.payload))

    client.on_message = on_message  # runs in paho's thread, which also reconnects
    _subscribe(client, "factory/#", report)
    client.loop_start()
    while not stop:
        time.sleep(0.05)
        report.write()
    publish(function.flush())
    deadline = time.monotonic() + 3  # let the last publications go out
    while client.want_write() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    client.loop_stop()
    client.disconnect()


def _spool(cls: type, options: dict, report: _Report, stop: list[bool]) -> None:
    spool = cls(os.environ["SPOOL"])  # used in this thread only: one SQLite connection
    # The broker keeps our queue while we are away (a persistent session); each reading's
    # PUBACK waits until put() has returned (manual acknowledgement).
    client = _client("site-spool", clean=False, manual_ack=True)
    limit = int(options.get("batch", 50))
    url = os.environ["INGEST_URL"] + "/readings"
    inbox: queue.Queue = queue.Queue()  # messages from paho's thread, in order
    client.on_message = lambda _c, _u, message: inbox.put(message)
    _subscribe(client, "factory/+/telemetry", report)
    client.loop_start()
    retry_at = 0.0
    while not stop:
        for _ in range(500):  # take what arrived (a bounded helping), then send
            try:
                message = inbox.get(timeout=0.02)
            except queue.Empty:
                break
            report.add("messages")
            try:
                reading = json.loads(message.payload)
            except ValueError:
                reading = None
            if isinstance(reading, dict):
                spool.put(reading)
            client.ack(message.mid, message.qos)  # now the broker may forget it
        report.write()
        if time.monotonic() < retry_at:
            continue
        batch = spool.next_batch(limit)
        if not batch:
            continue
        body = json.dumps(batch).encode()
        request = urllib.request.Request(url, body, {"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=POST_TIMEOUT) as answer:
                ok = answer.status == 200
        except OSError:
            ok = False
        if ok:
            spool.sent(batch)
            report.add("forwarded", len(batch))
            report.add("bytes", len(body))
        else:
            report.add("failed_posts")
            retry_at = time.monotonic() + 0.3
    client.loop_stop()
    client.disconnect()
