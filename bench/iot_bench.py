"""The factory on the default world: control loops, uplink bytes, the bridge over outages.

    sudo .venv/bin/python bench/iot_bench.py

(a) The control loop. A sensor on iot-sensor1 publishes QoS 1 readings at 20/s
    with `--listen`; a rule on iot-core (the core ingest with echo on) and one in
    the cloud (the cloud ingest with echo on) answer each one on its command topic,
    and the sensor times both answers with one clock: sensor -> local rule ->
    actuator beside sensor -> bridge -> cloud rule -> bridge -> actuator, p50 and
    p95, with the cloud in Ashburn (`origin`) and in Frankfurt (`origin-eu`). The
    configured RTT between iot-core and the cloud host is printed beside it.

(b) One way up, slow and fast. The delay from a reading's publication to its
    arrival at the cloud ingest, at 2 readings/s and at 3 x 20/s. Mosquitto 2.0
    sets TCP_NODELAY (`set_tcp_nodelay`) only on connections it accepts, not on
    the bridge's, which it opens itself: at the faster rate a reading going up
    waits for the ACK of the segment before it (Nagle's algorithm), and the
    cloud's ACK may itself be delayed.

(c) Uplink bytes per reading. Three sensors publish 200 readings each at 20/s,
    QoS 1 and then QoS 0; the factory router's counters on the uplink give the
    bytes up and down per reading, beside the readings' own payload bytes.

(d) The bridge over a seeded outage schedule (`kit.iot.outages`: 2 cuts of 2-5 s,
    6 s apart, in 18 s) while three sensors publish at 10/s: readings lost and duplicated at
    the cloud (by sequence number), and the longest drain after a restore (the
    last reading published before the restore arriving), for Mosquitto's defaults
    (keepalive 60 s: the TCP connection outlives the cut), a bridge that notices
    the cut (keepalive 5 s, reconnects after 1-2 s) at QoS 1 and QoS 0, and a
    short queue (`max_queued_messages 50`); and one cut of 12 s, which a bridge with
    a 5 s keepalive notices: it reconnects and sends again what was in flight.
    The bridge's reconnections are counted in the core broker's log.

Prints a table and exits 0. Needs root (a Mininet world).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_bench import table  # noqa: E402

from kit.iot import (  # noqa: E402
    CORE,
    SENSORS,
    Bridge,
    Factory,
    delivery,
    drain_seconds,
    outages,
    quantiles,
    start_factory,
)
from kit.net import World  # noqa: E402
from kit.net.faults import play  # noqa: E402


def control_loop(site: Factory, count: int = 300) -> dict[str, list[float]]:
    """p50 and p95 of each responder's answers, in ms."""
    site.echo(core=True, cloud=True)
    try:
        reports = site.run_sensors(hosts=SENSORS[:1], count=count, rate=20, qos=1, listen=True)
    finally:
        site.echo(core=False, cloud=False)
    loops = reports[SENSORS[0]]["loop_ms"]
    return {by: quantiles(loops.get(by, [])) for by in ("core", "cloud")}


def one_way(site: Factory, hosts: tuple[str, ...], count: int, rate: float) -> list[float]:
    """p50 and p95 of publication -> cloud ingest, in ms, over every sensor's readings."""
    site.forget()
    reports = site.run_sensors(hosts=hosts, count=count, rate=rate, qos=1)
    wait_arrived(site, reports)
    detail = site.arrivals("cloud", detail=True)["sensors"]
    delays = [(arr - sent) * 1000 for s in detail.values() for _, sent, arr in s["entries"]]
    return quantiles(delays)


def uplink_bytes(site: Factory, qos: int) -> tuple[float, float, float]:
    """Bytes up and down the uplink per reading, and the payload bytes per reading."""
    site.forget()
    before = site.uplink_bytes()
    reports = site.run_sensors(count=200, rate=20, qos=qos)
    wait_arrived(site, reports)
    time.sleep(0.5)  # the last acknowledgements
    after = site.uplink_bytes()
    arrived = site.arrivals("cloud")["sensors"]
    readings = sum(s["unique"] for s in arrived.values())
    payload = sum(s["bytes"] for s in arrived.values())
    return (
        (after["up"] - before["up"]) / readings,
        (after["down"] - before["down"]) / readings,
        payload / readings,
    )


def over_outages(site: Factory, qos: int, schedule: list) -> dict[str, float]:
    """Lost and duplicated readings at the cloud, the longest drain after a restore, and
    how often the bridge connected again."""
    site.forget()
    connects = site.bridge_connects()
    runs = site.start_sensors(duration=schedule[-1].at + 2, rate=10, qos=qos)
    time.sleep(1)
    started = time.time()
    playback = play(site.world, schedule)
    reports = {run.host: run.wait(60) for run in runs}
    playback.wait(30)
    restores = [started + at for at, what in playback.log if what.startswith("restore_link")]
    wait_arrived(site, reports, timeout=40)
    table = delivery(reports, site.arrivals("cloud"))
    detail = site.arrivals("cloud", detail=True)
    drains = [drain_seconds(detail, at) or 0.0 for at in restores]
    return {
        "published": sum(r["published"] for r in table.values()),
        "lost": sum(r["lost"] for r in table.values()),
        "duplicates": sum(r["duplicates"] for r in table.values()),
        "drain_s": max(drains, default=0.0),
        "reconnects": site.bridge_connects() - connects,
    }


def wait_arrived(site: Factory, reports: dict, timeout: float = 20.0) -> None:
    """Until every published reading is at the cloud, or nothing more arrives for 3 s."""
    deadline, last, quiet_since = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        rows = delivery(reports, site.arrivals("cloud")).values()
        arrived = sum(r["arrived"] for r in rows)
        if all(r["lost"] <= 0 for r in rows):
            return
        if arrived != last:
            last, quiet_since = arrived, time.monotonic()
        elif time.monotonic() - quiet_since > 3:
            return
        time.sleep(0.1)


def main() -> int:
    rows: list[tuple[str, str]] = []
    with World() as world:
        mechanism = world.mechanism
        for cloud in ("origin", "origin-eu"):
            site = start_factory(world, cloud=cloud)
            rtt = world.configured_rtt(CORE, cloud) or 0
            loops = control_loop(site)
            (local50, local95), (cloud50, cloud95) = loops["core"], loops["cloud"]
            city = "Ashburn" if cloud == "origin" else "Frankfurt"
            rows += [
                (
                    f"(a) loop via iot-core, p50 / p95 ({city} run)",
                    f"{local50:.1f} / {local95:.1f} ms",
                ),
                (
                    f"(a) loop via the cloud in {city}, p50 / p95",
                    f"{cloud50:.1f} / {cloud95:.1f} ms",
                ),
                (f"(a) configured RTT iot-core -> {cloud}", f"{rtt:.0f} ms"),
                (f"(a) cloud loop / local loop (p50), {city}", f"{cloud50 / local50:.0f} x"),
            ]
            slow = one_way(site, SENSORS[:1], count=15, rate=2)
            fast = one_way(site, SENSORS, count=200, rate=20)
            rows += [
                (f"(b) one way up to {city}, 2/s, p50 / p95", f"{slow[0]:.0f} / {slow[1]:.0f} ms"),
                (
                    f"(b) one way up to {city}, 3 x 20/s, p50 / p95",
                    f"{fast[0]:.0f} / {fast[1]:.0f} ms",
                ),
            ]
            if cloud == "origin":
                for qos in (1, 0):
                    up, down, payload = uplink_bytes(site, qos)
                    rows += [
                        (
                            f"(c) uplink bytes per reading, QoS {qos}, up / down",
                            f"{up:.0f} / {down:.0f} B",
                        ),
                        (
                            f"(c) payload per reading, QoS {qos}; up / payload",
                            f"{payload:.0f} B; {up / payload:.1f} x",
                        ),
                    ]
            site.stop()
        seeded = outages(3, duration=18, count=2, length=(2.0, 5.0), apart=6.0)
        long_cut = outages(1, duration=14, count=1, length=(12.0, 12.0))
        noticing = Bridge(keepalive_s=5, restart_s=(1, 2))
        cases = [
            ("Mosquitto's defaults, QoS 1", Bridge(), 1000, 1, seeded),
            ("keepalive 5 s, QoS 1", noticing, 1000, 1, seeded),
            ("keepalive 5 s, QoS 0", noticing, 1000, 0, seeded),
            ("max_queued_messages 50, QoS 1", Bridge(), 50, 1, seeded),
            ("one 12 s cut, keepalive 5 s, QoS 1", noticing, 1000, 1, long_cut),
        ]
        for name, bridge, queue, qos, schedule in cases:
            site = start_factory(world, bridge=bridge, max_queued=queue)
            seen = over_outages(site, qos, schedule)
            site.stop()
            rows.append(
                (
                    f"(d) {name}: lost / duplicated of {seen['published']:.0f}; drain; reconnects",
                    f"{seen['lost']:.0f} / {seen['duplicates']:.0f}; {seen['drain_s']:.1f} s; "
                    f"{seen['reconnects']}",
                )
            )
    print(f"Edge Lab IoT benchmark (the default world; links: {mechanism})\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
