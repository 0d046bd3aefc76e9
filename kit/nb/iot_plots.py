"""Chapter 09's measurements, tables, plots and closing claims, on the factory of `kit.iot`.

    loop = control_loop(site)                         # sensor -> rule -> actuator, ms
    bytes_ = uplink_bytes(world, yours("Local"))      # raw readings vs the local function
    runs = {"bridge": over_outages(world, seed), "spool": over_outages(world, seed, source)}
    plot_outages(runs)

Every measurement starts the factory it needs (`kit.iot.start_factory`: one factory per
world, so each start stops the one before) and returns plain data (dicts and
DataFrames), so plots and claims can be drawn again without the world, and drawn
from nothing when an exercise is not written yet (the learner's source is None):
a measurement that needs it returns None, a plot says what is missing.

- `control_loop`: a sensor with `--listen` publishes QoS 1 readings; the core
  ingest and the cloud ingest both answer each one (`site.echo`), and the sensor
  times both answers with one clock.
- `uplink_bytes`: three sensors publish the same readings twice, once with the
  bridge forwarding every reading and once with the learner's local function on
  iot-core forwarding what it returns (`Bridge(out=("cloud/#",))`); the factory
  router's byte counters on the uplink (every header included) give the bytes.
- `over_outages`: three sensors publish while a seeded schedule cuts the uplink;
  either Mosquitto's bridge carries the readings (with `max_queued` messages of
  queue) or the learner's spool does (`bridge=None`, POSTs to the cloud ingest).
  The cloud ingest counts per sensor by sequence number: lost, duplicated,
  reordered, and the drain (the last reading published before a restore arriving).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from kit.iot import (
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
from kit.nb.claims import Claim
from kit.nb.iot_site import start_program
from kit.shadow import device_events, set_local, start_device, start_shadow, wait_reconciled

COLOURS = {"cloud": "#d9822b", "core": "#2b7bd9", "bridge": "#d9822b", "spool": "#2b7bd9"}


# -- measurements --------------------------------------------------------------------------


def control_loop(site: Factory, count: int = 120, rate: float = 20.0) -> dict[str, Any]:
    """Loop times (ms) of one sensor's readings answered at the core and in the cloud."""
    site.echo(core=True, cloud=True)
    try:
        reports = site.run_sensors(hosts=SENSORS[:1], count=count, rate=rate, qos=1, listen=True)
    finally:
        site.echo(core=False, cloud=False)
    loops = reports[SENSORS[0]]["loop_ms"]
    return {
        "core": loops.get("core", []),
        "cloud": loops.get("cloud", []),
        "cloud_host": site.cloud,
        "rtt_ms": site.world.configured_rtt(CORE, site.cloud),
    }


def loop_table(loop: dict[str, Any]) -> pd.DataFrame:
    rows = {}
    for where, label in (("core", "local rule on iot-core"), ("cloud", "rule in the cloud")):
        p50, p95 = quantiles(loop[where])
        rows[label] = {
            "answers": len(loop[where]),
            "p50 ms": round(p50, 1),
            "p95 ms": round(p95, 1),
        }
    return pd.DataFrame(rows).T


def _wait_arrived(site: Factory, reports: dict, timeout: float = 30.0, quiet: float = 3.0) -> None:
    """Until every published reading is at the cloud, or nothing more arrives for `quiet` s."""
    deadline, last, since = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        rows = delivery(reports, site.arrivals("cloud")).values()
        arrived = sum(r["arrived"] for r in rows)
        if all(r["lost"] <= 0 for r in rows):
            return
        if arrived != last:
            last, since = arrived, time.monotonic()
        elif time.monotonic() - since > quiet:
            return
        time.sleep(0.1)


def _site_report(site: Factory) -> dict[str, int]:
    import json

    path = site.spool_path().with_name(site.spool_path().name + ".report.json")
    return json.loads(path.read_text())


def uplink_row(
    world: Any,
    source: str | None = None,
    window: int = 20,
    limit: float = 6.0,
    count: int = 120,
    rate: float = 20.0,
    seed: int = 9,
) -> dict[str, Any] | None:
    """Bytes up the uplink while three sensors publish `count` readings each: every reading
    bridged (no `source`), or the learner's local function on iot-core forwarding what it
    returns (`source`: its class's source)."""
    local = source is not None
    site = start_factory(world, bridge=Bridge(out=("cloud/#",)) if local else Bridge())
    try:
        if local:
            function = start_program(site, source, "local", window=window, limit=limit)
        before = site.uplink_bytes()
        options = ["--malformed", "0.02", "--wrong-topic", "0.02"]
        reports = site.run_sensors(count=count, rate=rate, qos=1, seed=seed, options=options)
        if local:
            function.stop(timeout=10)  # SIGTERM: it flushes its partial windows and exits
            counts = _site_report(site)
        else:
            _wait_arrived(site, reports, timeout=15)
            counts = {"forwarded": sum(r["unique"] for r in site.arrivals()["sensors"].values())}
        time.sleep(0.5)  # the last acknowledgements
        after = site.uplink_bytes()
    finally:
        site.stop()
    readings = sum(r["published"] for r in reports.values())
    up = after["up"] - before["up"]
    return {
        "readings": readings,
        "messages up": counts.get("forwarded", 0),
        "bytes up": up,
        "bytes down": after["down"] - before["down"],
        "bytes up per reading": round(up / readings, 1),
        "rejected (logged)": counts.get("logged", 0) if local else None,
    }


def uplink_local(world: Any, source: str | None, **options: Any) -> dict[str, Any] | None:
    """`uplink_row` with the learner's local function; None while it is not written."""
    return None if source is None else uplink_row(world, source, **options)


def uplink_table(rows: dict[str, dict | None]) -> pd.DataFrame | None:
    """The measured rows (None rows left out) as a table; None if none was measured."""
    measured = {name: row for name, row in rows.items() if row is not None}
    return pd.DataFrame(measured).T if measured else None


def over_outages(
    world: Any,
    seed: int,
    source: str | None = None,
    max_queued: int = 1000,
    duration: float = 14.0,
    rate: float = 10.0,
    cloud: str = "origin",
    crash: bool = False,
) -> dict[str, Any]:
    """Readings over a seeded outage schedule, carried by the bridge or (with `source`) by
    the learner's spool (its class's source); what reached the cloud. With `crash`, the
    core broker is killed and started again 1 s into the first cut."""
    spool = source is not None
    site = start_factory(
        world, cloud=cloud, bridge=None if spool else Bridge(), max_queued=max_queued
    )
    try:
        if spool:
            start_program(site, source, "spool", batch=50)
        schedule = outages(seed, duration=duration - 2, count=2, length=(2.0, 4.0), apart=3.0)
        runs = site.start_sensors(duration=duration, rate=rate, qos=1)
        time.sleep(1)
        started = time.time()
        steps: list[tuple[str, float, float]] = []
        args = (site, schedule, steps, crash)
        player = threading.Thread(target=_play, args=args, daemon=True)
        player.start()
        reports = {run.host: run.wait(60) for run in runs}
        player.join(30)
        _wait_arrived(site, reports, timeout=40, quiet=5)
        table = delivery(reports, site.arrivals("cloud"))
        detail = site.arrivals("cloud", detail=True)
        # A cut counts from when it was asked for, a restore from when it was done.
        cuts = [before for what, before, _ in steps if what == "cut_link"]
        restores = [after for what, _, after in steps if what == "restore_link"]
        drains = [drain_seconds(detail, at) or 0.0 for at in restores]
        arrivals = [
            (name, seq, sent, arrived)
            for name, counted in detail["sensors"].items()
            for seq, sent, arrived in counted["entries"]
        ]
        return {
            "how": ("your spool" if spool else f"Mosquitto's bridge (queue {max_queued})")
            + (", broker crash" if crash else ""),
            "crashes": [(before, after) for what, before, after in steps if what == "crash"],
            "seed": seed,
            "published": sum(r["published"] for r in table.values()),
            "lost": sum(max(0, r["lost"]) for r in table.values()),
            "duplicates": sum(r["duplicates"] for r in table.values()),
            "reordered": sum(r["reordered"] for r in table.values()),
            "drain_s": round(max(drains, default=0.0), 2),
            "per_sensor": table,
            # still in a sensor's own MQTT client at its end: never acknowledged by the broker
            "unacked": sum(r["published"] - (r["acked"] or 0) for r in reports.values()),
            "cuts": list(zip(cuts, restores, strict=False)),
            "started": started,
            "arrivals": arrivals,
            "site": _site_report(site) if spool else {},
        }
    finally:
        site.stop()


def _play(
    site: Factory, schedule: list, steps: list[tuple[str, float, float]], crash: bool = False
) -> None:
    """Cut and restore the uplink on the schedule; note when each step began and ended
    (changing a link takes a while on a busy machine: its effect lies in between). With
    `crash`, the core broker is killed and started again 1 s into the first cut."""
    t0 = time.monotonic()
    for event in schedule:
        time.sleep(max(0.0, t0 + event.at - time.monotonic()))
        before = time.time()
        site.cut_uplink() if event.do == "cut_link" else site.restore_uplink()
        steps.append((event.do, before, time.time()))
        if crash and event.do == "cut_link" and len(steps) == 1:
            time.sleep(1.0)
            before = time.time()
            site.crash_core_broker()
            steps.append(("crash", before, time.time()))


def crash_runs(world: Any, seed: int, source: str | None) -> dict[str, dict | None]:
    """The bridge and (when it is written) the learner's spool over the same outages, with
    the core broker killed and started again during the first cut."""
    runs: dict[str, dict | None] = {"bridge": over_outages(world, seed, crash=True)}
    runs["spool"] = None if source is None else over_outages(world, seed, source, crash=True)
    return runs


def outage_table(runs: dict[str, dict | None]) -> pd.DataFrame:
    rows = {}
    for name, run in runs.items():
        if run is None:
            rows[name] = {"how": "(not measured: the exercise is not written yet)"}
            continue
        rows[name] = {
            k: run[k] for k in ("how", "published", "lost", "duplicates", "reordered", "drain_s")
        }
        rows[name]["of them never left a sensor"] = run.get("unacked", 0)
    return pd.DataFrame(rows).T


def shadow_outage(world: Any, source: str | None, thing: str = "press-7") -> dict | None:
    """A shadow with the learner's rule in the cloud and a device on iot-core that
    reconciles with it (`kit.shadow`), across an uplink cut: while it is down the app
    sets a new setpoint, a second app writes against the version it had read (stale),
    and an operator switches the machine to eco on the site. None without a rule."""
    if source is None or not _answers(source):
        return None
    site = start_factory(world)
    try:
        shadow = start_shadow(site, source)
        start_device(site, thing, {"setpoint_c": 60, "mode": "run"})
        if wait_reconciled(shadow, thing, {"setpoint_c": 60}) is None:
            raise RuntimeError("the device never reported its first state")
        read = shadow.get(thing)["version"]  # both apps read the document now
        cut = time.time()  # asked for now; it takes effect while the call runs
        site.cut_uplink()
        time.sleep(1)
        first = shadow.update(thing, {"state": {"desired": {"setpoint_c": 72}}, "version": read})
        stale = shadow.update(
            thing, {"state": {"desired": {"setpoint_c": 55}}, "version": read}, client="app 2"
        )
        set_local(site, {"mode": "eco"})  # on the shop floor: no network needed
        time.sleep(2)
        site.restore_uplink()
        restored = time.time()
        took = wait_reconciled(shadow, thing, {"setpoint_c": 72, "mode": "eco"})
        time.sleep(0.5)  # the device notes its last report
        return {
            "thing": thing,
            "cut": cut,
            "restored": restored,
            "reconciled_s": took,
            "answers": {"app": first[0], "app 2": stale[0]},
            "history": shadow.history(),
            "device": device_events(site),
            "doc": shadow.get(thing),
        }
    finally:
        site.stop()


def _answers(source: str) -> bool:
    """Whether the rule answers an update at all (an unwritten one raises)."""
    namespace: dict[str, Any] = {}
    try:
        exec(compile(source, "update_shadow", "exec"), namespace)
        namespace["update_shadow"](
            {"state": {"desired": {}, "reported": {}}, "version": 0},
            {"state": {"reported": {"mode": "run"}}},
        )
    except Exception:  # noqa: BLE001 (NotImplementedError, or any other mistake)
        return False
    return True


def shadow_table(run: dict | None) -> pd.DataFrame | None:
    """What happened, in order, seconds from the cut: updates at the service and the
    device's own steps."""
    if run is None:
        return None
    rows = [{"t": run["cut"], "where": "uplink", "what": "cut", "status": None, "version": None}]
    rows.append(
        {
            "t": run["restored"],
            "where": "uplink",
            "what": "restored",
            "status": None,
            "version": None,
        }
    )
    for h in run["history"]:
        what = _update_text(h["request"])
        rows.append(
            {
                "t": h["t"],
                "where": f"cloud: {h['client']}",
                "what": what,
                "status": h["status"],
                "version": h["version"],
            }
        )
    for e in run["device"]:
        if e["event"] in ("offline", "applied", "online"):
            detail = json.dumps(e.get("delta", ""))[:60] if e["event"] == "applied" else ""
            rows.append(
                {
                    "t": e["t"],
                    "where": "iot-core: device",
                    "what": f"{e['event']} {detail}",
                    "status": None,
                    "version": e.get("version"),
                }
            )
    table = pd.DataFrame(rows).sort_values("t")
    table["t"] = (table["t"] - run["cut"]).round(2)
    for column in ("status", "version"):  # whole numbers, blank where there is none
        table[column] = [f"{v:.0f}" if pd.notna(v) else "" for v in table[column]]
    return table.rename(columns={"t": "s from the cut"}).set_index("s from the cut")


def _update_text(request: dict) -> str:
    """An update request in a few words: `desired setpoint_c=72, mode=eco (version 3)`."""
    parts = [
        f"{part} " + ", ".join(f"{k}={json.dumps(v)}" for k, v in changes.items())
        for part, changes in request.get("state", {}).items()
        if isinstance(changes, dict)
    ]
    version = request.get("version")
    return "; ".join(parts) + (f" (version {version})" if version is not None else "")


# -- plots -----------------------------------------------------------------------------------


def plot_loop(loop: dict[str, Any]) -> Figure:
    """The control loop's p50 and p95, at the core and through the cloud (log scale)."""
    fig, ax = plt.subplots(figsize=(7, 3))
    labels, p50s, p95s = [], [], []
    for where, label in (
        ("core", "local rule\n(iot-core)"),
        ("cloud", f"cloud rule\n({loop['cloud_host']})"),
    ):
        p50, p95 = quantiles(loop[where])
        labels.append(label)
        p50s.append(p50)
        p95s.append(p95)
    y = range(len(labels))
    ax.barh([i + 0.2 for i in y], p50s, height=0.4, color="#2b7bd9", label="p50")
    ax.barh([i - 0.2 for i in y], p95s, height=0.4, color="#d9822b", label="p95")
    for i, (a, b) in enumerate(zip(p50s, p95s, strict=True)):
        ax.text(a, i + 0.2, f" {a:.1f} ms", va="center", fontsize=8)
        ax.text(b, i - 0.2, f" {b:.1f} ms", va="center", fontsize=8)
    ax.set_yticks(list(y), labels)
    ax.set_xscale("log")
    ax.axvline(10, color="grey", ls=":", lw=1)
    ax.text(10, len(labels) - 0.45, " 10 ms", color="grey", fontsize=8)
    ax.set_xlabel("sensor → rule → actuator (ms, log scale)")
    ax.set_title("The control loop, answered on the site and in the cloud")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_uplink(table: pd.DataFrame | None) -> Figure:
    """Bytes up the uplink per reading, with and without the local function."""
    fig, ax = plt.subplots(figsize=(7, 2.6))
    if table is None:
        ax.text(
            0.5,
            0.5,
            "write Local (section 3) to measure the local function",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_axis_off()
    else:
        values = table["bytes up per reading"].astype(float)
        ax.barh(list(table.index), values, color=["#d9822b", "#2b7bd9"][: len(values)])
        if len(values) < 2:
            ax.set_ylabel("(Local not measured yet)", fontsize=8)
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:.1f} B", va="center", fontsize=9)
        ax.set_xlabel("bytes up the uplink per reading published (IP packets, every header)")
        ax.set_title("Uplink bytes: every reading vs a local function's summaries")
        ax.set_xlim(0, values.max() * 1.25)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_outages(runs: dict[str, dict | None]) -> Figure:
    """Per run: when each reading was published (x) and reached the cloud (y), cuts shaded;
    and the lost and duplicated counts."""
    measured = {k: v for k, v in runs.items() if v is not None}
    fig, axes = plt.subplots(1, len(measured) + 1, figsize=(4 * (len(measured) + 1), 3.4))
    axes = list(axes) if len(measured) else [axes]
    for ax, (name, run) in zip(axes, measured.items(), strict=False):
        t0 = run["started"]
        for cut, restore in run["cuts"]:
            ax.axvspan(cut - t0, restore - t0, color="#cccccc", lw=0)
        for before, _after in run.get("crashes", []):
            ax.axvline(before - t0, color="#c0392b", lw=1, ls="--")
        xs = [sent - t0 for _, _, sent, _ in run["arrivals"]]
        ys = [arrived - t0 for _, _, _, arrived in run["arrivals"]]
        ax.scatter(xs, ys, s=3, color=COLOURS.get(name, "#555"))
        ax.set_title(f"{run['how']}: lost {run['lost']}, dup {run['duplicates']}", fontsize=9)
        ax.set_xlabel("published (s; grey: uplink cut)")
        ax.set_ylabel("reached the cloud (s)")
    summary = axes[-1]
    names = list(runs)
    lost = [runs[n]["lost"] if runs[n] else 0 for n in names]
    dup = [runs[n]["duplicates"] if runs[n] else 0 for n in names]
    x = range(len(names))
    summary.bar([i - 0.2 for i in x], lost, width=0.4, color="#c0392b", label="lost")
    summary.bar([i + 0.2 for i in x], dup, width=0.4, color="#7f8c8d", label="duplicated")
    summary.set_xticks(list(x), [n if runs[n] else f"{n}\n(not run)" for n in names])
    summary.set_title("Readings lost and duplicated", fontsize=9)
    summary.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


# -- the closing table ----------------------------------------------------------------------


def iot_claims(
    loop: dict,
    uplink: pd.DataFrame | None,
    runs: dict[str, dict | None],
    shadow: dict | None = None,
    crashes: dict[str, dict | None] | None = None,
) -> list[Claim]:
    core50, core95 = quantiles(loop["core"])
    cloud50, cloud95 = quantiles(loop["cloud"])
    claims = [
        Claim(
            "A local control loop answers in under 10 ms",
            "< 10 ms locally; a cloud round trip otherwise",
            f"p50 {core50:.1f} ms, p95 {core95:.1f} ms at the core; p50 {cloud50:.0f} ms, "
            f"p95 {cloud95:.0f} ms through {loop['cloud_host']} (configured RTT "
            f"{loop['rtt_ms'] or 0:.0f} ms)",
            "the local loop is two hops on the site's LAN and two brokers' work; the cloud loop "
            "adds the round trip up and down the bridge, the cloud broker's work, and waits "
            "of Nagle's algorithm on the bridge's own connection",
        )
    ]
    if uplink is not None and len(uplink) == 2:
        raw, local = uplink["bytes up per reading"].astype(float)
        claims.append(
            Claim(
                "Local filtering cuts uplink bytes",
                'no number ("significantly")',
                f"{raw:.0f} → {local:.1f} B per reading ({raw / local:.0f}× less)",
                "what is saved is set by the window (one summary per window per sensor) and "
                "how often the limit is crossed; MQTT and TCP headers count in both",
            )
        )
    else:
        claims.append(
            Claim(
                "Local filtering cuts uplink bytes",
                "no number",
                "not measured (Local is not written)",
            )
        )
    bridge, spool = runs.get("bridge"), runs.get("spool")
    if bridge and spool:
        claims.append(
            Claim(
                "The site keeps working while the uplink is down",
                "no reading lost",
                f"bridge: {bridge['lost']} lost, {bridge['duplicates']} duplicated of "
                f"{bridge['published']}; your spool: {spool['lost']} lost, "
                f"{spool['duplicates']} duplicated of {spool['published']}; drain "
                f"{bridge['drain_s']:.1f} s vs {spool['drain_s']:.1f} s",
                "the bridge keeps its queue in memory (bounded by max_queued_messages); the "
                "spool keeps it on disk, and a POST whose answer is lost in a cut is sent "
                "again (at least once: the cloud counts it twice)",
            )
        )
    else:
        claims.append(
            Claim(
                "The site keeps working while the uplink is down",
                "no reading lost",
                "not measured (Spool is not written)",
            )
        )
    bridge, spool = (crashes or {}).get("bridge"), (crashes or {}).get("spool")
    if bridge and spool:
        claims.append(
            Claim(
                "A crash of the core broker during an outage",
                "(not claimed)",
                f"bridge: {bridge['lost']} lost of {bridge['published']}; your spool: "
                f"{spool['lost']} lost of {spool['published']}",
                "the bridge's queue is in the broker's memory; the spool loses only what the "
                "broker had acknowledged to a sensor and not yet handed to it",
            )
        )
    if shadow and shadow["reconciled_s"] is not None:
        claims.append(
            Claim(
                "Device state is reconciled when the uplink returns",
                "no number",
                f"reported = desired {shadow['reconciled_s']:.1f} s after the restore; the "
                f"stale update answered {shadow['answers']['app 2']}",
                "the device polls every 0.2 s and its first request after the restore waits "
                "for a new TCP connection; the version turns a lost update into a 409",
            )
        )
    else:
        claims.append(
            Claim(
                "Device state is reconciled when the uplink returns",
                "no number",
                "not measured (update_shadow is not written)",
            )
        )
    return claims
