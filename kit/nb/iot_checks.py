"""Chapter 09's checks: a local function, a store-and-forward spool, a shadow's update rule.

Each check drives the learner's class or function with inputs it makes up on every
run (seeded from fresh randomness, so a failure names the seed): sensor names the
chapter never uses, a window size, a limit, which sensor floods, which payloads are
malformed, when the uplink is down and when the core device crashes. It compares
what comes back with what the property demands and names the property that failed.

- `LocalProbe` (exercise 09-local): `Local(window, limit, log)` with
  `on_message(topic, payload) -> list[dict]` and `flush() -> list[dict]`. Four
  runs, each against a reference computed here: readings of three sensors
  (with holes in their sequence numbers), the same with one sensor flooding,
  with malformed payloads mixed in, and with copies on wrong topics. Summaries
  per sensor and window (`seq // window`): first, last, count, temp_mean, vib_max;
  an alert for each reading whose vibration is above the limit; the partial last
  windows at `flush()`; one `log` call per rejected message.
- `SpoolProbe` (exercise 09-spool): `Spool(path)` with `put(reading)`,
  `next_batch(limit)` and `sent(batch)`, on a real SQLite file. What a put
  promises is checked by opening the file again at once (a crash then); what
  `next_batch` may not do by opening it again before `sent`; order per sensor;
  a share for every waiting sensor; readings of different sensors with the same
  seq; a reading put twice. Then a seeded run of outages and crashes: every
  reading reaches the "cloud" once, in order per sensor.
- `ShadowProbe` (exercise 09-shadow): `update_shadow(doc, request) -> (status,
  body)` with AWS IoT Device Shadow semantics, over a made-up sequence of updates
  from two writers, some stale.

A crash is simulated as a killed process would leave things: the learner's object
is dropped and every SQLite connection it holds is rolled back and closed, so only
what was committed remains.
"""

from __future__ import annotations

import copy
import gc
import inspect
import json
import math
import random
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kit.nb.checks import CheckFailed, expect
from kit.services.sensor import bad_payload

# -- shared ------------------------------------------------------------------------------


def fresh_rng() -> tuple[random.Random, int]:
    seed = secrets.randbelow(10**6)
    return random.Random(seed), seed


def fresh_sensors(rng: random.Random, count: int = 3) -> list[str]:
    kinds = ["press", "lathe", "pump", "kiln", "mixer", "drill", "robot", "oven"]
    return [f"{kind}-{rng.randrange(16**4):04x}" for kind in rng.sample(kinds, count)]


def mine(name: str) -> Any:
    """The class or function `name` from the caller's namespace (a notebook's), or None when
    its exercise cell has not defined it yet."""
    frame = inspect.currentframe()
    caller = frame.f_back.f_globals if frame and frame.f_back else {}
    return caller.get(name)


def _missing(name: str) -> CheckFailed:
    return CheckFailed(
        f"{name}",
        "defined by the exercise cell above",
        "not defined",
        hint="run the exercise cell first",
    )


def _call(what: str, fn: Callable[[], Any], hint: str) -> Any:
    """Call the learner's code; an exception becomes a CheckFailed that names the call."""
    try:
        return fn()
    except (CheckFailed, NotImplementedError):
        raise
    except Exception as error:  # noqa: BLE001 (any error of the learner's code is the news)
        raise CheckFailed(what, "no exception", f"{type(error).__name__}: {error}", hint) from None


# -- 09-local ----------------------------------------------------------------------------


def make_readings(rng: random.Random, counts: dict[str, int], limit: float) -> list[dict]:
    """Readings of each sensor, interleaved at random, in order per sensor, with holes."""
    per_sensor = []
    for sensor, n in counts.items():
        seqs = [s for s in range(n) if rng.random() > 0.06]  # a few lost on the way
        rows = []
        for seq in seqs:
            vib = round(abs(rng.gauss(2.0, 0.3)), 2)
            if rng.random() < 0.05:
                vib = round(rng.uniform(limit + 0.5, limit + 6), 2)
            elif rng.random() < 0.02:
                vib = round(limit, 2)  # exactly at the limit: not above it
            temp = round(rng.gauss(60, 2), 2)
            rows.append(
                {"sensor": sensor, "seq": seq, "t": 1.7e9 + seq, "temp_c": temp, "vib_mm_s": vib}
            )
        per_sensor.append(rows)
    for rows in per_sensor:  # one reading exactly at the limit per sensor: not above it
        if rows:
            rng.choice(rows)["vib_mm_s"] = round(limit, 2)
    merged: list[dict] = []
    while any(per_sensor):
        weights = [len(rows) for rows in per_sensor]
        pick = rng.choices(range(len(per_sensor)), weights)[0]
        merged.append(per_sensor[pick].pop(0))
    return merged


def topic_of(sensor: str) -> str:
    return f"factory/{sensor}/telemetry"


def reference_outputs(readings: list[dict], window: int, limit: float) -> tuple[dict, list]:
    """What the local function must forward: summaries by (sensor, window), and alerts."""
    summaries: dict[tuple[str, int], dict] = {}
    alerts = []
    for r in readings:
        key = (r["sensor"], r["seq"] // window)
        s = summaries.setdefault(
            key,
            {
                "first": r["seq"],
                "last": r["seq"],
                "count": 0,
                "temps": [],
                "vib_max": r["vib_mm_s"],
            },
        )
        s["first"], s["last"] = min(s["first"], r["seq"]), max(s["last"], r["seq"])
        s["count"] += 1
        s["temps"].append(r["temp_c"])
        s["vib_max"] = max(s["vib_max"], r["vib_mm_s"])
        if r["vib_mm_s"] > limit:
            alerts.append((r["sensor"], r["seq"]))
    for s in summaries.values():
        s["temp_mean"] = sum(s.pop("temps")) / s["count"]
    return summaries, sorted(alerts)


class LocalProbe:
    """Checks a local function (see the module docstring)."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng, self.seed = (rng, None) if rng else fresh_rng()

    def check(self, cls: Any) -> None:
        if cls is None:
            raise _missing("Local")
        rng = self.rng
        sensors = fresh_sensors(rng)
        window, limit = rng.randint(4, 9), round(rng.uniform(5.0, 8.0), 1)
        even = {s: rng.randint(5, 9) * window + rng.randint(1, window - 1) for s in sensors}
        good = make_readings(rng, even, limit)
        self.run(cls, "three sensors", good, [], window, limit)
        flooder = rng.choice(sensors)
        flood = dict(even, **{flooder: even[flooder] * 15})
        self.run(
            cls,
            f"{flooder} flooding",
            make_readings(rng, flood, limit),
            [],
            window,
            limit,
            flooder=flooder,
        )
        readings = make_readings(rng, even, limit)
        malformed = self.malformed(rng, readings, limit)
        self.run(cls, "malformed payloads mixed in", readings, malformed, window, limit)
        readings = make_readings(rng, even, limit)
        stray = self.wrong_topics(rng, readings, limit)
        self.run(cls, "copies on wrong topics mixed in", readings, stray, window, limit)

    @staticmethod
    def malformed(rng: random.Random, readings: list[dict], limit: float) -> list:
        bad = []
        for r in rng.sample(readings, max(4, len(readings) // 12)):
            sensor, seq = r["sensor"], r["seq"]
            payload = rng.choice(
                [
                    bad_payload(rng, sensor, seq),
                    bad_payload(rng, sensor, seq),
                    json.dumps({**r, "vib_mm_s": "high"}).encode(),  # a value that is text
                    json.dumps({**r, "seq": -1 - seq}).encode(),  # a negative seq
                    json.dumps([r]).encode(),  # a list, not a reading
                    json.dumps({**r, "vib_mm_s": limit + 9}).encode()[:-1],  # cut off
                ]
            )
            bad.append((r, topic_of(sensor), payload))
        return bad

    @staticmethod
    def wrong_topics(rng: random.Random, readings: list[dict], limit: float) -> list:
        bad = []
        for r in rng.sample(readings, max(4, len(readings) // 12)):
            sensor = r["sensor"]
            copy_ = {**r, "vib_mm_s": round(limit + rng.uniform(1, 4), 2)}  # would alert
            topic = rng.choice(
                [
                    f"factory/{sensor}/debug",
                    f"factory/{sensor}/telemetry/raw",
                    f"plant/{sensor}/telemetry",
                    f"factory/{rng.choice(['x', 'other'])}-{sensor}/telemetry",  # not its name
                ]
            )
            bad.append((r, topic, json.dumps(copy_).encode()))
        return bad

    def run(
        self,
        cls: Any,
        case: str,
        readings: list[dict],
        bad: list,
        window: int,
        limit: float,
        flooder: str | None = None,
    ) -> None:
        logged: list[tuple] = []
        name = f"Local({window}, {limit}, log)"
        fn = _call(
            name,
            lambda: cls(window, limit, lambda *a: logged.append(a)),
            "the constructor takes window, limit and log",
        )
        before: dict[int, list] = {}
        for r, topic, payload in bad:
            before.setdefault(id(r), []).append((topic, payload))
        out: list = []
        for r in readings:
            for topic, payload in before.get(id(r), []):
                got = _call(
                    f"on_message({topic!r}, {payload[:60]!r}) ({case})",
                    lambda t=topic, p=payload: fn.on_message(t, p),
                    "a payload that is not a reading, or a wrong topic, is logged and dropped: "
                    "never an exception (hint level 1)",
                )
                if got:
                    what = "malformed payload" if topic == topic_of(r["sensor"]) else "wrong topic"
                    raise CheckFailed(
                        f"what on_message returned for a {what} ({case})",
                        "[] (log it, forward nothing)",
                        f"{got!r:.200} for topic {topic!r}, payload {payload[:80]!r}",
                        "check the topic's three parts and every field's type before using "
                        "a message (hint level 2)",
                    )
            payload = json.dumps(r, separators=(",", ":")).encode()
            got = _call(
                f"on_message on a reading ({case})",
                lambda p=payload, r=r: fn.on_message(topic_of(r["sensor"]), p),
                "a good reading must not raise",
            )
            out += self.outputs(got, f"on_message ({case})")
        out += self.outputs(
            _call(f"flush() ({case})", fn.flush, "flush returns a list"), f"flush() ({case})"
        )
        self.compare(out, readings, window, limit, case, flooder)
        expect(
            len(logged) == len(bad),
            f"calls of log ({case})",
            f"one per rejected message: {len(bad)}",
            len(logged),
            "log each message you drop, once, with its topic and why (hint level 1)",
        )

    @staticmethod
    def outputs(got: Any, where: str) -> list[dict]:
        expect(isinstance(got, list), f"what {where} returned", "a list of dicts", repr(got)[:80])
        for item in got:
            expect(isinstance(item, dict), f"an item {where} returned", "a dict", repr(item)[:80])
            _call(
                f"json.dumps of an item {where} returned",
                lambda i=item: json.dumps(i),
                "forwarded items are sent as JSON",
            )
        return got

    def compare(
        self,
        out: list[dict],
        readings: list[dict],
        window: int,
        limit: float,
        case: str,
        flooder: str | None,
    ) -> None:
        summaries, alerts = reference_outputs(readings, window, limit)
        got_alerts = sorted((a.get("sensor"), a.get("seq")) for a in out if "first" not in a)
        got_summaries: dict[tuple, list] = {}
        for s in (o for o in out if "first" in o):
            first = s.get("first")
            key = (s.get("sensor"), first // window if isinstance(first, int) else first)
            got_summaries.setdefault(key, []).append(s)
        where = f" while {flooder} flooded" if flooder else ""
        for key, want in sorted(summaries.items()):
            got = got_summaries.get(key, [])
            sensor, number = key
            last = number == max(n for s, n in summaries if s == sensor)
            if not got:
                tail = (
                    "the last, partial window of a sensor comes out at flush()"
                    if last
                    else "a reading of a later window closes the window before it"
                )
                other = f"summaries of {sensor}{where}" if flooder and sensor != flooder else ""
                raise CheckFailed(
                    f"the summary of {sensor}'s window {number} (seq {number * window}.."
                    f"{number * window + window - 1}) ({case})",
                    f"one summary with first {want['first']}, last {want['last']}, count "
                    f"{want['count']}",
                    "none" + (f": {other}" if other else ""),
                    f"{tail}; windows are per sensor (hint level 2)",
                )
            self.same_summary(got, want, sensor, number, window, case, where)
        extra = sorted(set(got_summaries) - set(summaries), key=str)
        expect(
            not extra,
            f"summaries of windows with no readings ({case})",
            "none",
            f"{extra[:3]}",
            "a summary per (sensor, seq // window) that had readings",
        )
        if got_alerts != alerts:
            more = sorted(set(got_alerts) - set(alerts))[:3]
            less = sorted(set(alerts) - set(got_alerts))[:3]
            twice = len(got_alerts) - len(set(got_alerts))
            raise CheckFailed(
                f"alerts: one per reading with vib_mm_s above {limit} ({case}){where}",
                f"{len(alerts)} alerts",
                f"{len(got_alerts)}; not expected: {more}, missing: {less}, repeated: {twice}",
                "above the limit, not at it; an alert carries sensor, seq and vib_mm_s "
                "(hint level 2)",
            )

    @staticmethod
    def same_summary(
        got: list, want: dict, sensor: str, number: int, window: int, case: str, where: str
    ) -> None:
        what = f"the summary of {sensor}'s window {number} ({case}){where}"
        expect(
            len(got) == 1,
            what,
            "exactly one",
            f"{len(got)}: {got[:2]}",
            "a window is summarised once, when a later reading of its own sensor closes it: "
            "windows are per sensor",
        )
        s = got[0]
        for field in ("first", "last", "count"):
            expect(
                s.get(field) == want[field],
                f"{what}: {field}",
                want[field],
                s.get(field),
                "count only the readings of this sensor in this window: windows are per sensor",
            )
        for field, tol in (("temp_mean", 0.011), ("vib_max", 1e-9)):
            v = s.get(field)
            ok = isinstance(v, int | float) and math.isfinite(v) and abs(v - want[field]) <= tol
            expect(
                ok,
                f"{what}: {field}",
                round(want[field], 3),
                v,
                "temp_mean is the mean temperature of the window's readings, vib_max the "
                "largest vibration",
            )


# -- 09-spool ----------------------------------------------------------------------------


def crash(obj: Any) -> None:
    """What a killed process leaves: uncommitted work rolled back, every connection closed."""
    seen: list[Any] = [obj]
    for value in list(vars(obj).values()) if hasattr(obj, "__dict__") else []:
        seen.append(value)
        if isinstance(value, list | tuple):
            seen.extend(value)
    for value in seen:
        if isinstance(value, sqlite3.Connection):
            try:
                value.rollback()
                value.close()
            except sqlite3.Error:
                pass
        elif isinstance(value, sqlite3.Cursor):
            try:
                value.connection.rollback()
                value.connection.close()
            except sqlite3.Error:
                pass
    gc.collect()


def key(r: dict) -> tuple[str, int]:
    return (r.get("sensor"), r.get("seq"))  # type: ignore[return-value]


class SpoolProbe:
    """Checks a store-and-forward spool (see the module docstring)."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng, self.seed = (rng, None) if rng else fresh_rng()
        # In memory (tmpfs) where there is one: a commit is what the check needs to see, and
        # hundreds of fsyncs on a busy disk would only make it slow.
        shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
        self.folder = Path(tempfile.mkdtemp(prefix="edgelab-spool-", dir=shm))
        self.files = 0

    def path(self) -> str:
        self.files += 1
        return str(self.folder / f"spool-{self.files}.sqlite")

    def check(self, cls: Any) -> None:
        if cls is None:
            raise _missing("Spool")
        try:
            self.durable(cls)
            self.kept_until_sent(cls)
            self.order_and_share(cls)
            self.put_twice(cls)
            self.outages_and_crashes(cls)
        finally:
            gc.collect()
            shutil.rmtree(self.folder, ignore_errors=True)

    def open(self, cls: Any, path: str) -> Any:
        return _call(f"Spool({path!r})", lambda: cls(path), "the constructor takes a file path")

    def readings(self, sensors: list[str], n: int, start: int = 0) -> list[dict]:
        """n readings per sensor, interleaved, in order per sensor."""
        rows = [
            {"sensor": s, "seq": seq, "t": 1.7e9 + seq, "temp_c": 60.0, "vib_mm_s": 2.0}
            for seq in range(start, start + n)
            for s in sensors
        ]
        return rows

    def drain(self, spool: Any, limit: int, rounds: int = 1000) -> list[dict]:
        out: list[dict] = []
        for _ in range(rounds):
            batch = _call(f"next_batch({limit})", lambda: spool.next_batch(limit), "")
            expect(isinstance(batch, list), "what next_batch returned", "a list", repr(batch)[:80])
            if not batch:
                return out
            expect(
                len(batch) <= limit,
                f"the size of next_batch({limit})",
                f"at most {limit}",
                len(batch),
            )
            out += batch
            _call("sent(batch)", lambda b=batch: spool.sent(b), "")
        raise CheckFailed(
            f"next_batch after sent() of every batch, {rounds} times",
            "an empty list at last",
            "readings forever",
            "sent(batch) means: never give these again",
        )

    def durable(self, cls: Any) -> None:
        sensors = fresh_sensors(self.rng)
        path = self.path()
        spool = self.open(cls, path)
        rows = self.readings(sensors, self.rng.randint(3, 7))
        for r in rows:
            _call("put(reading)", lambda r=r: spool.put(dict(r)), "put takes a reading (a dict)")
        crash(spool)
        again = self.open(cls, path)
        got = self.drain(again, 1000)
        lost = sorted(set(map(key, rows)) - set(map(key, got)))
        got_seqs = [seq for _, seq in map(key, got)]
        same_seq = bool(lost and got) and len(got_seqs) == len(set(got_seqs))  # one per seq
        expect(
            not lost,
            "readings put() before a crash (the file opened again right after the puts)",
            f"all {len(rows)} ({len(sensors)} sensors, seq 0..{len(rows) // len(sensors) - 1})",
            f"{len(rows) - len(lost)}; missing: {lost[:4]}",
            "readings of different sensors with the same seq are different readings: key "
            "them by sensor and seq (hint level 2)"
            if same_seq
            else "when put() returns, the broker is told the reading arrived: it must be in "
            "the file by then (committed), not in memory (hint level 2)",
        )
        crash(again)

    def kept_until_sent(self, cls: Any) -> None:
        sensors = fresh_sensors(self.rng, 2)
        path = self.path()
        spool = self.open(cls, path)
        rows = self.readings(sensors, 6)
        for r in rows:
            spool.put(dict(r))
        limit = self.rng.randint(3, 6)
        first = _call(f"next_batch({limit})", lambda: spool.next_batch(limit), "")
        expect(
            bool(first),
            f"next_batch({limit}) with {len(rows)} readings waiting",
            "some readings",
            repr(first)[:80],
        )
        crash(spool)  # the POST failed, or we crashed while it was on its way
        again = self.open(cls, path)
        got = self.drain(again, 100)
        gone = sorted(set(map(key, first)) - set(map(key, got)))
        expect(
            not gone,
            "readings next_batch() handed out, after a crash before sent() was called",
            "still in the spool, given again",
            f"gone: {gone[:4]}",
            "a reading leaves the spool only when sent() says the cloud acknowledged it: "
            "an outage or a crash in between must not lose it (hint level 2)",
        )
        crash(again)
        spool = self.open(cls, self.path())
        for r in rows:
            spool.put(dict(r))
        one = spool.next_batch(limit)
        two = spool.next_batch(limit)  # the POST of `one` failed: asked again
        expect(
            set(map(key, one)) <= set(map(key, two)) and bool(one),
            "next_batch() asked again after a failed POST (no sent() in between)",
            f"the same readings again: {sorted(map(key, one))[:3]}…",
            f"{sorted(map(key, two))[:3]}…",
            "next_batch only looks; sent() is what changes the spool (hint level 2)",
        )
        crash(spool)

    def order_and_share(self, cls: Any) -> None:
        sensors = fresh_sensors(self.rng, 3)
        loud, quiet = sensors[0], sensors[1:]
        spool = self.open(cls, self.path())
        backlog = self.rng.randint(120, 200)
        rows = self.readings([loud], backlog) + self.readings(quiet, 4)
        for r in rows:
            spool.put(dict(r))
        limit = self.rng.randint(20, 30)
        batch = spool.next_batch(limit)
        expect(isinstance(batch, list), "what next_batch returned", "a list", repr(batch)[:80])
        served = {s for s, _ in map(key, batch)}
        expect(
            set(quiet) <= served,
            f"next_batch({limit}) with {backlog} readings of {loud} waiting and 4 each of "
            f"{', '.join(quiet)} (put after them)",
            f"readings of every waiting sensor: {sorted(sensors)}",
            f"only {sorted(served)}: the backlog of one sensor starves the others",
            "give every sensor with waiting readings a share of each batch (hint level 2)",
        )
        got = batch
        spool.sent(batch)
        got += self.drain(spool, limit)
        for sensor in sensors:
            seqs = [seq for s, seq in map(key, got) if s == sensor]
            expect(
                seqs == sorted(seqs) and len(seqs) == len(set(seqs)),
                f"the order of {sensor}'s readings across batches",
                "oldest first (seq 0, 1, 2, …), each once",
                f"{seqs[:8]}…",
                "within a sensor, send in the order of seq (hint level 2)",
            )
        crash(spool)

    def put_twice(self, cls: Any) -> None:
        sensors = fresh_sensors(self.rng, 2)
        spool = self.open(cls, self.path())
        rows = self.readings(sensors, 5)
        for r in rows + rows[:3]:  # the broker delivers again what it was never acked for
            spool.put(dict(r))
        got = self.drain(spool, 4)
        again = [r for r in rows[3:6]]
        for r in again:  # and again, after they were sent
            spool.put(dict(r))
        got += self.drain(spool, 4)
        keys = list(map(key, got))
        twice = sorted({k for k in keys if keys.count(k) > 1})
        expect(
            not twice,
            "readings put twice (a redelivery after a reconnect), before and after sent()",
            "each sent once",
            f"sent twice: {twice[:4]}",
            "a reading is known by (sensor, seq): a second put of it changes nothing "
            "(hint level 2)",
        )
        crash(spool)

    def outages_and_crashes(self, cls: Any) -> None:
        rng = self.rng
        sensors = fresh_sensors(rng)
        path = self.path()
        spool = self.open(cls, path)
        cloud: list[tuple[str, int]] = []
        down = set()
        for _ in range(rng.randint(2, 3)):  # outages: ticks when every POST fails
            start = rng.randint(5, 70)
            down |= set(range(start, start + rng.randint(5, 15)))
        crashes = set(rng.sample(range(5, 90), 3))
        next_seq = dict.fromkeys(sensors, 0)
        unacked: list[dict] = []  # put since the last crash: the broker may deliver them again
        for tick in range(100):
            for sensor in sensors:
                for _ in range(rng.randint(0, 3)):
                    r = {
                        "sensor": sensor,
                        "seq": next_seq[sensor],
                        "t": 1.7e9 + tick,
                        "temp_c": 60.0,
                        "vib_mm_s": 2.0,
                    }
                    next_seq[sensor] += 1
                    spool.put(dict(r))
                    unacked = (unacked + [r])[-5:]
            if tick in crashes:
                crash(spool)
                spool = self.open(cls, path)
                for r in unacked:
                    spool.put(dict(r))
            batch = spool.next_batch(10)
            if batch and tick not in down:
                cloud += map(key, batch)
                spool.sent(batch)
        cloud += map(key, self.drain(spool, 10))
        crash(spool)
        published = {(s, q) for s in sensors for q in range(next_seq[s])}
        lost = sorted(published - set(cloud))
        twice = sorted({k for k in cloud if cloud.count(k) > 1})
        when = f"{len(crashes)} crashes and outages at ticks {min(down)}..{max(down)}"
        expect(
            not lost,
            f"readings that reached the cloud, over {when}",
            "every one",
            f"{len(lost)} of {len(published)} lost: {lost[:4]}",
            "persist in put(); leave the spool only in sent() (hint level 2)",
        )
        expect(
            not twice,
            f"readings the cloud got twice, over {when}",
            "none",
            f"{len(twice)}: {twice[:4]}",
            "key by (sensor, seq) (hint level 2)",
        )
        for sensor in sensors:
            seqs = [q for s, q in cloud if s == sensor]
            expect(
                seqs == sorted(seqs),
                f"the order in which {sensor}'s readings reached the cloud, over {when}",
                "oldest first",
                f"{seqs[:10]}…",
                "within a sensor, send in the order of seq",
            )


# -- 09-shadow ---------------------------------------------------------------------------

CONFLICT = {"code": 409, "message": "Version conflict"}


def reference_update(doc: dict, request: dict) -> tuple[int, dict]:
    """AWS IoT's rule, as the chapter states it (the check's reference)."""
    version = request.get("version")
    if version is not None and version != doc["version"]:
        return 409, dict(CONFLICT)
    state = {part: dict(doc["state"].get(part, {})) for part in ("desired", "reported")}
    for part, changes in request.get("state", {}).items():
        for name, value in changes.items():
            if value is None:
                state[part].pop(name, None)
            else:
                state[part][name] = value
    delta = {k: v for k, v in state["desired"].items() if state["reported"].get(k) != v}
    if delta:
        state["delta"] = delta
    return 200, {"state": state, "version": doc["version"] + 1}


def empty_shadow() -> dict:
    return {"state": {"desired": {}, "reported": {}}, "version": 0}


class ShadowProbe:
    """Checks a shadow's update rule (see the module docstring)."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng, self.seed = (rng, None) if rng else fresh_rng()

    def requests(self) -> list[tuple[str, dict, str]]:
        """(who, request, what it is) for a made-up session of an app and a device."""
        rng = self.rng
        names = rng.sample(["setpoint_c", "fan_rpm", "mode", "valve_pct", "led", "rate_hz"], 4)
        values = [lambda: rng.randint(10, 90), lambda: rng.choice(["eco", "run", "stop"])]
        steps: list[tuple[str, dict, str]] = []
        count = rng.randint(14, 20)
        forced = dict(
            zip(rng.sample(range(2, count), 4), ["none", "stale", "null", "agree"], strict=True)
        )
        for i in range(count):
            who = rng.choice(["app", "device"])
            part = "desired" if who == "app" else "reported"
            changes = {n: rng.choice(values)() for n in rng.sample(names, rng.randint(1, 2))}
            kind = rng.choices(["current", "none", "stale", "null", "agree"], [4, 2, 3, 1, 2])[0]
            if i < 2:
                kind = "current"
            kind = forced.get(i, kind)
            request: dict = {"state": {part: changes}}
            if kind == "null":
                request["state"][part] = {rng.choice(names): None}
            if kind == "agree":  # the device reports exactly what was desired
                request = {"state": {"reported": {"__agree__": True}}}
            if kind in ("current", "null", "agree"):
                request["version"] = "__current__"
            if kind == "stale":
                request["version"] = "__stale__"
            steps.append((who, request, kind))
        return steps

    def check(self, fn: Any) -> None:
        if fn is None:
            raise _missing("update_shadow")
        doc = empty_shadow()
        mine = empty_shadow()
        history = []
        for who, template, kind in self.requests():
            request = copy.deepcopy(template)
            if "__agree__" in request["state"].get("reported", {}):
                request["state"] = {"reported": dict(doc["state"]["desired"]) or {"mode": "run"}}
            if request.get("version") == "__current__":
                request["version"] = doc["version"]
            elif request.get("version") == "__stale__":
                request["version"] = max(0, doc["version"] - self.rng.randint(1, 3))
                if request["version"] == doc["version"]:
                    request["version"] = doc["version"] + 1  # from the future: also refused
            want = reference_update(doc, request)
            given = copy.deepcopy(mine)
            got = _call(
                f"update_shadow(doc, {json.dumps(request)})",
                lambda g=given, r=request: fn(g, copy.deepcopy(r)),
                "update_shadow returns (status, body)",
            )
            said = f"after {len(history)} updates, doc at version {doc['version']}: {who} sends "
            said += json.dumps(request)
            self.compare(got, want, said, kind, given, mine)
            history.append(request)
            if want[0] == 200:
                doc = want[1]
                mine = copy.deepcopy(got[1])

    @staticmethod
    def compare(
        got: Any, want: tuple[int, dict], said: str, kind: str, given: dict, before: dict
    ) -> None:
        ok = isinstance(got, tuple | list) and len(got) == 2 and isinstance(got[1], dict)
        expect(ok, f"what update_shadow returned ({said})", "(status, body)", repr(got)[:100])
        status, body = got
        if want[0] == 409:
            expect(
                status == 409 and body == CONFLICT,
                f"a stale update ({said})",
                f'409 with {json.dumps(CONFLICT)} ("Version conflict")',
                f"{status} {json.dumps(body)[:120]}",
                "an update that names a version other than the document's is refused: it "
                "was written against a state that is gone (hint level 2)",
            )
            expect(
                given == before,
                f"the document after a refused update ({said})",
                "unchanged",
                json.dumps(given)[:160],
                "check the version before you change anything",
            )
            return
        expect(
            status == 200,
            f"the status ({said})",
            200,
            f"{status} {json.dumps(body)[:100]}",
            "an update with no version, or the current one, is accepted",
        )
        expect(
            body.get("version") == want[1]["version"],
            f"the version after it ({said})",
            want[1]["version"],
            body.get("version"),
            "every accepted update adds one to the version (hint level 2)",
        )
        state = body.get("state") if isinstance(body.get("state"), dict) else {}
        for part in ("desired", "reported"):
            expect(
                state.get(part, {}) == want[1]["state"][part],
                f"state.{part} after it ({said})",
                json.dumps(want[1]["state"][part]),
                json.dumps(state.get(part)),
                "an update changes only the keys it names; a key set to null is "
                "deleted (hint level 1)",
            )
        delta = want[1]["state"].get("delta")
        expect(
            state.get("delta") == delta,
            f"state.delta after it ({said})",
            json.dumps(delta) if delta else "no delta key (desired and reported agree)",
            json.dumps(state.get("delta")) if "delta" in state else "no delta key",
            "delta holds the desired keys whose value differs from reported (or is not "
            "reported), and is left out when there are none (hint level 2)",
        )
