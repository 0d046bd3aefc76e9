"""The origin: the slow, far-away server that the edge is there to protect.

    python -m kit.services.origin --port 8000 [--name origin-eu] [--think-ms 20] [--config FILE]

What it serves (GET/HEAD; deterministic unless said otherwise):

    /                     an HTML home page
    /page/NAME            an HTML page
    /p/NAME               a personalised HTML page: it greets the user its `uid` cookie
                          names ("Hello, guest" without one) and shows the variant the
                          edge asked for in x-cohort, x-market and x-device, and the query
    /api/items/ID         a JSON item
    /api/time             JSON with the current time (changes every call)
    /api/echo             JSON describing the request (any method: headers, body size)
    /api/ANYTHING         JSON naming the path
    /static/SIZE.EXT      SIZE bytes: 1k, 10k, 100k, 1m or a number up to 64m; EXT bin
                          is incompressible, txt/html/css/js/json compress well
    /esi/...              pages made of fragments (`esi_content`): /esi/page/NAME?f=LAYOUT
                          is the shell with ESI markup, /esi/whole/NAME?f=LAYOUT the same
                          page rendered here, /esi/frag/NAME/TTL one fragment, /esi/user
                          the personalised fragment

Every response carries `x-origin: NAME` (`--name`, default "origin"), so a
client can always see which origin answered, also through a PoP and its cache.
Every 200 carries a strong ETag (a hash of the body); a request whose
If-None-Match matches gets 304 Not Modified (RFC 9110 §13.1.2).

Default Cache-Control: static `public, max-age=86400`, pages
`public, max-age=60` (personalised pages too: the mistake that makes a shared cache
serve one user's greeting to the next), API `no-store`. A lab changes behaviour in one place,
`POST /_kit/config` on the control socket (`--unix`), or `--config FILE` at
start, with JSON such as

    {"think_ms": 20,              # added to every response
     "workers": 8,                # at most 8 requests in service at once, the rest queue
                                  # (a server with a pool of workers; default: no limit)
     "version": "v2",             # changes pages and API bodies (so their ETags)
     "rules": [                   # first matching glob wins
        {"match": "/api/*", "headers": {"Cache-Control": "max-age=30", "Vary": "Accept-Language"}},
        {"match": "/page/slow", "think_ms": 500},
        {"match": "/api/broken", "status": 503}]}

A request may carry a label its sender gave it, `x-traffic: forged` (lower-case
letters, digits and dashes; at most 16 different labels): the origin counts
each label it receives in its metrics as `traffic:LABEL`. A load test that
mixes good and bad requests sees, at the origin, how many of each got there.

A header set to null in a rule removes it (e.g. {"ETag": null}). POST merges the
given keys into the config; `GET /_kit/config` shows it. `?think=MS` on any
request overrides the think time for that request.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import html
import json
import random
import re
import time
from collections import OrderedDict
from typing import Any

from aiohttp import web

from kit.control import protocol
from kit.services.cache import etag_matches
from kit.services.common import Log, Metrics, Served, json_error, make_apps, parser, serve

MAX_ASSET_BYTES = 64 << 20
# Generated static bodies are kept for the next request, least recently used
# out first, up to this many bytes: the two largest assets, or thousands of the
# sizes labs use. Every number is a different asset, so without a bound a
# client asking for 64m, 63m, 62m... grows the origin until the VM runs out.
# Metrics show the store's size as `asset_bytes`.
ASSET_STORE_BYTES = 128 << 20
TEXT_TYPES = {
    "txt": "text/plain; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "css": "text/css",
    "js": "application/javascript",
    "json": "application/json",
}
TRAFFIC_LABEL = re.compile(r"[a-z][a-z0-9-]{0,23}")
TRAFFIC_LABELS = 16  # distinct labels counted; a label past that is not
WORDS = "edge cache origin latency request region replica stale fresh network pop user".split()


def parse_size(text: str) -> int:
    """'10k' -> 10240, '1m' -> 1048576, '512' -> 512."""
    found = re.fullmatch(r"(\d+)([km]?)", text.lower())
    if not found:
        raise web.HTTPBadRequest(text=f"bad size {text!r}: use e.g. 1k, 10k, 100k, 1m or 512")
    size = int(found[1]) * {"": 1, "k": 1024, "m": 1 << 20}[found[2]]
    if size > MAX_ASSET_BYTES:
        raise web.HTTPBadRequest(text=f"size {size} larger than {MAX_ASSET_BYTES}")
    return size


def asset_bytes(size: int, extension: str) -> bytes:
    """Deterministic content: random bytes for .bin, repetitive words for text types."""
    generator = random.Random(f"{size}.{extension}")
    if extension == "bin":
        return generator.randbytes(size)
    text = " ".join(generator.choice(WORDS) for _ in range(size // 4 + 1))
    return text.encode()[:size]


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha1(body).hexdigest()[:20] + '"'


class Origin:
    """The origin's state: its config and a cache of generated static bodies."""

    def __init__(
        self, log: Log, metrics: Metrics, think_ms: float = 0.0, config_file: str | None = None
    ) -> None:
        self.log, self.metrics = log, metrics
        self.config: dict[str, Any] = {"think_ms": think_ms, "version": "v1", "rules": []}
        if config_file:
            with open(config_file) as file:
                self.update(json.load(file))
        self.pool: tuple[int, asyncio.Semaphore] | None = None  # (size, semaphore)
        self.assets: OrderedDict[tuple[int, str], tuple[bytes, str]] = OrderedDict()
        self.metrics.info["asset_bytes"] = 0  # a gauge: survives a metrics reset

    def update(self, changes: Any) -> None:
        if not isinstance(changes, dict):
            raise ValueError("config must be a JSON object")
        for rule in changes.get("rules", []):
            if not isinstance(rule, dict) or not isinstance(rule.get("match"), str):
                raise ValueError(f'each rule needs a "match" glob, got {rule!r}')
        unknown = set(changes) - {"think_ms", "version", "rules", "workers"}
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        self.config.update(changes)

    def rule_for(self, path: str) -> dict[str, Any]:
        return next((r for r in self.config["rules"] if fnmatch.fnmatchcase(path, r["match"])), {})

    async def config_route(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            self.update(await request.json())
            self.log("config", config=self.config)
        return web.json_response(self.config)

    def content(self, request: web.Request) -> tuple[bytes, str, str]:
        """Body, content type and default Cache-Control for a path."""
        path, version = request.path, self.config["version"]
        if path.startswith("/static/"):
            name, _, extension = path.removeprefix("/static/").partition(".")
            if extension not in TEXT_TYPES and extension != "bin":
                raise web.HTTPNotFound(text=f"no asset type .{extension}: use .bin or .txt")
            data, kind = self.asset(parse_size(name), extension)
            return data, kind, "public, max-age=86400"
        if path.startswith("/api/"):
            data = self.api(request, path.removeprefix("/api/"), version)
            return json.dumps(data).encode(), "application/json", "no-store"
        if path.startswith("/p/"):
            body = self.personal_page(request, path.removeprefix("/p/"), version)
            return body.encode(), TEXT_TYPES["html"], "public, max-age=60"
        if path == "/" or path.startswith("/page/"):
            name = path.removeprefix("/page/") if path != "/" else "home"
            return self.page(name, version).encode(), TEXT_TYPES["html"], "public, max-age=60"
        if path.startswith("/esi/"):
            return self.esi_content(request, path.removeprefix("/esi/"))
        raise web.HTTPNotFound(text=f"nothing at {path}")

    # -- pages made of fragments (chapter 05) ---------------------------------

    def esi_content(self, request: web.Request, path: str) -> tuple[bytes, str, str]:
        """Pages made of fragments, for edge-side includes and streaming at the edge.

        A layout lists a page's fragments in order, comma-separated: `NAME:TTL:THINK_MS`
        is a fragment kept TTL seconds (0: `no-store`) that takes THINK_MS to render,
        and `user` is the personalised fragment (it greets the `uid` cookie's user,
        `private, no-store`). `/esi/page/NAME?f=LAYOUT` is the shell, marked for the
        edge with `Surrogate-Control: content="ESI/1.0"` and an `<esi:include>` for
        each fragment; `/esi/whole/NAME?f=LAYOUT` is the same page as the origin
        renders it in full (`private, no-store`: it greets someone; its think time is
        the request's `?think=`). Each fragment fetched is counted as `fragment:NAME`.
        """
        kind, _, rest = path.partition("/")
        if kind == "user":
            self.count_fragment("user")
            user = html.escape(request.cookies.get("uid") or "guest")
            return (
                f'<p id="greeting">Hello, {user}</p>'.encode(),
                TEXT_TYPES["html"],
                "private, no-store",
            )
        if kind == "frag":
            name, _, ttl = rest.partition("/")
            if not re.fullmatch(r"[a-z0-9-]{1,40}", name) or not ttl.isdigit():
                raise web.HTTPNotFound(text="a fragment is /esi/frag/NAME/TTL (a-z0-9-, seconds)")
            self.count_fragment(name)
            body = self.fragment(name)
            cache = f"public, max-age={ttl}" if int(ttl) else "no-store"
            return body.encode(), TEXT_TYPES["html"], cache
        if kind not in ("page", "whole") or not rest:
            raise web.HTTPNotFound(
                text="nothing here: /esi/page/NAME, /esi/whole/NAME, /esi/frag/NAME/TTL"
            )
        parts = []
        for spec in request.query.get("f", "").split(","):
            if spec == "user":
                src = "/esi/user"
                inline = lambda: self.esi_content(request, "user")[0].decode()  # noqa: E731
            else:
                name, ttl, _think = (spec.split(":") + ["", ""])[:3]
                src = f"/esi/frag/{name}/{ttl}?think={_think or 0}"
                inline = lambda n=name: self.fragment(n)  # noqa: E731
                if not re.fullmatch(r"[a-z0-9-]{1,40}", name) or not ttl.isdigit():
                    raise web.HTTPBadRequest(
                        text=f"bad fragment {spec!r}: NAME:TTL:THINK_MS or user"
                    )
            parts.append(inline() if kind == "whole" else f'<esi:include src="{src}"/>')
        title = html.escape(rest)
        shell = (
            f"<!doctype html><html><head><title>{title}</title>"
            f'<link rel="stylesheet" href="/static/10k.css"></head><body><h1>{title}</h1>'
            f"<p>{' '.join(random.Random(rest).choices(WORDS, k=200))}</p>"
        )
        body = shell + "".join(f"<section>{part}</section>" for part in parts) + "</body></html>"
        if kind == "whole":
            return body.encode(), TEXT_TYPES["html"], "private, no-store"
        return body.encode(), TEXT_TYPES["html"], "public, max-age=60"

    @staticmethod
    def fragment(name: str) -> str:
        words = " ".join(random.Random(name).choices(WORDS, k=40))
        return f'<div class="fragment" id="{name}">{name}: {words}</div>'

    def count_fragment(self, name: str) -> None:
        counted = sum(1 for n in self.metrics.counters if n.startswith("fragment:"))
        if f"fragment:{name}" in self.metrics.counters or counted < 512:
            self.metrics.count(f"fragment:{name}")

    def asset(self, size: int, extension: str) -> tuple[bytes, str]:
        """A static body and its type, from the store or made (and kept) now."""
        key = (size, extension)
        if key in self.assets:
            self.assets.move_to_end(key)
            return self.assets[key]
        data = asset_bytes(size, extension)
        self.assets[key] = data, TEXT_TYPES.get(extension, "application/octet-stream")
        stored = self.metrics.info["asset_bytes"] + len(data)
        while stored > ASSET_STORE_BYTES:
            old, _ = self.assets.popitem(last=False)[1]
            stored -= len(old)
        self.metrics.info["asset_bytes"] = stored
        return self.assets[key]

    def api(self, request: web.Request, name: str, version: str) -> dict[str, Any]:
        if name == "time":
            return {"now": time.time(), "version": version}
        if name == "echo":
            return {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "client": request.remote,
            }
        if name.startswith("items/"):
            item = name.removeprefix("items/")
            return {
                "id": item,
                "name": f"item {item}",
                "price": len(item) * 7 % 100,
                "version": version,
            }
        return {"path": request.path, "version": version}

    def page(self, name: str, version: str) -> str:
        words = random.Random(name).choices(WORDS, k=300)
        links = "".join(f'<li><a href="/static/{s}.bin">{s} asset</a></li>' for s in ("1k", "10k"))
        return (
            f"<!doctype html><html><head><title>{name}</title>"
            f'<link rel="stylesheet" href="/static/10k.css"></head>'
            f"<body><h1>{name}</h1><p>version {version}</p><p>{' '.join(words)}</p>"
            f"<ul>{links}</ul></body></html>"
        )

    def personal_page(self, request: web.Request, name: str, version: str) -> str:
        """A page that greets its user by the `uid` cookie and shows the edge's variant."""
        user = request.cookies.get("uid") or "guest"
        variant = " ".join(
            f"{part}={html.escape(request.headers.get(f'x-{part}', '-'))}"
            for part in ("cohort", "market", "device")
        )
        return (
            f"<!doctype html><html><head><title>{html.escape(name)}</title></head><body>"
            f'<h1>{html.escape(name)}</h1><p id="greeting">Hello, {html.escape(user)}</p>'
            f'<p id="variant">{variant}</p>'
            f'<p id="query">{html.escape(request.query_string)}</p><p>version {version}</p>'
            "</body></html>"
        )

    async def serve(self, request: web.Request) -> web.StreamResponse:
        label = request.headers.get("x-traffic", "")
        if TRAFFIC_LABEL.fullmatch(label):
            name = f"traffic:{label}"
            counted = [n for n in self.metrics.counters if n.startswith("traffic:")]
            if name in counted or len(counted) < TRAFFIC_LABELS:
                self.metrics.count(name)
        workers = self.config.get("workers")
        if not workers:
            return await self.respond(request)
        if self.pool is None or self.pool[0] != workers:  # a new pool size: a new pool
            self.pool = (workers, asyncio.Semaphore(int(workers)))
        async with self.pool[1]:  # think time and the answer hold one worker
            return await self.respond(request)

    async def respond(self, request: web.Request) -> web.StreamResponse:
        rule = self.rule_for(request.path)
        think_ms = request.query.get("think", rule.get("think_ms", self.config["think_ms"]))
        try:
            think_ms = float(think_ms)
        except ValueError:
            return json_error(400, f"think must be a number of milliseconds, got {think_ms!r}")
        if think_ms > 0:
            await asyncio.sleep(think_ms / 1000)
        if "status" in rule:
            return json_error(int(rule["status"]), f"origin configured to answer {rule['status']}")
        if request.method not in ("GET", "HEAD") and request.path != "/api/echo":
            return json_error(405, f"{request.method} not allowed here; POST goes to /api/echo")
        if request.method == "POST":
            await request.read()
        body, content_type, cache_control = self.content(request)
        headers = {"Content-Type": content_type, "Cache-Control": cache_control}
        headers["ETag"] = etag_of(body)
        if request.path.startswith("/esi/page/"):
            headers["Surrogate-Control"] = 'content="ESI/1.0"'
        for name, value in rule.get("headers", {}).items():
            if value is None:
                headers.pop(name, None)
            else:
                headers[name] = str(value)
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match and "ETag" in headers and etag_matches(if_none_match, headers["ETag"]):
            self.metrics.count("not_modified")
            kept = ("ETag", "Cache-Control", "Vary", "Expires")
            return web.Response(status=304, headers={k: v for k, v in headers.items() if k in kept})
        return web.Response(body=body, headers=headers)


def main(argv: list[str] | None = None) -> None:
    cli = parser("origin", "The origin server: pages, an API and static assets.")
    cli.add_argument("--name", default="origin", help="sent in x-origin on every response")
    cli.add_argument("--think-ms", type=float, default=0.0, help="server think time per request")
    cli.add_argument("--config", help="JSON file with the initial /_kit/config")
    args = cli.parse_args(argv)
    log = Log("origin", origin=args.name)
    metrics = Metrics("origin", ("not_modified",), origin=args.name)
    origin = Origin(log, metrics, args.think_ms, args.config)
    served = Served.of(args)
    planes = make_apps("origin", served, metrics, log, origin=args.name)

    async def say_who_answered(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["x-origin"] = args.name

    planes.data.on_response_prepare.append(say_who_answered)
    planes.data.router.add_route("*", "/{tail:.*}", origin.serve)
    planes.control.router.add_route("*", protocol.CONFIG, origin.config_route)
    serve(planes, served, log)


if __name__ == "__main__":
    main()
