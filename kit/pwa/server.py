"""The PWA's server: the app's files, its precache manifest, and the notes API passed on.

    python -m kit.pwa.server --port 8080 --api http://10.0.0.2:7300

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
``/notes`` and ``/notes/{id}`` are passed on, method, headers and body, to the
sync service (``--api``; ``kit.services.sync``, whose docstring is the API:
``Idempotency-Key`` honoured, every applied write logged). So the page talks to
one origin: no CORS, and the Service Worker sees every call. The control plane
counts requests per file of the app (``GET /_kit/pwa/files``).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from kit.services.common import (
    Log,
    Metrics,
    Planes,
    Served,
    json_error,
    make_apps,
    parser,
    serve,
)

APP = Path(__file__).with_name("app")
# The app shell: precached at install, so the app opens with no network at all.
SHELL = ("index.html", "app.js", "api.js", "store.js", "style.css", "manifest.json")
CONTROL_FILES = "/_kit/pwa/files"
# Not passed on: they describe one hop (and aiohttp decodes a compressed body itself).
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
HOP_HEADERS |= {"content-encoding"}


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


def build(served: Served, api: str, root: Path = APP) -> tuple[Planes, Log]:
    log = Log("pwa")
    metrics = Metrics("pwa", counters=("static", "api_reads", "api_writes"))
    planes = make_apps("pwa", served, metrics, log, api=api)
    table = static_table(root)
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
            text=precache_manifest(root),
            content_type="application/javascript",
            headers={"Cache-Control": "no-cache"},
        )

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

    async def control_files(request: web.Request) -> web.Response:
        return web.json_response(dict(files))

    data = planes.data
    data.router.add_get("/precache-manifest.js", manifest)
    data.router.add_route("*", "/notes", proxy)
    data.router.add_route("*", "/notes/{id}", proxy)
    data.on_cleanup.append(close_session)
    data.router.add_get("/{tail:.*}", static)
    planes.control.router.add_get(CONTROL_FILES, control_files)
    return planes, log


def main(argv: list[str] | None = None) -> None:
    p = parser("pwa", "The offline-first notes app: its files, and its notes API passed on.")
    p.add_argument("--api", required=True, help="the sync service's URL: /notes goes there")
    p.add_argument("--app", type=Path, default=APP, help="the app's folder (default: app/)")
    args = p.parse_args(argv)
    served = Served.of(args)
    planes, log = build(served, args.api.rstrip("/"), args.app.resolve())
    serve(planes, served, log)


if __name__ == "__main__":
    main()
