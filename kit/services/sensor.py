"""A factory sensor: publishes readings over MQTT to the site's broker, and says how many.

    python -m kit.services.sensor --sensor iot-sensor1 --broker 10.11.1.2:1883 \\
        --rate 10 --count 600 --qos 1 --report /tmp/edgelab-x/iot-sensor1.report.json

Each reading is one JSON object on the topic ``factory/SENSOR/telemetry``::

    {"sensor": "iot-sensor1", "seq": 17, "t": 1764500000.123,
     "temp_c": 61.42, "vib_mm_s": 2.08}

``seq`` counts the sensor's readings from 0 with no gap, so whoever receives them
can tell a lost reading (a hole), a duplicate (a seq seen twice) and reordering.
``t`` is the wall clock when it was published. All world hosts share one kernel
clock, so a receiver on another host may subtract it from its own clock for the
one-way delay (a real fleet would need its clocks synchronised for that).

The values are a machine's: a temperature drifting slowly around 60 °C and a
vibration around 2 mm/s RMS, with rare anomalies (a bearing fault: vibration
jumps to 7-12 mm/s and the temperature rises). They are a pure function of
(seed, sensor, seq) (``reading_values``), so a check can recompute what a sensor
sent without asking it.

Publishing keeps to a schedule (reading i at start + i / rate), so a slow
moment is caught up rather than stretching the run. ``--flood`` drops the
schedule and publishes as fast as the connection takes them (a sensor gone
wrong). Bad input for the site's local function to reject, sent *in addition*
to the readings and never taking a seq of its own:

- ``--malformed P``: with probability P per reading, also a payload that is not a
  reading (not JSON, cut-off JSON, no seq, a seq that is text);
- ``--wrong-topic P``: with probability P, a copy of the next reading (same seq)
  on a topic outside the telemetry tree, so forwarding it shows up downstream as
  a duplicate.

``--listen`` subscribes to ``factory/SENSOR/command``: whoever answers a reading
(a rule on the site's core device, or one in the cloud) publishes
``{"seq": N, "by": NAME}`` there, and the sensor notes each answer's round trip:
the control loop sensor -> rule -> actuator, timed by one clock.

At the end (``--count`` readings, ``--duration`` seconds, or SIGTERM) the sensor
waits up to ``--linger`` seconds for outstanding QoS 1 acknowledgements and
answers, then writes its report (JSON, atomically) to ``--report``: readings
published (seq 0 .. published-1), acknowledged by the broker (QoS 1), refused by
the client itself (``not_sent``: QoS 0 while it had no connection), bad messages
sent, and the loop times by responder.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

TELEMETRY = "factory/{sensor}/telemetry"
COMMAND = "factory/{sensor}/command"
ANOMALY_RATE = 0.01  # the share of readings that show a bearing fault


def no_nagle(client: mqtt.Client) -> None:
    """Send each MQTT packet at once. With Nagle's algorithm (paho's default) a packet
    written right after another (a PUBACK, then a publish) waits for the peer's delayed
    ACK: measured on loopback, QoS 1 readings at 50/s then took 22 ms p50 instead of 0.5."""
    sock = client.socket()
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def reading_values(sensor: str, seq: int, seed: int = 1) -> dict[str, float]:
    """The values of reading ``seq`` of ``sensor``: the same for the same (seed, sensor, seq)."""
    rng = random.Random(f"{seed}/{sensor}/{seq}")
    cycle = seq / 3000 + _phase(sensor, seed)  # a slow drift: one cycle per 3000 readings
    temp = 60 + 4 * math.sin(2 * math.pi * cycle) + rng.gauss(0, 0.3)
    vib = 2.0 + abs(rng.gauss(0, 0.25))
    if rng.random() < ANOMALY_RATE:
        vib, temp = rng.uniform(7, 12), temp + rng.uniform(5, 10)
    return {"temp_c": round(temp, 2), "vib_mm_s": round(vib, 2)}


def _phase(sensor: str, seed: int) -> float:
    """Where in its slow temperature cycle a sensor starts (each machine differs)."""
    return random.Random(f"{seed}/{sensor}/phase").random()


def bad_payload(rng: random.Random, sensor: str, seq: int) -> bytes:
    """A payload a receiver must reject: not a reading of the telemetry schema."""
    good = json.dumps({"sensor": sensor, "seq": seq, "t": time.time(), "temp_c": 60.0})
    return rng.choice(
        [
            b"\xff\xfe not json",
            good[: len(good) // 2].encode(),  # cut off mid-object
            json.dumps({"sensor": sensor, "t": time.time(), "temp_c": 60.0}).encode(),  # no seq
            json.dumps({"sensor": sensor, "seq": str(seq), "temp_c": 60.0}).encode(),
        ]
    )


class Sensor:
    """One sensor's MQTT client, its schedule and its counts (see the module docstring)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.name = args, args.sensor
        self.topic = TELEMETRY.format(sensor=self.name)
        self.rng = random.Random(f"{args.seed}/{self.name}/bad")
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.published = 0  # readings handed to the client, seq 0 .. published-1
        self.not_sent = 0  # of those, refused by the client (not connected, QoS 0)
        self.infos: list[mqtt.MQTTMessageInfo] = []  # QoS 1 readings: is_published() = acked
        self.acked = 0  # how many of infos (from the start) are known acknowledged
        self.sent_at: dict[int, float] = {}  # seq -> perf_counter when published
        self.loops: dict[str, list[float]] = {}  # responder -> round trips in ms
        self.bad = {"malformed": 0, "wrong_topic": 0}
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"sensor-{self.name}", clean_session=True
        )
        self.client.max_inflight_messages_set(args.inflight)
        self.client.on_connect = self.on_connect
        self.client.on_message = self.on_message

    def on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            print(json.dumps({"event": "connect_failed", "reason": str(reason)}), flush=True)
            return
        no_nagle(client)
        if self.args.listen:
            client.subscribe(COMMAND.format(sensor=self.name), qos=self.args.qos)
        self.connected.set()

    def on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        try:
            answer = json.loads(message.payload)
            seq, by = int(answer["seq"]), str(answer.get("by", "?"))[:40]
        except (ValueError, KeyError, TypeError):
            return
        with self.lock:
            sent = self.sent_at.get(seq)
            if sent is not None:
                self.loops.setdefault(by, []).append(round((now - sent) * 1000, 3))

    def publish(self, seq: int) -> None:
        reading = {"sensor": self.name, "seq": seq, "t": time.time()}
        reading.update(reading_values(self.name, seq, self.args.seed))
        payload = json.dumps(reading, separators=(",", ":"))
        if self.args.wrong_topic and self.rng.random() < self.args.wrong_topic:
            self.client.publish(f"factory/{self.name}/debug", payload, qos=self.args.qos)
            self.bad["wrong_topic"] += 1
        if self.args.malformed and self.rng.random() < self.args.malformed:
            self.client.publish(self.topic, bad_payload(self.rng, self.name, seq), self.args.qos)
            self.bad["malformed"] += 1
        self.sent_at[seq] = time.perf_counter()  # before: the answer may beat publish()
        info = self.client.publish(self.topic, payload, qos=self.args.qos)
        # While disconnected paho drops a QoS 0 message at once, but keeps a QoS 1 one and
        # sends it when it has connected again (rc NO_CONN): that one is still on its way.
        kept = self.args.qos and info.rc == mqtt.MQTT_ERR_NO_CONN
        if info.rc != mqtt.MQTT_ERR_SUCCESS and not kept:
            self.not_sent += 1
        elif self.args.qos:
            if kept:
                info.rc = mqtt.MQTT_ERR_SUCCESS  # queued, not failed: is_published() then waits
            self.infos.append(info)
        self.published += 1
        if self.args.flood and seq % 100 == 99 and info.rc == mqtt.MQTT_ERR_SUCCESS:
            info.wait_for_publish(5)  # bound the client's queue: flood at the link's pace

    def run(self) -> dict[str, Any]:
        args = self.args
        host, _, port = args.broker.rpartition(":")
        self.client.connect_async(host, int(port), keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(args.connect_timeout):
            self.client.loop_stop()
            raise SystemExit(f"no connection to the broker at {args.broker}")
        started = time.time()
        t0 = time.monotonic()
        seq = 0
        while not self.stop.is_set():
            if args.count is not None and seq >= args.count:
                break
            if args.duration is not None and time.monotonic() - t0 >= args.duration:
                break
            if not args.flood:
                wait = t0 + seq / args.rate - time.monotonic()
                if wait > 0 and self.stop.wait(wait):
                    break
            self.publish(seq)
            seq += 1
        elapsed = time.monotonic() - t0
        self.linger()
        self.client.disconnect()
        self.client.loop_stop()
        with self.lock:
            return {
                "sensor": self.name,
                "qos": args.qos,
                "published": self.published,
                "acked": self.count_acked() if args.qos else None,
                "not_sent": self.not_sent,
                "bad": self.bad,
                "started": started,
                "seconds": round(elapsed, 3),
                "rate": round(self.published / elapsed, 2) if elapsed else None,
                "loop_ms": self.loops,
            }

    def linger(self) -> None:
        """Wait (bounded) for outstanding acknowledgements and for answers still on the way."""
        deadline = time.monotonic() + self.args.linger
        while time.monotonic() < deadline:
            unacked = self.args.qos and self.count_acked() < len(self.infos)
            with self.lock:
                answered = min((len(v) for v in self.loops.values()), default=0)
                unanswered = self.args.listen and answered < self.published
            if not unacked and not unanswered:
                return
            time.sleep(0.05)

    def count_acked(self) -> int:
        """QoS 1 readings the broker has acknowledged (PUBACK), counted from the start."""
        while self.acked < len(self.infos) and self.infos[self.acked].is_published():
            self.acked += 1
        return self.acked + sum(i.is_published() for i in self.infos[self.acked + 1 :])


def write_report(path: str, report: dict[str, Any]) -> None:
    """Write the report atomically: a reader never sees half of it."""
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(report))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    cli = argparse.ArgumentParser(prog="python -m kit.services.sensor", description=__doc__)
    cli.add_argument("--sensor", required=True, help="the sensor's name (in topic and payload)")
    cli.add_argument("--broker", required=True, help="ADDRESS:PORT of the site's MQTT broker")
    cli.add_argument("--rate", type=float, default=10.0, help="readings per second")
    cli.add_argument("--count", type=int, help="stop after this many readings")
    cli.add_argument("--duration", type=float, help="stop after this many seconds")
    cli.add_argument("--qos", type=int, choices=(0, 1), default=0)
    cli.add_argument("--seed", type=int, default=1, help="the values' seed")
    cli.add_argument("--flood", action="store_true", help="ignore --rate: as fast as possible")
    cli.add_argument("--malformed", type=float, default=0.0, help="P of an extra bad payload")
    cli.add_argument("--wrong-topic", type=float, default=0.0, help="P of an extra stray copy")
    cli.add_argument("--listen", action="store_true", help="time the answers on the command topic")
    cli.add_argument("--inflight", type=int, default=20, help="QoS 1 messages unacknowledged")
    cli.add_argument(
        "--linger", type=float, default=3.0, help="seconds to wait for acks at the end"
    )
    cli.add_argument("--connect-timeout", type=float, default=10.0)
    cli.add_argument("--report", help="write the report (JSON) here at the end")
    args = cli.parse_args(argv)
    if args.rate <= 0:
        cli.error("--rate must be positive")
    sensor = Sensor(args)
    signal.signal(signal.SIGTERM, lambda *_: sensor.stop.set())
    signal.signal(signal.SIGINT, lambda *_: sensor.stop.set())
    report = sensor.run()
    if args.report:
        write_report(args.report, report)
    summary = {k: v for k, v in report.items() if k != "loop_ms"}
    print(json.dumps({"event": "done", **summary}), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
