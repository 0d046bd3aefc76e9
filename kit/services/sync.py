"""The sync service: an offline-first app's server, with idempotent mutations and CRDT docs.

    python -m kit.services.sync --port 7300 --db notes.sqlite --unix sync.sock

It is the origin of chapter 10's app: a notes API whose mutations may be retried
safely, Yjs documents merged from devices that edited them offline, and the app's
shell (a page and its assets) for a device's proxy to cache.

Data plane (port 7300 on a world)
---------------------------------
    GET    /notes          {"notes": [{"id", "text", "rev"}, ...]} in creation order
    GET    /notes/ID       {"id", "text", "rev"}; 404 if there is none
    POST   /notes          {"id": str, "text": str}: create (201); an id that exists: 409.
                           Without "id" the service picks one: every such POST is a new note
    PUT    /notes/ID       {"text": str} (an "id" in the body must be ID): replace (200) or
                           create (201)
    DELETE /notes/ID       200 {"deleted": ID}; 404 if there is none
    POST   /docs/NAME      body: a Yjs update (binary, pycrdt's `Doc.get_update()`): merged
                           into document NAME; answers {"bytes": size of the whole document}
    POST   /docs/NAME/sync body: a Yjs state vector (`Doc.get_state()`); answers the update
                           the sender is missing (binary): Yjs's sync step 2
    GET    /docs/NAME      the whole document as one update (binary)
    GET    /docs/NAME/state the document's state vector (binary; an empty document's if
                           there is none): Yjs's sync step 1, from the server's side
    GET    /app/           the app's page; /app/NAME its assets (app.js, style.css, logo.svg,
                           notes.json): deterministic bodies that change with the `version`

`rev` counts how many times a note was written (created, replaced): a PUT applied
twice shows as one revision too many.

Idempotency keys
----------------
Mutations honour the `Idempotency-Key` header of the IETF httpapi draft "The
Idempotency-Key HTTP Header Field" (draft-ietf-httpapi-idempotency-key-header):

- The key is a Structured Field string, `Idempotency-Key: "8e03978e-..."` (a bare
  value without quotes is taken as the same key): 1 to 255 printable ASCII characters.
- The first request with a key is applied, and its answer (status and body) stored
  with the key, in one SQLite transaction: either both happen or neither does.
- A repeat with the same key and the same request (method, path, body) is answered
  the stored answer, with `x-idempotent-replay: true`, and applied nothing. That
  includes an answer that was an error (a 409 for an id that existed).
- A repeat while the first is still being processed gets 409 with `Retry-After: 1`
  (the 409 for an id that exists has none: retrying that one changes nothing); a
  key reused for a different request gets 422 (the draft's status codes). Neither
  stores anything.
- A request without a key is applied every time it arrives.
- Keys are kept while the service's database lives (the draft lets a server expire
  them and asks it to publish how long; this one never does).

An injected failure (a rule's `status`, below) answers before anything is applied
and stores nothing, so a retry with the same key is applied once the failure is
gone. `lose_answer` is the other way round: the mutation is applied and recorded,
then the connection is dropped without an answer, the case that makes a client
retry something the server already did.

Documents are pycrdt `Doc`s, kept in memory and saved (as one update) in the same
SQLite file after every change. An update that does not decode gets 400 and is
tried on a copy first, so it changes nothing.

Control plane (root-only Unix socket), paths defined here (not in
`kit.control.protocol`):

    GET    /_kit/sync/counts        applied, replayed, conflicts (409), mismatches (422),
                                    keyless, lost answers; applied per key
    GET    /_kit/sync/log?since=N   every applied mutation: [seq, method, id, key, text]
    DELETE /_kit/sync               forget notes, keys, the log and documents
    GET    /_kit/config, POST       {"version": "v2", "think_ms": 0,
                                     "rules": [{"match": "/app/*", "think_ms": 800},
                                               {"match": "/notes*", "status": 500},
                                               {"match": "/notes*", "lose_answer": 1.0}]}

A rule's `match` is a glob on the path; the first rule that matches applies.
`think_ms` delays the answer (for a mutation: after the key is taken, so a retry
arriving meanwhile gets the 409), `status` answers that status instead,
`lose_answer` (a probability) drops the answer of a mutation after applying it.
Metrics (`/_kit/metrics`) count `bytes_in` for every request, as every service does.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import json
import random
import re
import sqlite3
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pycrdt import Doc

from kit.control import protocol
from kit.services.common import Log, Metrics, Served, json_error, make_apps, parser, serve

PORT = 7300
COUNTS = "/_kit/sync/counts"
LOG = "/_kit/sync/log"
FORGET = "/_kit/sync"
KEY_HEADER = "Idempotency-Key"
REPLAY_HEADER = "x-idempotent-replay"
ID_RE = re.compile(r"[A-Za-z0-9._~:-]{1,128}")
DOC_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_TEXT = 10_000  # characters in a note
MAX_NOTES = 100_000
MAX_DOCS = 100
MAX_DOC_BYTES = 8 << 20
MAX_LOG_ROWS = 20_000  # rows of the log one call returns
ASSETS = {  # name -> (content type, approximate size in bytes)
    "app.js": ("application/javascript", 24_000),
    "style.css": ("text/css", 6_000),
    "logo.svg": ("image/svg+xml", 3_000),
    "notes.json": ("application/json", 1_500),
}
SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (seq INTEGER PRIMARY KEY, id TEXT UNIQUE, text TEXT, rev INT);
CREATE TABLE IF NOT EXISTS keys (key TEXT PRIMARY KEY, fingerprint TEXT, status INT, body TEXT);
CREATE TABLE IF NOT EXISTS applied (seq INTEGER PRIMARY KEY, method TEXT, id TEXT, key TEXT,
                                    text TEXT);
CREATE TABLE IF NOT EXISTS docs (name TEXT PRIMARY KEY, doc BLOB);
"""


def parse_key(header: str | None) -> str | None:
    """The key of an `Idempotency-Key` header (None without one); ValueError if malformed."""
    if header is None:
        return None
    value = header.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':  # an sf-string: \" and \\ escapes
        value = re.sub(r'\\(["\\])', r"\1", value[1:-1])
    if not 0 < len(value) <= 255 or not all(" " <= c <= "~" for c in value):
        raise ValueError(f"{KEY_HEADER} must be 1 to 255 printable ASCII characters")
    return value


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests 'the same request' for a key: method, path and body."""
    return hashlib.sha256(f"{method} {path}\n".encode() + body).hexdigest()


def asset(name: str, version: str) -> bytes:
    """A deterministic asset body for `version` (a different version, different bytes)."""
    kind, size = ASSETS[name]
    words = random.Random(f"{name}:{version}")
    line = f"/* {name} {version} */\n"
    filler = " ".join(words.choice(("note", "sync", "offline", "cache")) for _ in range(size // 6))
    return (line + filler)[:size].encode()


def page(version: str) -> bytes:
    links = "\n".join(f'<link rel="preload" href="/app/{name}">' for name in ASSETS)
    return f"<!doctype html><title>Notes {version}</title>\n{links}\n<main></main>\n".encode()


class Answer(Exception):
    """A request that ends with this answer before anything is applied."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class Mutation:
    """One parsed mutation of a note: what to do, to which note, with which text."""

    method: str
    id: str | None
    text: str | None


class Sync:
    """The state and the routes (see the module docstring)."""

    def __init__(self, path: str, log: Log, metrics: Metrics) -> None:
        self.log, self.metrics = log, metrics
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;" + SCHEMA)
        self.pending: set[str] = set()  # keys whose first request is being processed
        self.config: dict[str, Any] = {"version": "v1", "think_ms": 0, "rules": []}
        self.docs: dict[str, Doc] = {}
        for name, blob in self.db.execute("SELECT name, doc FROM docs"):
            self.docs[name] = doc = Doc()
            doc.apply_update(blob)

    # -- config and rules -------------------------------------------------------------

    def rule_for(self, path: str) -> dict[str, Any]:
        rules = self.config["rules"]
        return next((r for r in rules if fnmatch.fnmatchcase(path, r["match"])), {})

    async def delay(self, rule: dict[str, Any]) -> None:
        think = rule.get("think_ms", self.config["think_ms"])
        if think:
            await asyncio.sleep(think / 1000)

    async def config_route(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            changes = await request.json()
            if not isinstance(changes, dict) or set(changes) - set(self.config):
                raise ValueError(f"config is a JSON object with keys among {sorted(self.config)}")
            for rule in changes.get("rules", []):
                if not isinstance(rule, dict) or not isinstance(rule.get("match"), str):
                    raise ValueError(f'each rule needs a "match" glob, got {rule!r}')
            self.config.update(changes)
        return web.json_response(self.config)

    # -- notes --------------------------------------------------------------------------

    def note(self, note_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT id, text, rev FROM notes WHERE id = ?", (note_id,)).fetchone()
        return {"id": row[0], "text": row[1], "rev": row[2]} if row else None

    async def list_notes(self, request: web.Request) -> web.Response:
        rule = self.rule_for(request.path)
        await self.delay(rule)
        if rule.get("status"):
            return json_error(rule["status"], "injected failure (a rule of /_kit/config)")
        rows = self.db.execute("SELECT id, text, rev FROM notes ORDER BY seq")
        return web.json_response({"notes": [{"id": i, "text": t, "rev": r} for i, t, r in rows]})

    async def get_note(self, request: web.Request) -> web.Response:
        rule = self.rule_for(request.path)
        await self.delay(rule)
        if rule.get("status"):
            return json_error(rule["status"], "injected failure (a rule of /_kit/config)")
        found = self.note(request.match_info["id"])
        return web.json_response(found) if found else json_error(404, "no such note")

    def parse(self, request: web.Request, body: bytes) -> Mutation:
        """The mutation a request asks for; Answer(400) if it is not one."""
        method, path_id = request.method, request.match_info.get("id")
        if path_id is not None and not ID_RE.fullmatch(path_id):
            raise Answer(400, "a note id is 1 to 128 of A-Z a-z 0-9 . _ ~ : -")
        if method == "DELETE":
            return Mutation(method, path_id, None)
        try:
            data = json.loads(body)
        except ValueError:
            raise Answer(400, 'send JSON: {"id": "...", "text": "..."}') from None
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise Answer(400, 'send a JSON object with "text" (a string)')
        if len(data["text"]) > MAX_TEXT:
            raise Answer(413, f"a note's text is at most {MAX_TEXT} characters")
        body_id = data.get("id")
        if body_id is not None and (not isinstance(body_id, str) or not ID_RE.fullmatch(body_id)):
            raise Answer(400, '"id" is 1 to 128 of A-Z a-z 0-9 . _ ~ : -')
        if path_id is not None and body_id not in (None, path_id):
            raise Answer(400, f"the body's id {body_id!r} is not the path's {path_id!r}")
        return Mutation(method, path_id or body_id, data["text"])

    def apply(self, change: Mutation) -> tuple[int, dict[str, Any]]:
        """Apply a mutation inside the open transaction: (status, answer); log it if it
        changed anything."""
        found = self.note(change.id) if change.id else None
        if change.method == "DELETE":
            if not found:
                return 404, {"error": "no such note"}
            self.db.execute("DELETE FROM notes WHERE id = ?", (change.id,))
            status, answer = 200, {"deleted": change.id}
        elif change.method == "POST" and found:
            return 409, {"error": "a note with this id exists", "note": found}
        else:
            if not found and self.count_notes() >= MAX_NOTES:
                return 507, {"error": f"at most {MAX_NOTES} notes"}
            note_id = change.id or uuid.uuid4().hex
            rev = found["rev"] + 1 if found else 1
            self.db.execute(
                "INSERT INTO notes (id, text, rev) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET text = excluded.text, rev = excluded.rev",
                (note_id, change.text, rev),
            )
            status, answer = (
                (200 if found else 201),
                {"id": note_id, "text": change.text, "rev": rev},
            )
        return status, answer

    def count_notes(self) -> int:
        return self.db.execute("SELECT count(*) FROM notes").fetchone()[0]

    async def mutate(self, request: web.Request) -> web.StreamResponse:
        """POST, PUT and DELETE of notes, with or without an idempotency key."""
        body = await request.read()
        key = parse_key(request.headers.get(KEY_HEADER))
        change = self.parse(request, body)
        mark = fingerprint(request.method, request.path, body)
        if key is not None:
            stored = self.db.execute(
                "SELECT fingerprint, status, body FROM keys WHERE key = ?", (key,)
            ).fetchone()
            if stored and stored[0] != mark:
                self.metrics.count("mismatches")
                return json_error(422, f"{KEY_HEADER} already used for a different request")
            if stored:
                self.metrics.count("replayed")
                return web.json_response(
                    json.loads(stored[2]), status=stored[1], headers={REPLAY_HEADER: "true"}
                )
            if key in self.pending:
                self.metrics.count("conflicts")
                busy = json_error(409, f"a request with this {KEY_HEADER} is being processed")
                busy.headers["Retry-After"] = "1"  # try again; a 409 for an existing id has none
                return busy
            self.pending.add(key)
        try:
            rule = self.rule_for(request.path)
            await self.delay(rule)
            if rule.get("status"):
                return json_error(rule["status"], "injected failure (a rule of /_kit/config)")
            status, answer = self.commit(change, key, mark)
        finally:
            self.pending.discard(key)
        if random.random() < rule.get("lose_answer", 0):
            self.metrics.count("answers_lost")
            request.transport.abort()  # applied and recorded; the client never hears
        return web.json_response(answer, status=status)

    def commit(self, change: Mutation, key: str | None, mark: str) -> tuple[int, dict[str, Any]]:
        """Apply, log and record the key's answer: one transaction."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            status, answer = self.apply(change)
            if status < 300:
                note_id = answer.get("id") or answer.get("deleted")
                self.db.execute(
                    "INSERT INTO applied (method, id, key, text) VALUES (?, ?, ?, ?)",
                    (change.method, note_id, key, change.text),
                )
            if key is not None:
                self.db.execute(
                    "INSERT INTO keys VALUES (?, ?, ?, ?)", (key, mark, status, json.dumps(answer))
                )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        if status < 300:
            self.metrics.count("applied")
            if key is None:
                self.metrics.count("keyless")
        return status, answer

    # -- documents (pycrdt) -------------------------------------------------------------

    def doc_name(self, request: web.Request) -> str:
        name = request.match_info["name"]
        if not DOC_RE.fullmatch(name):
            raise Answer(400, "a document name is 1 to 64 of A-Z a-z 0-9 . _ -")
        return name

    async def doc_update(self, request: web.Request) -> web.Response:
        """Merge a device's update into the document (created on first use)."""
        name, update = self.doc_name(request), await request.read()
        if name not in self.docs and len(self.docs) >= MAX_DOCS:
            return json_error(507, f"at most {MAX_DOCS} documents")
        doc = self.docs.get(name) or Doc()
        trial = Doc()  # a copy first: an update that fails to decode changes nothing
        try:
            trial.apply_update(doc.get_update())
            trial.apply_update(update)
        except Exception as error:  # pycrdt raises ValueError for a bad update
            return json_error(400, f"not a Yjs update: {error}")
        whole = trial.get_update()
        if len(whole) > MAX_DOC_BYTES:
            return json_error(507, f"a document is at most {MAX_DOC_BYTES} bytes")
        doc.apply_update(update)
        self.docs[name] = doc
        self.db.execute("INSERT OR REPLACE INTO docs VALUES (?, ?)", (name, whole))
        self.metrics.count("doc_updates")
        self.metrics.count("doc_bytes_in", len(update))
        return web.json_response({"bytes": len(whole)})

    async def doc_sync(self, request: web.Request) -> web.Response:
        """Sync step 2: the update a device is missing, given its state vector."""
        name, state = self.doc_name(request), await request.read()
        doc = self.docs.get(name) or Doc()
        try:
            missing = doc.get_update(state)
        except Exception as error:
            return json_error(400, f"not a Yjs state vector: {error}")
        self.metrics.count("doc_bytes_out", len(missing))
        return web.Response(body=missing, content_type="application/octet-stream")

    async def doc_state(self, request: web.Request) -> web.Response:
        """Sync step 1 from the server: its state vector, so a device sends only what is new."""
        doc = self.docs.get(self.doc_name(request)) or Doc()
        state = doc.get_state()
        self.metrics.count("doc_bytes_out", len(state))
        return web.Response(body=state, content_type="application/octet-stream")

    async def doc_get(self, request: web.Request) -> web.Response:
        doc = self.docs.get(self.doc_name(request))
        if doc is None:
            return json_error(404, "no such document")
        return web.Response(body=doc.get_update(), content_type="application/octet-stream")

    # -- the app's shell ----------------------------------------------------------------

    async def app_file(self, request: web.Request) -> web.Response:
        rule = self.rule_for(request.path)
        await self.delay(rule)
        if rule.get("status"):
            return json_error(rule["status"], "injected failure (a rule of /_kit/config)")
        name, version = request.match_info["name"], self.config["version"]
        if name in ("", "index.html"):
            return web.Response(body=page(version), content_type="text/html")
        if name not in ASSETS:
            return json_error(404, f"no asset {name!r}; there are: {', '.join(ASSETS)}")
        kind = ASSETS[name][0]
        return web.Response(body=asset(name, version), headers={"Content-Type": kind})

    # -- control ------------------------------------------------------------------------

    async def counts(self, request: web.Request) -> web.Response:
        c = self.metrics.counters
        per_key = dict(self.db.execute("SELECT key, count(*) FROM applied GROUP BY key"))
        per_key.pop(None, None)
        names = ("applied", "replayed", "conflicts", "mismatches", "keyless", "answers_lost")
        return web.json_response(
            {
                **{n: c.get(n, 0) for n in names},
                "notes": self.count_notes(),
                "bytes_in": c["bytes_in"],
                "per_key": per_key,
            }
        )

    async def applied_log(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        rows = self.db.execute(
            "SELECT seq, method, id, key, text FROM applied WHERE seq > ? ORDER BY seq LIMIT ?",
            (since, MAX_LOG_ROWS),
        )
        return web.json_response({"log": [list(row) for row in rows]})

    async def forget(self, request: web.Request) -> web.Response:
        self.db.executescript("DELETE FROM notes; DELETE FROM keys; DELETE FROM applied;")
        self.db.execute("DELETE FROM docs")
        self.docs.clear()
        self.metrics.reset()
        return web.json_response({"ok": True})


def answers_errors(handler: Any) -> Any:
    """Turn an `Answer` raised by a route into its JSON error."""

    async def route(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Answer as answer:
            return json_error(answer.status, answer.reason)

    return route


COUNTERS = ("applied", "replayed", "conflicts", "mismatches", "keyless", "answers_lost")
DOC_COUNTERS = ("doc_updates", "doc_bytes_in", "doc_bytes_out")


def main(argv: list[str] | None = None) -> None:
    cli = parser("sync", "An offline-first app's server: notes with idempotency keys, CRDTs.")
    cli.add_argument("--db", required=True, help="the SQLite file (notes, keys, documents)")
    args = cli.parse_args(argv)
    log = Log("sync")
    metrics = Metrics("sync", COUNTERS + DOC_COUNTERS)
    sync = Sync(args.db, log, metrics)
    served = Served.of(args)
    planes = make_apps("sync", served, metrics, log)
    data = planes.data.router
    data.add_get("/notes", sync.list_notes)
    data.add_get("/notes/{id}", sync.get_note)
    for method, path in (("POST", "/notes"), ("PUT", "/notes/{id}"), ("DELETE", "/notes/{id}")):
        data.add_route(method, path, answers_errors(sync.mutate))
    data.add_post("/docs/{name}", answers_errors(sync.doc_update))
    data.add_post("/docs/{name}/sync", answers_errors(sync.doc_sync))
    data.add_get("/docs/{name}", answers_errors(sync.doc_get))
    data.add_get("/docs/{name}/state", answers_errors(sync.doc_state))
    data.add_get("/app/{name:[^/]*}", sync.app_file)
    control = planes.control.router
    control.add_route("*", protocol.CONFIG, sync.config_route)
    control.add_get(COUNTS, sync.counts)
    control.add_get(LOG, sync.applied_log)
    control.add_delete(FORGET, sync.forget)
    serve(planes, served, log)


if __name__ == "__main__":
    main()
