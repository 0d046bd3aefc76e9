"""Chapter 10's checks: a background-sync outbox with idempotent replay, a CRDT note.

Warm-up 10-routes: `ROUTES`, a list of the proxy's routes (`{"match", "strategy",
"network_timeout_s"}`) for the app: its shell (`/app/...`) and its API (`GET /notes`).
`RouteProbe` sets them on a device, visits once online (a precache), and asks: online, is
the notes list the server's latest (a note written a moment ago is in it)? With the link
cut, does the page load whole and does `/notes` answer 200? In lie-fi, do both answer
within `LIE_FI_LIMIT_S`? The app's version and the notes are made up on each run.

Exercise 10-outbox: `Outbox(path)` is a queue of mutations kept in the SQLite file
`path` on the device, with

    add(method, path, body)   record a mutation (body: a dict sent as JSON), at once
    replay(send)              send what waits, oldest first; return when the queue is
                              empty or when `send` failed (the next sync event retries)
    pending()                 how many mutations wait

where `send(method, path, body, headers)` is given by the caller: it makes the request
and returns the HTTP status, or raises `ConnectionError` when no answer came.

`OutboxProbe` ships the learner's class (its cell's source, `yours`) to a device and
runs it there as a program (`OfflineApp.start_program`) against the sync service: a
few thousand mutations of made-up notes (PUTs on a few notes, POSTs of new ones, texts
unique per operation) added in batches, a replay after each batch, while the device's
link is cut now and then (`app.disconnects`), the server drops some answers after
applying the mutation (`lose_answer`) and answers 503 for a while. Halfway through, at
a moment something waits, the program opens a new `Outbox` on the same file (the
service worker restarted). When everything is added, it replays until nothing waits.
Counted at the server (its applied log): every operation applied exactly once, and
the operations on one note applied in the order they were made. A failure says
which operations, and how they were sent (the program records every attempt: the
operation, its Idempotency-Key, what came back).

Exercise 10-note: `Note()` is a text note on one device, on pycrdt, with
`insert(index, text)`, `delete(index, length)`, `str(note)` and `reconnect(server)`,
where `server` (a `DocServer`) has `send(update)`, `missing(state) -> update` and
`state() -> state vector`, each a request from that device to the sync service.
`NoteProbe` starts a note on one device, lets the others reconnect to get it, cuts
every device's link, makes random edits on each (words inserted, letters of the
shared text deleted, some at the same places on several devices), restores the
links, and has every device reconnect twice in a random order. Then every device
and a new one read the same text, in which every word inserted is there once and
every letter deleted is gone, and nothing else changed.

Seeds are drawn fresh on every run and printed in a failure, so a failure can be
replayed.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kit.nb.actor_checks import yours
from kit.nb.checks import CheckFailed
from kit.net import faults
from kit.offline import OfflineApp

__all__ = ["DocServer", "NoteProbe", "OutboxProbe", "RouteProbe", "yours"]

HINT_ROUTES, HINT_OUTBOX, HINT_NOTE = "10-routes", "10-outbox", "10-note"
LIE_FI_LIMIT_S = 3.0  # a user in lie-fi waits this long for the page or the notes


def _hint(exercise: str, level: int, why: str) -> str:
    return f'{why} (hint("{exercise}", {level}))'


def fresh_seed() -> int:
    return random.SystemRandom().randrange(1, 2**31)


# -- 10-routes ---------------------------------------------------------------------------


class RouteProbe:
    """Sets a learner's routes on a device's proxy and tries the app online, offline, lie-fi."""

    def __init__(self, app: OfflineApp, device: str) -> None:
        self.app, self.device = app, device

    def check(self, routes: Any) -> dict[str, Any]:
        app, device = self.app, self.device
        if not isinstance(routes, list) or not routes:
            raise CheckFailed(
                "ROUTES",
                'a list of routes, e.g. [{"match": "/somewhere/", "strategy": "NetworkOnly"}]',
                repr(routes)[:200],
                _hint(HINT_ROUTES, 1, "one route for the app's shell, one for its API"),
            )
        rng = random.Random(fresh_seed())
        app.online(device)
        app.forget()
        app.server_config({"version": f"v{rng.randrange(10**6)}", "rules": []})
        app.clear_cache(device)
        try:
            app.set_routes(device, routes)
        except Exception as error:
            raise CheckFailed(
                "ROUTES, given to the proxy", "routes the proxy takes", str(error)[-300:]
            ) from None
        first = f"note {rng.randrange(10**6)}"
        app.fetch(device, "/notes", "POST", json_body={"text": first}, direct=True)
        page = app.page(device)  # the first visit, online: what a service worker precaches
        app.fetch(device, "/notes")
        app.settle(device)
        if not page.ok:
            raise CheckFailed("the page online", "5 parts, status 200", _parts(page), "")
        later = f"note {rng.randrange(10**6)}"
        app.fetch(device, "/notes", "POST", json_body={"text": later}, direct=True)
        fresh = app.fetch(device, "/notes")
        texts = _texts(fresh)
        app.settle(device)
        if later not in texts:
            raise CheckFailed(
                "GET /notes online, after a note was written",
                f"the server's latest list, with {later!r}",
                f"{texts} (x-sw-from: {fresh.source}, strategy {fresh.strategy}): stale notes "
                "while the network was there",
                _hint(HINT_ROUTES, 2, "the API's data must come from the network when it can"),
            )
        result: dict[str, Any] = {}
        for network in ("offline", "lie-fi"):
            app.offline(device) if network == "offline" else app.lie_fi(device)
            try:
                page = app.page(device, timeout=LIE_FI_LIMIT_S)
                notes = app.fetch(device, "/notes", timeout=LIE_FI_LIMIT_S)
            finally:
                app.online(device)
            app.settle(device, timeout=60)
            result[network] = (page, notes)
            slow = "" if network == "offline" else f" within {LIE_FI_LIMIT_S:.0f} s"
            if not page.ok:
                raise CheckFailed(
                    f"the page {network} (after one visit online)",
                    f"all 5 parts{slow}, status 200",
                    _parts(page),
                    _hint(HINT_ROUTES, 2, _why(network, "/app/", routes)),
                )
            if notes.status != 200 or later not in _texts(notes):
                got = notes.error or f"status {notes.status} from {notes.source or 'nowhere'}"
                raise CheckFailed(
                    f"GET /notes {network} (after it was read online)",
                    f"the last list read, status 200{slow}",
                    got,
                    _hint(HINT_ROUTES, 2, _why(network, "/notes", routes)),
                )
        return result


def _why(network: str, path: str, routes: list[Any]) -> str:
    route = next(
        (r for r in routes if isinstance(r, dict) and path.startswith(str(r.get("match")))), None
    )
    if route is None:
        return f"no route matches {path}: it goes to the network, and there is none"
    strategy, timeout = route.get("strategy"), route.get("network_timeout_s")
    if strategy in ("NetworkOnly", "CacheOnly"):
        return f"{strategy} on {path} never falls back"
    if network == "lie-fi" and strategy == "NetworkFirst" and not timeout:
        return (
            f"NetworkFirst on {path} without network_timeout_s waits for a network that "
            "never answers"
        )
    return f"what does {strategy} on {path} do when the network is {network}?"


def _parts(page: Any) -> str:
    return ", ".join(f"{p.path} {p.status or p.error}" for p in page.parts)


def _texts(answer: Any) -> list[str]:
    try:
        return [n["text"] for n in answer.json()["notes"]]
    except (ValueError, KeyError, TypeError):
        return []


# -- 10-outbox ---------------------------------------------------------------------------

# Runs on the device after the learner's source: the operations arrive in JOB, every
# attempt is recorded (which operation, which key, what came back), and one JSON line
# with the record is printed at the end.
HARNESS = r"""

import http.client as _http, json as _json, os as _os, time as _time, traceback as _tb
from urllib.parse import urlsplit as _split

_JOB = _json.loads(JOB_TEXT)
_server = _split(_os.environ["SYNC_URL"])
_conn = None
_attempts = []  # [op text, key or None, status or error]
_times = {}


def _send(method, path, body, headers=None):
    global _conn
    text = body.get("text") if isinstance(body, dict) else None
    headers = dict(headers or {})
    key = next((v for k, v in headers.items() if k.lower() == "idempotency-key"), None)
    headers.setdefault("Content-Type", "application/json")
    _times.setdefault("first", _time.time())
    try:
        if _conn is None:
            _conn = _http.HTTPConnection(_server.hostname, _server.port, timeout=_JOB["timeout"])
        _conn.request(method, path, _json.dumps(body).encode(), headers)
        answer = _conn.getresponse()
        answer.read()
    except (OSError, _http.HTTPException) as error:
        if _conn is not None:
            _conn.close()
        _conn = None
        _attempts.append([text, key, type(error).__name__])
        raise ConnectionError(f"no answer: {type(error).__name__}") from None
    _attempts.append([text, key, answer.status])
    _times["last"] = _time.time()
    return answer.status


def _replay(outbox):
    try:
        outbox.replay(_send)
    except ConnectionError:
        pass  # the same as returning: the next sync event tries again


_result = {"restarted_after": None, "error": None}
try:
    _outbox = Outbox(_os.environ["STORE"])
    _added = 0
    for _i, _batch in enumerate(_JOB["batches"]):
        for _op in _batch:
            _outbox.add(_op["method"], _op["path"], _op["body"])
        _added += len(_batch)
        if _JOB["wait_online"] and _i == 0:
            _replay(_outbox)  # offline: nothing goes
            while True:  # a sync event whenever the network may be back
                _time.sleep(0.05)
                _replay(_outbox)
                if not _outbox.pending():
                    break
            continue
        if _i == len(_JOB["batches"]) // 2:  # the service worker starts again, its queue
            _outbox = Outbox(_os.environ["STORE"])  # holding at least this batch
            _result["restarted_after"] = _added
            _result["restarted_at"] = len(_attempts)
        _replay(_outbox)
    _deadline = _time.monotonic() + _JOB["drain_s"]
    while _outbox.pending() and _time.monotonic() < _deadline:
        _time.sleep(0.1)
        _replay(_outbox)
    _result["pending"] = _outbox.pending()
except Exception:
    _result["error"] = _tb.format_exc(limit=4)
_result["attempts"] = _attempts
_result["times"] = _times
print(_json.dumps(_result), flush=True)
"""


@dataclass
class Op:
    index: int
    method: str
    path: str
    text: str
    note: str | None  # None: a POST whose id the server picks

    def as_job(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "body": {"text": self.text}}


def make_ops(seed: int, count: int, notes: int = 6) -> list[Op]:
    """`count` mutations of made-up notes: PUTs of a few notes (order matters on each) and
    POSTs of new notes (a POST applied twice is two notes); every text says its op."""
    rng = random.Random(seed)
    tag = f"{rng.getrandbits(32):08x}"
    ids = [f"{tag}-{rng.choice('abcdefgh')}{n}" for n in range(notes)]
    ops = []
    for i in range(count):
        text = f"{tag} op {i}: {rng.choice(('buy', 'call', 'fix', 'send', 'read'))}"
        if rng.random() < 0.2:
            ops.append(Op(i, "POST", "/notes", text, None))
        else:
            note = rng.choice(ids)
            ops.append(Op(i, "PUT", f"/notes/{note}", text, note))
    return ops


def batches(ops: list[Op], rng: random.Random, most: int = 8) -> list[list[Op]]:
    out, i = [], 0
    while i < len(ops):
        n = rng.randint(1, most)
        out.append(ops[i : i + n])
        i += n
    return out


@dataclass
class OutboxRun:
    """What one run of an outbox did: its operations, the server's log, the attempts."""

    ops: list[Op]
    seed: int
    attempts: list[list[Any]]
    applied: dict[str, list[int]]  # op text -> seqs in the server's log
    pending: int | None
    restarted_after: int | None  # operations added before the outbox was opened again
    restarted_at: int | None  # attempts made before it
    error: str | None
    seconds: float
    counts: dict[str, Any] = field(default_factory=dict)
    times: dict[str, float] = field(default_factory=dict)

    def per_op(self) -> list[int]:
        return [len(self.applied.get(op.text, [])) for op in self.ops]


class OutboxProbe:
    """Runs a learner's `Outbox` on a device through faults and checks it at the server."""

    def __init__(self, app: OfflineApp, device: str) -> None:
        self.app, self.device = app, device

    def run(
        self,
        source: str,
        ops: int,
        seed: int | None = None,
        faults_on: bool = True,
        duration: float = 20.0,
        wait_online: bool = False,
        cuts: int = 3,
    ) -> OutboxRun:
        """Run the outbox program on the device and collect what the server applied."""
        seed = fresh_seed() if seed is None else seed
        rng = random.Random(seed)
        operations = make_ops(seed, ops)
        parts = [operations] if wait_online else batches(operations, rng)
        job = {
            "batches": [[op.as_job() for op in part] for part in parts],
            "timeout": 1.0,
            "drain_s": 60.0,
            "wait_online": wait_online,
        }
        program = source + HARNESS.replace("JOB_TEXT", repr(json.dumps(job)))
        app = self.app
        app.forget()
        app.server_config({"rules": []})
        playback = None
        if faults_on:
            rules = [{"match": "/notes*", "lose_answer": 0.1}]
            app.server_config({"rules": rules})
            playback = faults.play(app.world, app.disconnects(self.device, seed, duration, cuts))
        name = f"outbox{uuid.uuid4().hex[:6]}"
        if wait_online:
            app.offline(self.device)
        t0 = time.monotonic()
        service = app.start_program(self.device, program, name=name)
        back = None
        try:
            if wait_online:  # everything is added offline; then the network comes back
                time.sleep(1.5)
                back = time.time()
                app.online(self.device)
            if faults_on:  # the server fails twice for a while: 503 before applying anything
                for share in (rng.uniform(0.1, 0.3), rng.uniform(0.2, 0.4)):
                    time.sleep(share * duration)
                    app.server_config({"rules": [{"match": "/notes*", "status": 503}]})
                    time.sleep(rng.uniform(0.8, 1.5))
                    app.server_config({"rules": rules})
            service.proc.wait(duration + 120)
        except subprocess.TimeoutExpired:
            app.world.stop_service(service)
            raise CheckFailed(
                "your Outbox on the device",
                "replay to return when a request fails or nothing waits",
                f"the program still ran after {duration + 120:.0f} s",
                _hint(HINT_OUTBOX, 2, "replay must not wait for the network itself"),
            ) from None
        finally:
            if playback is not None:
                playback.wait(duration + 30)
            app.server_config({"rules": []})
            for device in app.devices:
                app.online(device)
        seconds = time.monotonic() - t0
        lines = [line for line in service.log().splitlines() if line.startswith("{")]
        if not lines:
            raise CheckFailed(
                "your Outbox, run on the device",
                "a program that runs to its end",
                service.log().strip()[-1500:] or "no output",
                "the error above happened in your class, on the device",
            )
        result = json.loads(lines[-1])
        applied: dict[str, list[int]] = {}
        for seq, _method, _note, _key, text in app.applied_log():
            applied.setdefault(text, []).append(seq)
        return OutboxRun(
            operations,
            seed,
            result["attempts"],
            applied,
            result.get("pending"),
            result["restarted_after"],
            result.get("restarted_at"),
            result["error"],
            seconds,
            app.server_counts(),
            {**result.get("times", {}), "online": back} if back else result.get("times", {}),
        )

    def check(self, source: str | None, ops: int = 500, duration: float = 15.0) -> OutboxRun:
        """The whole check: a run through faults, then every property at the server."""
        if source is None:
            raise CheckFailed("your Outbox", "a class Outbox, defined above", "no class Outbox")
        run = self.run(source, ops, duration=duration)
        judge_outbox(run)
        return run


AFTER_THE_ANSWER = "an entry may leave the outbox only after the server answered it"


def judge_outbox(run: OutboxRun) -> None:
    """Raise CheckFailed naming the first property `run` breaks."""
    seed = f"(seed {run.seed})"
    if run.error:
        raise CheckFailed(
            f"your Outbox on the device {seed}",
            "add, replay and pending to run without an error",
            run.error.strip().splitlines()[-1],
            "the traceback's last lines: " + " | ".join(run.error.strip().splitlines()[-3:]),
        )
    if not any(a[2] == 200 or a[2] == 201 for a in run.attempts):
        raise CheckFailed(
            f"what your outbox sent {seed}",
            "mutations sent with send(method, path, body, headers)",
            f"{len(run.attempts)} attempts, none answered 2xx",
            _hint(HINT_OUTBOX, 1, "replay must call send for what waits"),
        )
    tries: dict[str, list[list[Any]]] = {}
    for attempt in run.attempts:
        tries.setdefault(attempt[0], []).append(attempt)
    per_op = run.per_op()
    twice = [op for op, n in zip(run.ops, per_op, strict=True) if n > 1]
    if twice:
        op = twice[0]
        keys = [a[1] for a in tries.get(op.text, [])]
        if all(k is None for k in keys):
            why = "it was sent without an Idempotency-Key, so the server applies every copy"
            level = 1
        elif len(set(keys)) > 1:
            why = "a retry carried a new Idempotency-Key, so the server took it for a new operation"
            level = 2
        else:
            why = "the same key each time, yet applied again: is the key unique to this operation?"
            level = 2
        raise CheckFailed(
            f"how often the server applied each operation {seed}",
            "every operation applied exactly once",
            f"{len(twice)} of {len(run.ops)} applied twice or more, e.g. {op.method} "
            f"{op.path} (op {op.index}) {per_op[op.index]} times; its attempts' keys: "
            f"{keys[:4]}",
            _hint(HINT_OUTBOX, level, why),
        )
    lost = [op for op, n in zip(run.ops, per_op, strict=True) if n == 0]
    if lost:
        op = lost[0]
        after = {a[0] for a in run.attempts[run.restarted_at or 0 :]}
        across = run.restarted_after is not None and all(
            o.index < run.restarted_after and o.text not in after for o in lost
        )
        last = {o.text: (tries.get(o.text) or [[None, None, None]])[-1][2] for o in lost}
        # Any operation, applied or not, whose last attempt got no answer left the outbox
        # without one: a lost answer (the server applied it) is never resent either.
        left_unanswered = [
            o for o in run.ops if tries.get(o.text) and not isinstance(tries[o.text][-1][2], int)
        ]
        unanswered = [o for o in left_unanswered if o.text in last]  # those never applied
        if not left_unanswered and all(
            isinstance(status, int) and status >= 500 for status in last.values()
        ):
            why = (
                f"answered {last[op.text]} and never sent again: a 5xx means the server did not "
                "apply it, so it stays in the outbox"
            )
        elif across:
            why = (
                "all were added before the outbox was opened again from its file, and none "
                "was sent after: lost across the restart (is the queue kept only in memory?)"
            )
        elif unanswered:
            op = unanswered[0]
            why = (
                f"its last attempt got {last[op.text]} (no answer) and it was never sent again: "
                f"{AFTER_THE_ANSWER}"
            )
        elif left_unanswered:
            gone = left_unanswered[0]
            fate = f"answered {last[op.text]}" if last[op.text] is not None else "never sent"
            why = (
                f"{fate}, and op {gone.index} was never sent again after its answer was lost: "
                f"{AFTER_THE_ANSWER}"
            )
        else:
            why = "never sent at all: does every added operation reach replay?"
        raise CheckFailed(
            f"operations the server applied {seed}",
            "every operation applied (none lost)",
            f"{len(lost)} of {len(run.ops)} never applied, e.g. {op.method} {op.path} "
            f"(op {op.index}): {why}",
            _hint(HINT_OUTBOX, 2, "what removes an entry, and when?"),
        )
    if run.pending:
        raise CheckFailed(
            f"the outbox after the network came back {seed}",
            "nothing pending once everything was applied",
            f"pending() says {run.pending}",
            _hint(HINT_OUTBOX, 2, "pending counts what is still in the file"),
        )
    order: dict[str, list[tuple[int, int]]] = {}
    for op in run.ops:
        if op.note is not None:
            order.setdefault(op.note, []).append((run.applied[op.text][0], op.index))
    for note, applied in order.items():
        indices = [index for _seq, index in sorted(applied)]
        for before, after in zip(indices, indices[1:], strict=False):
            if after < before:
                raise CheckFailed(
                    f"the order of the operations on one note {seed}",
                    "the operations on a note applied in the order they were made",
                    f"out of order on note {note}: op {before} was applied before op {after}",
                    _hint(
                        HINT_OUTBOX,
                        2,
                        "a failed entry keeps its place, and replay stops at it",
                    ),
                )


# -- 10-note -----------------------------------------------------------------------------


class DocServer:
    """The sync service's document `name`, as one device reaches it (each call is a request
    from the device); it counts the bytes each way."""

    def __init__(self, app: OfflineApp, device: str, name: str) -> None:
        self.app, self.device, self.name = app, device, name
        self.sent = self.received = self.calls = 0

    def _ok(self, answer: Any, what: str) -> bytes:
        self.calls += 1
        if answer.status != 200:
            raise ConnectionError(f"{what} on {self.device}: {answer.status} {answer.error or ''}")
        self.received += len(answer.body)
        return answer.body

    def send(self, update: bytes) -> None:
        """Merge `update` (a Yjs update) into the server's document."""
        if not isinstance(update, bytes):
            raise TypeError(f"send takes the bytes of an update, not {type(update).__name__}")
        self.sent += len(update)
        self._ok(self.app.push_update(self.device, self.name, update), "send")

    def missing(self, state: bytes) -> bytes:
        """The update holding what a document with state vector `state` lacks."""
        if not isinstance(state, bytes):
            raise TypeError(f"missing takes a state vector (bytes), not {type(state).__name__}")
        self.sent += len(state)
        return self._ok(self.app.pull_missing(self.device, self.name, state), "missing")

    def state(self) -> bytes:
        """The server's state vector of the document."""
        return self._ok(self.app.server_state(self.device, self.name), "state")

    def whole(self) -> bytes:
        """The whole document as one update (not counted: the check reads it)."""
        answer = self.app.fetch(self.device, f"/docs/{self.name}", direct=True)
        return answer.body if answer.status == 200 else b""


WORDS = ("milk", "eggs", "tea", "rice", "oats", "figs", "kale", "plums", "bread", "lime")


@dataclass
class NoteRun:
    """One run of the merge: the texts, what each device did, the bytes."""

    seed: int
    base: str
    texts: dict[str, str]
    newcomer: str
    markers: list[str]
    deleted: int  # letters of the shared text deleted (two devices may delete the same)
    edits: int
    sync_bytes: list[dict[str, Any]] = field(default_factory=list)
    whole_bytes: int = 0
    edits_by_device: dict[str, list[tuple]] = field(default_factory=dict)


class NoteProbe:
    """Edits a learner's `Note` on several devices offline and merges them on reconnect."""

    def __init__(self, app: OfflineApp, devices: list[str]) -> None:
        self.app, self.devices = app, list(devices)

    def run(self, note_class: Any, seed: int | None = None, edits: int = 9) -> NoteRun:
        seed = fresh_seed() if seed is None else seed
        rng = random.Random(seed)
        app, devices, name = self.app, self.devices, f"note-{seed:x}"
        for device in devices:
            app.online(device)
        base = " ".join(rng.choice(WORDS) for _ in range(12))
        notes = {d: _make(note_class) for d in devices}
        first = devices[0]
        _call(notes[first], "insert", 0, base)
        _reconnect(notes[first], DocServer(app, first, name))
        for device in devices[1:]:
            _reconnect(notes[device], DocServer(app, device, name))
            got = str(notes[device])
            if got != base:
                raise CheckFailed(
                    f"a device that reconnects to a note it does not have (seed {seed})",
                    repr(base),
                    repr(got),
                    _hint(HINT_NOTE, 2, "reconnect brings the device what the server has"),
                )
        # Everyone offline; each device edits what it has. A model of each device's text:
        # a list of (letter, where from): ("shared", its index) or ("marker", its number).
        for device in devices:
            app.offline(device)
        markers: list[str] = []
        deleted: set[int] = set()  # indices of the shared text deleted on some device
        by_device: dict[str, list[tuple]] = {}
        try:
            for d, device in enumerate(devices):
                model: list[tuple[str, tuple[str, int]]] = [
                    (c, ("shared", i)) for i, c in enumerate(base)
                ]
                done = by_device.setdefault(device, [])
                for e in range(edits):
                    if e % 3 == 2:  # delete one letter of the shared text
                        shared = [i for i, (_c, tag) in enumerate(model) if tag[0] == "shared"]
                        at = rng.choice(shared)
                        _call(notes[device], "delete", at, 1)
                        done.append(("delete", at, 1))
                        deleted.add(model[at][1][1])
                        del model[at]
                        continue
                    marker = f"<{'abc'[d % 3]}{e}{rng.choice(WORDS)}>"
                    number = len(markers)
                    markers.append(marker)
                    # Same places on every device (the start, the end) or between words.
                    gaps = [0, len(model)] + [
                        i
                        for i in range(1, len(model))
                        if model[i][1][0] == "shared" or model[i - 1][1] != model[i][1]
                    ]
                    at = rng.choice(gaps[:2] if e < 2 else gaps)
                    _call(notes[device], "insert", at, marker)
                    done.append(("insert", at, marker))
                    model[at:at] = [(c, ("marker", number)) for c in marker]
                want = "".join(c for c, _o in model)
                got = str(notes[device])
                if got != want:
                    raise CheckFailed(
                        f"your Note's insert and delete on one device (seed {seed})",
                        repr(want),
                        repr(got),
                        _hint(HINT_NOTE, 1, f"after {done[:3]}... on {device}"),
                    )
        finally:
            for device in devices:
                app.online(device)
        # Everyone back; each reconnects twice, in a random order.
        sync_bytes = []
        order = devices[:]
        for round_ in (1, 2):
            rng.shuffle(order)
            for device in order:
                server = DocServer(app, device, name)
                t0 = time.perf_counter()
                _reconnect(notes[device], server)
                sync_bytes.append(
                    {
                        "device": device,
                        "round": round_,
                        "sent": server.sent,
                        "received": server.received,
                        "requests": server.calls,
                        "ms": (time.perf_counter() - t0) * 1000,
                    }
                )
        newcomer = _make(note_class)
        _reconnect(newcomer, DocServer(app, devices[-1], name))
        whole = DocServer(app, devices[0], name).whole()
        return NoteRun(
            seed,
            base,
            {d: str(n) for d, n in notes.items()},
            str(newcomer),
            markers,
            len(deleted),
            edits * len(devices),
            sync_bytes,
            len(whole),
            by_device,
        )

    def check(self, note_class: Any) -> NoteRun:
        if note_class is None:
            raise CheckFailed("your Note", "a class Note, defined above", "no class Note")
        run = self.run(note_class)
        judge_note(run)
        return run


def judge_note(run: NoteRun) -> None:
    """Raise CheckFailed naming the first property `run` breaks."""
    seed = f"(seed {run.seed})"
    for device, text in [*run.texts.items(), ("a new device", run.newcomer)]:
        doubled = [m for m in run.markers if text.count(m) > 1]
        if doubled:
            raise CheckFailed(
                f"the words inserted offline, on {device} {seed}",
                "each once in the merged note",
                f"applied twice: {doubled[:3]}; the note reads {text!r}",
                _hint(HINT_NOTE, 2, "the document is merged, never rebuilt from its text"),
            )
    server = run.newcomer  # what a device with nothing gets from the server's copy
    missing = [m for m in run.markers if m not in server]
    if missing:
        raise CheckFailed(
            f"the words inserted offline, in the server's copy {seed}",
            f"all {len(run.markers)} in the merged note",
            f"{len(missing)} edits lost, e.g. {missing[:3]}; a new device reads {server!r}",
            _hint(HINT_NOTE, 1, "merge what every side did instead of choosing one side"),
        )
    distinct = set(run.texts.values())
    if len(distinct) > 1 or server not in distinct:
        shown = "; ".join(f"{d}: {t!r}" for d, t in run.texts.items())
        raise CheckFailed(
            f"the devices' notes after each reconnected twice {seed}",
            "one text on every device and on a new one (the merge converges)",
            f"{len(distinct | {server})} different texts: {shown}; a new device: {server!r}",
            _hint(
                HINT_NOTE,
                2,
                "a device must both send what the server lacks and apply what it lacks",
            ),
        )
    rest = server
    for m in run.markers:
        rest = rest.replace(m, "")
    shared_left = len(run.base) - run.deleted
    if len(rest) != shared_left or Counter(rest) - Counter(run.base):
        raise CheckFailed(
            f"the shared text after {run.deleted} letters were deleted offline {seed}",
            f"{shared_left} letters of it left",
            f"{len(rest)}: {rest!r} (deleted letters came back, or more went)",
            _hint(HINT_NOTE, 1, "a delete is an edit too, and merges like one"),
        )


def _make(note_class: Any) -> Any:
    try:
        return note_class()
    except Exception as error:
        raise CheckFailed(
            "Note()",
            "a new, empty note",
            f"{type(error).__name__}: {error}",
            _hint(HINT_NOTE, 1, "Note() takes no arguments"),
        ) from None


def _call(note: Any, method: str, *args: Any) -> Any:
    try:
        return getattr(note, method)(*args)
    except CheckFailed:
        raise
    except Exception as error:
        raise CheckFailed(
            f"note.{method}{args}",
            "no error",
            f"{type(error).__name__}: {error}",
            _hint(HINT_NOTE, 1, f"{method} is part of the interface the chapter states"),
        ) from None


def _reconnect(note: Any, server: DocServer) -> None:
    try:
        note.reconnect(server)
    except CheckFailed:
        raise
    except Exception as error:
        raise CheckFailed(
            f"note.reconnect(server) on {server.device}",
            "no error",
            f"{type(error).__name__}: {error}",
            _hint(HINT_NOTE, 3, "server.send, server.missing and server.state take and give bytes"),
        ) from None
