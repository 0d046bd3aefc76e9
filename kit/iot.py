"""The factory on a world: Mosquitto on its core device, sensors, and the cloud it reports to.

    from kit.iot import start_factory

    site = start_factory(world)              # brokers on iot-core and in the cloud, bridged
    runs = site.run_sensors(count=300, rate=10, qos=1)   # iot-sensor1..3; their reports
    site.arrivals("cloud")["sensors"]        # per sensor: unique, duplicates, missing, delay
    site.uplink_bytes()                      # {"up": ..., "down": ...} on the factory's uplink
    site.cut_uplink(); site.restore_uplink() # or faults.play(world, site.outages(seed=3))
    site.crash_core_broker()                 # SIGKILL and start again: its memory is gone

The glue between the IoT services and a world, as `kit.db` is for the database.
What runs where:

- **The core broker**: Mosquitto (Debian's, `/usr/sbin/mosquitto`) on `iot-core`, the
  site's core device (the role AWS IoT Greengrass's Moquette or EMQX broker plays).
  Its config file, persistence file and log live in the world's scratch folder
  (`iot-core.mosquitto.*`); it listens on port 1883 of the host's own address, so
  only world hosts reach it.
- **The cloud broker**: a second Mosquitto on `cloud` (default `origin`, in Ashburn:
  the textbook's us-east cloud region, where its origin and primary database are;
  `cloud="origin-eu"` puts it in Frankfurt, one short backbone hop from the factory).
  Either way every byte leaves the factory through its uplink, the backbone link
  factory--frankfurt (6 ms RTT, 2 Mbit/s in the default world).
- **The bridge** (`Bridge`, on by default): Mosquitto's own, configured on the core
  broker (where Greengrass has its MQTT bridge component). It forwards
  `factory/+/telemetry` out and brings `factory/+/command` in, at QoS 1, with a
  persistent session (`cleansession false`). While the uplink is down the TCP
  connection may live on (its keepalive has not expired) or be closed and
  reconnected; either way the core broker queues QoS 1 messages for the bridge
  beyond the 20 in flight, up to `max_queued_messages` (mosquitto.conf(5)), and
  drops the rest: its log says "Outgoing messages are being dropped". A QoS 0
  reading crosses at QoS 0 (a subscription never raises a message's QoS), and
  what is written to a connection that is then closed is lost.
- **Two ingests** (`kit.services.ingest`): one on the cloud host, subscribed to the
  cloud broker, counting what reached the cloud; one on `iot-core`, subscribed to
  the core broker, counting what reached the site. Both can `echo` (answer each
  reading on its command topic), the stand-ins of a cloud rule and a local rule for
  timing the control loop, and the local one reports the bridge's state.
- **Sensors** (`kit.services.sensor`) on `iot-sensor1..3`, started per run:
  `start_sensors` returns at once, `run_sensors` waits for their reports.
- **The site's own code**: `start_function(source)` runs a Python program on
  `iot-core` (told where the brokers, the ingest and its spool file are), for code
  that filters, aggregates or spools before anything crosses the uplink. With it,
  start the factory with `Bridge(out=(...))` naming what it publishes for the
  cloud, or `bridge=None` if it talks to the cloud itself.

Timing through the bridge: Mosquitto 2.0 sets TCP_NODELAY (`set_tcp_nodelay`, on
here) on the connections it accepts, not on the bridge's, which it opens itself. So
on the way up a reading may wait for the ACK of the segment before it (Nagle's
algorithm), and with answers coming down, for the cloud's delayed ACK: the cloud
loop is longer than the RTT by more than the brokers' work. `bench/iot_bench.py`
measures the one-way delay up at a low and a high rate side by side.

Every process is one of the world's services: `world.stop()` stops them, a killed
kernel takes them along (they run as root, so Mosquitto keeps the death signal a
change of user would clear), and `site.stop()` stops them earlier and removes their
files. One factory per world: starting another stops the previous one.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.control import call, protocol
from kit.net.faults import FaultEvent
from kit.net.procs import Service, ServiceError, wait_healthy
from kit.net.world import World, WorldError
from kit.services.ingest import ARRIVALS

MOSQUITTO = "/usr/sbin/mosquitto"
MQTT_PORT = 1883
INGEST_PORT = 7200
CORE = "iot-core"
SENSORS = ("iot-sensor1", "iot-sensor2", "iot-sensor3")
UPLINK = ("factory", "frankfurt")  # the factory's only way out
TELEMETRY = "factory/+/telemetry"
COMMANDS = "factory/+/command"

_factories: weakref.WeakSet[Factory] = weakref.WeakSet()


@dataclass(frozen=True)
class Bridge:
    """Mosquitto's bridge from the core broker to the cloud broker (mosquitto.conf(5)).

    The defaults are Mosquitto's own, except the topics and QoS 1: a bridge checks a
    quiet connection every `keepalive_s` (at least 5), and after a failure reconnects
    after a jittered wait between `restart_s[0]` and `restart_s[1]` seconds.
    """

    out: tuple[str, ...] = (TELEMETRY,)  # forwarded to the cloud
    into: tuple[str, ...] = (COMMANDS,)  # brought from the cloud
    qos: int = 1
    cleansession: bool = False  # keep the session (and its queue) across reconnects
    keepalive_s: int = 60
    restart_s: tuple[int, int] = (5, 30)
    name: str = "cloud"
    client_id: str = "factory-core"  # the same id on every connect: the session's key

    def lines(self, address: str) -> list[str]:
        if self.keepalive_s < 5:
            raise ValueError("Mosquitto's bridge keepalive is at least 5 s")
        if self.qos not in (0, 1, 2):
            raise ValueError(f"qos {self.qos} is not 0, 1 or 2")
        return [
            f"connection {self.name}",
            f"address {address}",
            f"remote_clientid {self.client_id}",
            f"cleansession {str(self.cleansession).lower()}",
            f"keepalive_interval {self.keepalive_s}",
            f"restart_timeout {self.restart_s[0]} {self.restart_s[1]}",
            *(f"topic {t} out {self.qos}" for t in self.out),
            *(f"topic {t} in {self.qos}" for t in self.into),
        ]


def broker_config(
    address: str,
    files: Path,
    bridge: Bridge | None = None,
    bridge_to: str | None = None,
    max_queued: int = 1000,
) -> str:
    """A Mosquitto 2.0 config: one listener on `address`, files under the `files` prefix.

    `max_queued` is `max_queued_messages` (per client, the bridge included; Mosquitto's
    default is 1000). The broker stays root (`user root`): dropping to another user
    would clear the death signal that makes it die with the notebook's kernel.
    """
    lines = [
        "user root",
        f"listener {MQTT_PORT} {address}",
        "allow_anonymous true",  # only world hosts reach this address
        "set_tcp_nodelay true",  # see kit.services.sensor.no_nagle
        f"max_queued_messages {max_queued}",
        "persistence true",
        f"persistence_location {files.parent}/",
        f"persistence_file {files.name}.db",
        f"log_dest file {files}.log",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
    ]
    if bridge is not None:
        if bridge_to is None:
            raise ValueError("a bridge needs the address of the broker it bridges to")
        lines += ["", *bridge.lines(bridge_to)]
    return "\n".join(lines) + "\n"


def outages(
    seed: int,
    duration: float,
    count: int = 3,
    length: tuple[float, float] = (2.0, 5.0),
    apart: float = 1.0,
    link: tuple[str, str] = UPLINK,
) -> list[FaultEvent]:
    """`count` cuts of `link` within `duration` s, each `length` s long, drawn from `seed`.

    Cuts never overlap: each begins at least `apart` s after the previous one is
    restored, so every cut is restored by the end. `kit.net.faults.play` runs them.
    """
    rng = random.Random(seed)
    lengths = [rng.uniform(*length) for _ in range(count)]
    slack = duration - sum(lengths) - apart * (count - 1)
    if slack < 0:
        raise ValueError(f"{count} outages of up to {length[1]} s do not fit in {duration} s")
    gaps = sorted(rng.uniform(0, slack) for _ in range(count))
    events = []
    for i, (gap, down) in enumerate(zip(gaps, lengths, strict=True)):
        start = gap + sum(lengths[:i]) + apart * i  # after the cuts before it
        events += [
            FaultEvent(start, "cut_link", link),
            FaultEvent(start + down, "restore_link", link),
        ]
    return events


def delivery(reports: dict[str, dict], arrived: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per sensor: readings published (its report), arrived once, lost, duplicated, reordered
    (`arrived` is an ingest's `arrivals()`)."""
    table = {}
    for host, report in reports.items():
        seen = arrived["sensors"].get(report["sensor"], {})
        unique = seen.get("unique", 0)
        table[host] = {
            "published": report["published"],
            "arrived": unique,
            "lost": report["published"] - unique,
            "duplicates": seen.get("duplicates", 0),
            "reordered": seen.get("reordered", 0),
        }
    return table


def drain_seconds(detail: dict[str, Any], since: float) -> float | None:
    """Seconds from `since` (wall clock: an uplink restored) until the last reading published
    before it had arrived (`detail` is `arrivals(detail=True)`); None if none was waiting."""
    waited = [
        arrived
        for counted in detail["sensors"].values()
        for _seq, sent, arrived in counted["entries"]
        if sent < since
    ]
    return max(waited) - since if waited and max(waited) > since else None


def quantiles(values: Iterable[float], qs: tuple[float, ...] = (0.5, 0.95)) -> list[float]:
    """Nearest-rank quantiles of `values` (e.g. a sensor's loop times)."""
    ordered = sorted(values)
    if not ordered:
        return [float("nan")] * len(qs)
    return [ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in qs]


class SensorRun:
    """One sensor process on its host, and the report it writes when it ends."""

    def __init__(self, factory: Factory, host: str, service: Service, report: Path) -> None:
        self.factory, self.host, self.service, self.report_path = factory, host, service, report

    @property
    def running(self) -> bool:
        return self.service.running

    def wait(self, timeout: float = 120.0) -> dict[str, Any]:
        """Wait for the sensor to finish; its report (ServiceError with its log if none)."""
        try:
            self.service.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ServiceError(f"the sensor on {self.host} ran past {timeout:.0f} s") from None
        return self._report()

    def stop(self) -> dict[str, Any]:
        """End the run now (SIGTERM: it stops publishing, lingers, reports)."""
        self.service.stop(timeout=10)
        return self._report()

    def _report(self) -> dict[str, Any]:
        self.factory.world.stop_service(self.service)
        try:
            return json.loads(self.report_path.read_text())
        except (FileNotFoundError, ValueError):
            raise ServiceError(
                f"the sensor on {self.host} ended without a report "
                f"(status {self.service.proc.returncode}). Its log ends:\n"
                f"{self.service.log(tail=20)}"
            ) from None

    def __repr__(self) -> str:
        return f"<SensorRun on {self.host}: {'running' if self.running else 'ended'}>"


class Factory:
    """The running site and its cloud on one world (see the module docstring)."""

    def __init__(
        self, world: World, cloud: str, services: dict[str, Service], bridge: Bridge | None
    ) -> None:
        self.world, self.cloud, self.services, self.bridge = world, cloud, services, bridge
        self.scratch = Path(world.record.scratch)
        self.targets = {
            "core": f"unix:{self.scratch / f'{CORE}.ingest.sock'}",
            "cloud": f"unix:{self.scratch / f'{cloud}.ingest.sock'}",
        }
        self.runs: list[SensorRun] = []
        self.functions: list[Service] = []  # the site's own programs (start_function)

    # -- where things are ---------------------------------------------------------------

    @property
    def core_broker(self) -> str:
        """ADDRESS:PORT of the core broker, reachable from the world's hosts."""
        return f"{self.world.ip(CORE)}:{MQTT_PORT}"

    @property
    def cloud_broker(self) -> str:
        return f"{self.world.ip(self.cloud)}:{MQTT_PORT}"

    @property
    def ingest_url(self) -> str:
        """The cloud ingest's data plane (`POST /readings`), reachable from world hosts."""
        return f"http://{self.world.ip(self.cloud)}:{INGEST_PORT}"

    def broker_log(self, where: str = "core", tail: int | None = 20) -> str:
        return self.services[f"{where}-broker"].log(tail)

    # -- what arrived -------------------------------------------------------------------

    def arrivals(self, where: str = "cloud", detail: bool = False) -> dict[str, Any]:
        """What reached the `"cloud"` ingest or the `"core"` one: per sensor, unique
        readings, duplicates, missing (holes below the highest seq), reordered, bytes,
        delay; with `detail`, every [seq, t, arrived] as well."""
        return call(self._target(where), "GET", ARRIVALS + ("?detail=1" if detail else ""))

    def forget(self) -> None:
        """Both ingests forget what they counted (before a new measurement)."""
        for target in self.targets.values():
            call(target, "DELETE", ARRIVALS)

    def echo(self, core: bool | None = None, cloud: bool | None = None) -> None:
        """Switch the answering of readings on the command topics, per ingest."""
        for where, on in (("core", core), ("cloud", cloud)):
            if on is not None:
                call(self._target(where), "POST", protocol.CONFIG, {"echo": on})

    def bridge_up(self) -> bool | None:
        """The bridge's state as the core broker announces it (None: no bridge)."""
        if self.bridge is None:
            return None
        bridges = call(self.targets["core"], "GET", protocol.CONFIG)["bridges"]
        return bridges.get(self.bridge.client_id) == "1"

    def wait_bridge(self, up: bool = True, timeout: float = 60.0) -> float:
        """Wait until the bridge is up (or down); the seconds it took."""
        t0 = time.monotonic()
        while self.bridge_up() != up:
            if time.monotonic() - t0 > timeout:
                state = "up" if up else "down"
                raise ServiceError(
                    f"the bridge was not {state} within {timeout:.0f} s. The core broker's "
                    f"log ends:\n{self.broker_log()}"
                )
            time.sleep(0.05)
        return time.monotonic() - t0

    # -- the uplink ---------------------------------------------------------------------

    def uplink_bytes(self) -> dict[str, int]:
        """Bytes that crossed the uplink so far, as the factory's router counts them on its
        interface: `up` leaves the factory, `down` comes in (IP packets, every header)."""
        link = self.world.link(*UPLINK)
        router, intf = (link.a, link.a_intf) if link.a == "r-factory" else (link.b, link.b_intf)
        for line in self.world.run(router, "cat /proc/net/dev").splitlines():
            name, _, counters = line.partition(":")
            if name.strip() == intf:
                fields = counters.split()
                return {"up": int(fields[8]), "down": int(fields[0])}
        raise WorldError(f"no interface {intf} on {router}")

    def cut_uplink(self) -> None:
        self.world.cut_link(*UPLINK)

    def narrow_uplink(self, bw_mbit: float) -> None:
        """Give the uplink this bandwidth (HTB, each direction); 0 removes the limit."""
        self.world.set_link(*UPLINK, bw_mbit=bw_mbit)

    def bridge_connects(self) -> int:
        """How many times the bridge has started connecting so far (the core broker's log)."""
        return self.broker_log(tail=None).count("Connecting bridge (step 1)")

    def restore_uplink(self) -> None:
        self.world.restore_link(*UPLINK)

    def crash_core_broker(self, timeout: float = 30.0) -> None:
        """Kill the core broker (SIGKILL, as a power cut would) and start it again from its
        config. What it held in memory is gone: the bridge's queue, the sessions of its
        clients and their subscriptions (`persistence true` writes them only every
        `autosave_interval`, 1800 s by default, and at a clean shutdown)."""
        old = self.services["core-broker"]
        if old.proc is not None and old.proc.poll() is None:
            old.proc.kill()
            old.proc.wait(10)
        self.world.stop_service(old)
        config = (self.scratch / f"{CORE}.mosquitto.conf").read_text()
        self.services["core-broker"] = _launch_broker(self.world, CORE, config)
        wait_healthy([self.services["core-broker"]], timeout)

    def outages(self, seed: int, duration: float, **options: Any) -> list[FaultEvent]:
        """A seeded schedule of uplink cuts (`outages`), for `kit.net.faults.play`."""
        return outages(seed, duration, **options)

    # -- the site's own code -------------------------------------------------------------

    def spool_path(self, name: str = "spool") -> Path:
        """Where a program on the site keeps a file (a store-and-forward spool, SQLite):
        in the world's scratch folder, so it goes with the factory and the world."""
        return self.scratch / f"{CORE}.{name}.sqlite"

    def start_function(self, source: str, name: str = "function") -> Service:
        """Run Python `source` as a process on iot-core, the site's core device.

        It finds where things are in its environment: `CORE_BROKER` and `CLOUD_BROKER`
        (ADDRESS:PORT), `INGEST_URL` (the cloud ingest's HTTP data plane) and `SPOOL` (a
        file path, see `spool_path`). Its output is `service.log()`; it is one of the
        world's services, stopped by `site.stop()` or `world.stop()`.
        """
        script = self.scratch / f"{CORE}.{name}.py"
        script.write_text(source)
        env = {
            "CORE_BROKER": self.core_broker,
            "CLOUD_BROKER": self.cloud_broker,
            "INGEST_URL": self.ingest_url,
            "SPOOL": str(self.spool_path()),
        }
        service = self.world.launch_service(CORE, ["python", str(script)], name=name, env=env)
        self.functions.append(service)
        time.sleep(0.2)  # a script that fails at once (a syntax error) shows it here
        if not service.running:
            self.world.stop_service(service)
            raise ServiceError(
                f"{name} on {CORE} exited with status {service.proc.returncode}. "
                f"Its log ends:\n{service.log(tail=20)}"
            )
        return service

    # -- sensors ------------------------------------------------------------------------

    def start_sensors(
        self,
        hosts: Iterable[str] = SENSORS,
        *,
        rate: float = 10.0,
        count: int | None = None,
        duration: float | None = None,
        qos: int = 1,
        seed: int = 1,
        listen: bool = False,
        broker: str | None = None,
        options: Iterable[str] = (),
    ) -> list[SensorRun]:
        """Start a sensor on each host, publishing to the core broker (or `broker`);
        `options` are more of `kit.services.sensor`'s flags (`--flood`, `--malformed 0.1`)."""
        if count is None and duration is None:
            raise ValueError("give count= or duration=: a sensor run ends")
        runs = []
        for host in hosts:
            report = self.scratch / f"{host}.sensor.json"
            report.unlink(missing_ok=True)
            argv = ["python", "-m", "kit.services.sensor", "--sensor", host]
            argv += ["--broker", broker or self.core_broker, "--rate", str(rate)]
            argv += ["--qos", str(qos), "--seed", str(seed), "--report", str(report)]
            argv += ["--count", str(count)] if count is not None else []
            argv += ["--duration", str(duration)] if duration is not None else []
            argv += ["--listen"] if listen else []
            argv += list(options)
            service = self.world.launch_service(host, argv, name="sensor")
            runs.append(SensorRun(self, host, service, report))
        self.runs += runs
        return runs

    def run_sensors(
        self, hosts: Iterable[str] = SENSORS, timeout: float = 120.0, **options: Any
    ) -> dict[str, dict[str, Any]]:
        """Start sensors (as `start_sensors`) and wait for all; their reports by host."""
        runs = self.start_sensors(hosts, **options)
        return {run.host: run.wait(timeout) for run in runs}

    # -- lifecycle ----------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every process of the factory and remove its files: configs, Mosquitto's
        persistence, sockets, reports, spools, scripts. The logs stay in the world's
        scratch folder (a post-mortem may want them) and go when the world stops."""
        for run in self.runs:
            self.world.stop_service(run.service)
        for service in self.functions:
            self.world.stop_service(service)
        for service in self.services.values():
            self.world.stop_service(service)
        for host in (CORE, self.cloud):
            for suffix in ("mosquitto.conf", "mosquitto.db", "ingest.sock"):
                (self.scratch / f"{host}.{suffix}").unlink(missing_ok=True)
        for pattern in ("*.sensor.json*", f"{CORE}.*.sqlite*", f"{CORE}.*.py", f"{CORE}.*.sock"):
            for path in self.scratch.glob(pattern):
                path.unlink(missing_ok=True)
        _factories.discard(self)

    def _target(self, where: str) -> str:
        if where not in self.targets:
            raise ValueError(f"where is 'core' or 'cloud', not {where!r}")
        return self.targets[where]

    def __repr__(self) -> str:
        bridge = "bridged" if self.bridge else "not bridged"
        return f"<Factory {CORE} -> {self.cloud} ({bridge})>"


def _launch_broker(world: World, host: str, config: str) -> Service:
    files = Path(world.record.scratch) / f"{host}.mosquitto"
    conf = files.parent / f"{files.name}.conf"
    conf.write_text(config)
    health = f"tcp://{world.ip(host)}:{MQTT_PORT}"
    return world.launch_service(
        host, [MOSQUITTO, "-c", str(conf)], name="mosquitto", health_url=health
    )


def _launch_ingest(world: World, host: str, name: str, broker: str) -> Service:
    socket = Path(world.record.scratch) / f"{host}.ingest.sock"
    socket.unlink(missing_ok=True)
    argv = ["python", "-m", "kit.services.ingest", "--broker", broker, "--name", name]
    argv += ["--host", "0.0.0.0", "--port", str(INGEST_PORT), "--log-sample", "0"]
    argv += ["--unix", str(socket), "--topic", TELEMETRY]
    return world.launch_service(host, argv, name="ingest", health_url=f"unix:{socket}")


def start_factory(
    world: World,
    cloud: str = "origin",
    bridge: Bridge | None = Bridge(),  # noqa: B008 (frozen: one shared default is safe)
    max_queued: int = 1000,
    timeout: float = 30.0,
) -> Factory:
    """Start the core broker, the cloud broker and both ingests; return when the bridge
    (if any) is up and both ingests are subscribed."""
    if not Path(MOSQUITTO).exists():
        raise WorldError(f"Mosquitto is not installed ({MOSQUITTO}): run `sudo make setup`")
    for old in [f for f in _factories if f.world is world]:
        old.stop()
    scratch = Path(world.record.scratch)
    cloud_broker = f"{world.ip(cloud)}:{MQTT_PORT}"
    services: dict[str, Service] = {}
    try:
        # The cloud first: a bridge that finds nobody waits restart_s before trying again.
        services["cloud-broker"] = _launch_broker(
            world, cloud, broker_config(world.ip(cloud), scratch / f"{cloud}.mosquitto")
        )
        wait_healthy([services["cloud-broker"]], timeout)
        core_config = broker_config(
            world.ip(CORE), scratch / f"{CORE}.mosquitto", bridge, cloud_broker, max_queued
        )
        services["core-broker"] = _launch_broker(world, CORE, core_config)
        services["cloud-ingest"] = _launch_ingest(world, cloud, "cloud", cloud_broker)
        wait_healthy([services["core-broker"], services["cloud-ingest"]], timeout)
        services["core-ingest"] = _launch_ingest(
            world, CORE, "core", f"{world.ip(CORE)}:{MQTT_PORT}"
        )
        wait_healthy([services["core-ingest"]], timeout)
        factory = Factory(world, cloud, services, bridge)
        _wait_subscribed(factory, timeout)
        if bridge is not None:
            factory.wait_bridge(True, timeout)
    except BaseException:
        for service in services.values():
            world.stop_service(service)
        raise
    _factories.add(factory)
    return factory


def _wait_subscribed(factory: Factory, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for where, target in factory.targets.items():
        while not call(target, "GET", protocol.CONFIG)["subscribed"]:
            if time.monotonic() > deadline:
                raise ServiceError(f"the {where} ingest did not subscribe within {timeout:.0f} s")
            time.sleep(0.05)
