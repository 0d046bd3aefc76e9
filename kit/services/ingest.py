"""An ingest: counts the readings that reach it, per sensor, by sequence number.

    python -m kit.services.ingest --broker 10.3.1.2:1883 --name cloud \\
        --host 0.0.0.0 --port 7200 --unix /tmp/edgelab-x/origin.ingest.sock

It subscribes (QoS 1, a persistent session) to an MQTT broker's telemetry topics
(``--topic``, default ``factory/+/telemetry``) and counts every reading that
arrives: a JSON object with ``sensor`` and an integer ``seq`` (see
``kit.services.sensor``), or a JSON list of them (a batch). The same counting
serves readings POSTed to its data plane, ``POST /readings`` (one reading or a
list), for a forwarder that speaks HTTP instead of MQTT.

Per sensor it keeps the sequence numbers seen, so it can say how many readings
arrived once (``unique``), how many again (``duplicates``), which are still
missing below the highest seen (``missing``: holes), how many came after a later
one (``reordered``), the bytes of their payloads, and each reading's delay from
its ``t`` to its arrival (all world hosts share one kernel clock). Payloads that
are not readings are counted as ``malformed``, logged (rate-limited) and
otherwise ignored. Readings that never arrived after the last one seen are
invisible here; compare ``unique`` with what the sensor says it published.

Run on the site's core device against the local broker it is the local rule's
stand-in; run in the cloud against the cloud broker it is the cloud's ingest.
With ``echo`` on, it answers every reading at once on ``factory/SENSOR/command``
with ``{"seq": N, "by": NAME}`` (the reading's QoS), so a sensor with
``--listen`` times the control loop through it. It also notes the state of
Mosquitto's bridges (``$SYS/broker/connection/NAME/state``: 1 up, 0 down).

Control plane (root-only Unix socket), paths defined here (not in
``kit.control.protocol``):

    GET    /_kit/iot/arrivals[?detail=1]   per-sensor counts ([seq, t, arrived] with detail)
    DELETE /_kit/iot/arrivals              forget everything counted
    GET    /_kit/config, POST {"echo": bool}   the echo switch; subscribed, bridges
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from aiohttp import web

from kit.control import protocol
from kit.services.common import Log, Metrics, Served, json_error, make_apps, parser, serve
from kit.services.sensor import no_nagle

ARRIVALS = "/_kit/iot/arrivals"
COMMAND = "factory/{sensor}/command"
BRIDGE_STATE = "$SYS/broker/connection/+/state"
MAX_ENTRIES = 200_000  # arrivals kept per sensor with their times (counts go on past it)


@dataclass
class SensorCount:
    """What arrived from one sensor."""

    seen: set[int] = field(default_factory=set)
    highest: int = -1
    duplicates: int = 0
    reordered: int = 0
    bytes: int = 0
    entries: list[tuple[int, float, float]] = field(default_factory=list)  # seq, t, arrived

    def add(self, seq: int, sent: float | None, arrived: float, size: int) -> bool:
        """Count one arrival; True if it is the first copy of ``seq``."""
        self.bytes += size
        if seq in self.seen:
            self.duplicates += 1
            return False
        if seq < self.highest:
            self.reordered += 1
        self.seen.add(seq)
        self.highest = max(self.highest, seq)
        if len(self.entries) < MAX_ENTRIES:
            self.entries.append((seq, sent if sent is not None else arrived, arrived))
        return True

    def summary(self) -> dict[str, Any]:
        delays = sorted(arrived - sent for _, sent, arrived in self.entries)
        return {
            "unique": len(self.seen),
            "duplicates": self.duplicates,
            "missing": self.highest + 1 - len(self.seen),  # holes below the highest seq
            "reordered": self.reordered,
            "highest": self.highest,
            "bytes": self.bytes,
            "delay_ms": _quantiles(delays),
            "last_arrival": max((e[2] for e in self.entries), default=None),
        }


def _quantiles(values: list[float]) -> dict[str, float] | None:
    """p50, p95 and max of sorted seconds, in ms (None when empty)."""
    if not values:
        return None

    def at(q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 3)

    return {"p50": at(0.5), "p95": at(0.95), "max": round(values[-1] * 1000, 3)}


def parse_readings(payload: bytes) -> list[dict[str, Any]] | None:
    """The readings in a payload (one object or a list), or None if it holds none valid."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    items = data if isinstance(data, list) else [data]
    readings = []
    for item in items:
        if not isinstance(item, dict):
            return None
        sensor, seq = item.get("sensor"), item.get("seq")
        if not isinstance(sensor, str) or not sensor or len(sensor) > 64:
            return None
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            return None
        t = item.get("t")
        readings.append({**item, "t": t if isinstance(t, int | float) else None})
    return readings or None


class Ingest:
    """The counts, the MQTT subscriber and the routes (see the module docstring)."""

    def __init__(self, args: Any, metrics: Metrics, log: Log) -> None:
        self.args, self.metrics, self.log = args, metrics, log
        self.name, self.echo = args.name, args.echo
        self.sensors: dict[str, SensorCount] = {}
        self.malformed = 0
        self.messages = 0
        self.bridges: dict[str, str] = {}
        self.subscribed = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"ingest-{self.name}", clean_session=False
        )
        self.client.on_connect = self.on_connect
        self.client.on_subscribe = self.on_subscribe
        self.client.on_message = self.on_message

    # -- MQTT (paho's network thread) -------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        host, _, port = self.args.broker.rpartition(":")
        self.client.reconnect_delay_set(0.2, 2)
        self.client.connect_async(host, int(port), keepalive=30)
        self.client.loop_start()

    def on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.log("connect_failed", "warning", reason=str(reason))
            return
        no_nagle(client)  # an answer right after a PUBACK must not wait for a delayed ACK
        topics = [(t, 1) for t in self.args.topic] + [(BRIDGE_STATE, 1)]
        client.subscribe(topics)

    def on_subscribe(self, *_args: Any) -> None:
        self.subscribed = True

    def on_message(self, client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        arrived = time.time()
        if mqtt.topic_matches_sub(BRIDGE_STATE, message.topic):
            bridge, state = message.topic.split("/")[3], message.payload.decode(errors="replace")
            self.loop.call_soon_threadsafe(self.bridges.__setitem__, bridge, state)
            return
        readings = parse_readings(message.payload)
        if readings and self.echo:  # answer first: this thread is the control loop's path
            for r in readings:
                answer = json.dumps({"seq": r["seq"], "by": self.name})
                client.publish(COMMAND.format(sensor=r["sensor"]), answer, qos=message.qos)
        self.loop.call_soon_threadsafe(
            self.count, readings, arrived, len(message.payload), message.topic
        )

    # -- counting (the event loop's thread) ---------------------------------------------

    def count(self, readings: list[dict] | None, arrived: float, size: int, where: str) -> int:
        """Count a payload's readings; how many were new."""
        self.messages += 1
        self.metrics.count("messages")
        if readings is None:
            self.malformed += 1
            self.metrics.count("malformed")
            self.log("malformed", "warning", topic=where, bytes=size)
            return 0
        new = 0
        for r in readings:
            sensor = self.sensors.setdefault(r["sensor"], SensorCount())
            new += sensor.add(r["seq"], r["t"], arrived, size // len(readings))
        self.metrics.count("readings", len(readings))
        return new

    def snapshot(self, detail: bool = False) -> dict[str, Any]:
        sensors = {}
        for name, counted in sorted(self.sensors.items()):
            sensors[name] = counted.summary()
            if detail:
                sensors[name]["entries"] = counted.entries
        return {
            "name": self.name,
            "messages": self.messages,
            "malformed": self.malformed,
            "sensors": sensors,
            "bridges": self.bridges,
        }

    # -- routes -------------------------------------------------------------------------

    async def post_readings(self, request: web.Request) -> web.Response:
        body = await request.read()
        readings = parse_readings(body)
        new = self.count(readings, time.time(), len(body), request.path)
        if readings is None:
            return json_error(400, "not a reading or a list of readings: needs sensor and seq")
        return web.json_response({"accepted": len(readings), "new": new})

    async def get_arrivals(self, request: web.Request) -> web.Response:
        return web.json_response(self.snapshot(request.query.get("detail") == "1"))

    async def forget(self, request: web.Request) -> web.Response:
        forgotten = len(self.sensors)
        self.sensors.clear()
        self.malformed = self.messages = 0
        return web.json_response({"forgotten": forgotten})

    async def get_config(self, request: web.Request) -> web.Response:
        return web.json_response(self.config())

    async def post_config(self, request: web.Request) -> web.Response:
        changes = await request.json()
        if not isinstance(changes, dict) or set(changes) - {"echo"}:
            return json_error(400, 'config takes {"echo": true|false}')
        if "echo" in changes:
            if not isinstance(changes["echo"], bool):
                return json_error(400, "echo is true or false")
            self.echo = changes["echo"]
        return web.json_response(self.config())

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "echo": self.echo,
            "broker": self.args.broker,
            "topics": self.args.topic,
            "subscribed": self.subscribed,
            "bridges": self.bridges,
        }


def main(argv: list[str] | None = None) -> None:
    cli = parser("ingest", "Count the readings that arrive, per sensor, by sequence number.")
    cli.add_argument("--broker", required=True, help="ADDRESS:PORT of the MQTT broker")
    cli.add_argument("--name", default="cloud", help="who answers, in echoes and metrics")
    cli.add_argument("--topic", action="append", help="topic filter (repeatable)")
    cli.add_argument("--echo", action="store_true", help="answer each reading on its command topic")
    args = cli.parse_args(argv)
    args.topic = args.topic or ["factory/+/telemetry"]
    served = Served.of(args)
    log = Log("ingest", name=args.name)
    metrics = Metrics("ingest", ("messages", "readings", "malformed"), name=args.name)
    planes = make_apps("ingest", served, metrics, log, name=args.name)
    ingest = Ingest(args, metrics, log)
    planes.data.router.add_post("/readings", ingest.post_readings)
    planes.control.router.add_get(ARRIVALS, ingest.get_arrivals)
    planes.control.router.add_delete(ARRIVALS, ingest.forget)
    planes.control.router.add_get(protocol.CONFIG, ingest.get_config)
    planes.control.router.add_post(protocol.CONFIG, ingest.post_config)

    async def start_mqtt(app: web.Application) -> None:
        ingest.start(asyncio.get_running_loop())

    async def stop_mqtt(app: web.Application) -> None:
        ingest.client.disconnect()
        ingest.client.loop_stop()

    planes.control.on_startup.append(start_mqtt)
    planes.control.on_cleanup.append(stop_mqtt)
    serve(planes, served, log)


if __name__ == "__main__":
    main()
