"""The PWA's server: the app's files, its precache manifest, and the notes API.

    python -m kit.pwa.server --port 8080                               # with its own notes
    python -m kit.pwa.server --port 8080 --api http://127.0.0.1:7300   # the sync service's

Static files
------------
Every file under ``app/`` is served at its path (``/`` is ``index.html``), and
nothing else: the table of paths is made once at start, so no URL can reach a
file outside it. Each answer says ``Cache-Control: no-cache``: the HTTP cache is
not where this app keeps its files offline, the Service Worker's caches are.

``/precache-manifest.js`` is made here from the files: the shell's paths, each
with a revision that is a hash of its bytes. The Service Worker imports it, and
Workbox's precache fetches again exactly the files whose revision changed (what
``workbox-build``'s ``injectManifest`` would write into a build; here the server
is the build step). Because the manifest is imported by ``sw.js``, a changed file
changes a byte the browser checks, and a new worker installs.

The notes API
-------------
``GET /notes`` -> ``{"notes": [{"id", "text"}, ...]}``; ``POST /notes`` and
``PUT``/``DELETE /notes/{id}`` with JSON ``{"id": str, "text": str}`` and an
``Idempotency-Key`` header (draft-ietf-httpapi-idempotency-key-header): a key is
applied once, and a request that repeats it gets the first answer again
(``"replayed": true``), so a write that a client could not know arrived can be sent
again safely. A POST of an id that exists is a 409, as in ``kit.services.sync``.

With ``--api URL`` these paths are passed on to that service (the world's sync
service on the same host), so the page still talks to one origin (no CORS, and
the Service Worker sees every call). Without it the notes live in this process:
a small stand-in with the same contract, whose control plane tells a test what
arrived (``GET /_kit/pwa/notes``: the notes, writes applied and replays per note
id, and requests per file of the app, in either mode).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from kit.services.common import Log, Metrics, Served, json_error, make_apps, parser, serve

APP = Path(__file__).with_name("app")
# The app shell: precached at install, so the app opens with no network at all.
SHELL = ("index.html", "app.js", "api.js", "store.js", "style.css", "manifest.json")
CONTROL_NOTES = "/_kit/pwa/notes"
MAX_TEXT = 2000
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def static_table(root: Path = APP) -> dict[str, Path]:
    """URL path -> file, for every file of the app (``/`` is ``index.html``)."""
    table = {"/" + p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}
    table["/"] = root / "index.html"
    return table


def precache_manifest(root: Path = APP) -> str:
    """The script ``sw.js`` imports: the shell's URLs with a revision hash of each."""
    entries = [
        {"url": name, "revision": hashlib.sha256((root / name).read_bytes()).hexdigest()[:16]}
        for name in SHELL
    ]
    return f"self.PRECACHE = {json.dumps(entries, indent=1)};\n"


class Notes:
    """The stand-in notes store: notes by id, and each idempotency key's first answer."""

    def __init__(self) -> None:
        self.notes: dict[str, str] = {}
        self.answers: dict[str, tuple[int, dict]] = {}  # idempotency key -> (status, body)
        self.applied: Counter[str] = Counter()  # note id -> writes applied
        self.replays: Counter[str] = Counter()  # note id -> repeated keys answered

    def write(self, method: str, key: str, note_id: str, text: str | None) -> tuple[int, dict]:
        if key in self.answers:
            self.replays[note_id] += 1
            status, body = self.answers[key]
            return status, {**body, "replayed": True}
        if method == "DELETE":
            found = self.notes.pop(note_id, None) is not None
            status, body = (200, {"deleted": note_id}) if found else (404, {"error": "no note"})
        elif method == "POST" and note_id in self.notes:
            status, body = 409, {"error": f"note {note_id} exists"}
        else:
            status = 201 if note_id not in self.notes else 200
            self.notes[note_id] = text or ""
            body = {"id": note_id, "text": self.notes[note_id]}
        self.applied[note_id] += 1
        self.answers[key] = (status, body)
        return status, body


def _note_of(body: object, path_id: str | None) -> tuple[str, str]:
    """The (id, text) of a write's JSON body, checked."""
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise ValueError('send JSON {"id": str, "text": str}')
    note_id, text = body["id"], body.get("text", "")
    if not 0 < len(note_id) <= 100 or not isinstance(text, str) or len(text) > MAX_TEXT:
        raise ValueError(f"an id of 1-100 characters and a text of at most {MAX_TEXT}")
    if path_id is not None and path_id != note_id:
        raise ValueError("the id in the path and in the body differ")
    return note_id, text


def build(served: Served, api: str | None = None) -> tuple:
    log = Log("pwa")
    metrics = Metrics("pwa", counters=("static", "api_reads", "api_writes"))
    planes = make_apps("pwa", served, metrics, log, api=api or "stand-in")
    table = static_table()
    notes = Notes()
    files: Counter[str] = Counter()  # requests per file path

    async def static(request: web.Request) -> web.StreamResponse:
        path = table.get(request.path)
        if path is None:
            return json_error(404, "not found")
        metrics.count("static")
        files[request.path] += 1
        response = web.FileResponse(path, headers={"Cache-Control": "no-cache"})
        if path.suffix == ".json" and path.stem == "manifest":
            response.content_type = "application/manifest+json"
        return response

    async def manifest(request: web.Request) -> web.Response:
        metrics.count("static")
        files[request.path] += 1
        return web.Response(
            text=precache_manifest(),
            content_type="application/javascript",
            headers={"Cache-Control": "no-cache"},
        )

    async def list_notes(request: web.Request) -> web.Response:
        metrics.count("api_reads")
        rows = [{"id": i, "text": t} for i, t in notes.notes.items()]
        return web.json_response({"notes": rows}, headers={"Cache-Control": "no-store"})

    async def write_note(request: web.Request) -> web.Response:
        metrics.count("api_writes")
        key = request.headers.get("Idempotency-Key", "").strip('"')  # a Structured Field string
        if not 0 < len(key) <= 200:
            return json_error(400, "send an Idempotency-Key header (1-200 characters)")
        path_id = request.match_info.get("id")
        if request.method == "DELETE" and not request.can_read_body:
            note_id, text = path_id or "", None
        else:
            note_id, text = _note_of(await request.json(), path_id)
        status, body = notes.write(request.method, key, note_id, text)
        return web.json_response(body, status=status)

    async def proxy(request: web.Request) -> web.StreamResponse:
        metrics.count("api_reads" if request.method == "GET" else "api_writes")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        try:
            async with session().request(
                request.method, api + request.path_qs, headers=headers, data=await request.read()
            ) as upstream:
                body = await upstream.read()
                kept = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
                return web.Response(body=body, status=upstream.status, headers=kept)
        except (ClientError, TimeoutError) as error:
            return json_error(502, f"the notes API at {api} did not answer: {error}")

    sessions: list[ClientSession] = []

    def session() -> ClientSession:
        if not sessions:
            sessions.append(ClientSession(timeout=ClientTimeout(total=10)))
        return sessions[0]

    async def close_session(app: web.Application) -> None:
        for s in sessions:
            await s.close()

    async def control_notes(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "notes": [{"id": i, "text": t} for i, t in notes.notes.items()],
                "applied": dict(notes.applied),
                "replays": dict(notes.replays),
                "files": dict(files),
            }
        )

    data = planes.data
    data.router.add_get("/precache-manifest.js", manifest)
    if api:
        data.router.add_route("*", "/notes", proxy)
        data.router.add_route("*", "/notes/{id}", proxy)
        data.on_cleanup.append(close_session)
    else:
        data.router.add_get("/notes", list_notes)
        data.router.add_post("/notes", write_note)
        data.router.add_put("/notes/{id}", write_note)
        data.router.add_delete("/notes/{id}", write_note)
    data.router.add_get("/{tail:.*}", static)
    planes.control.router.add_get(CONTROL_NOTES, control_notes)
    return planes, log


def main(argv: list[str] | None = None) -> None:
    p = parser("pwa", "The offline-first notes app: its files and its notes API.")
    p.add_argument("--api", help="pass /notes on to this service (default: notes kept here)")
    args = p.parse_args(argv)
    served = Served.of(args)
    planes, log = build(served, args.api.rstrip("/") if args.api else None)
    serve(planes, served, log)


if __name__ == "__main__":
    main()
