"""A device's local proxy with Workbox's caching strategies: the service worker's stand-in.

    python -m kit.services.swproxy --upstream http://10.1.2.2:7300 --cache sw.sqlite \\
        --port 7301 --unix proxy.sock --routes '[{"match": "/reports/", "strategy": "NetworkOnly"}]'

It runs on a user's host, between the user's requests and the app's server (the
sync service), and answers each GET as a service worker using `workbox-strategies`
would. Its cache is SQLite, standing in for the Cache Storage API.

Routes
------
A route is `{"match": PREFIX, "strategy": NAME, "network_timeout_s": N}`; a match
that starts with `re:` is a regular expression searched in the path and query. As
in `workbox-routing`, routes are tried in order, the first match handles the
request, and only GETs are routed: other methods, and GETs no route matches, go
to the network untouched (a service worker that does not call `respondWith`).

The strategies, as Workbox (v7) implements them
-----------------------------------------------
- **CacheFirst**: a cached answer if there is one, without asking the network;
  otherwise the network's answer, stored if its status is 200.
- **NetworkFirst**: the network's answer, whatever its status (a 500 is an answer,
  not a failure), stored if 200. Only when the fetch fails (no route, reset) is the
  cached answer used. With `network_timeout_s`, the cached answer is served when
  the network has not answered in time; a network answer that comes later still
  updates the cache. On a timeout with nothing cached it keeps waiting for the network.
- **StaleWhileRevalidate**: the cached answer at once, and a fetch in the
  background that stores a 200 for next time; with nothing cached, the network's
  answer.
- **NetworkOnly**: the network's answer; never cached. With `network_timeout_s`,
  no answer in time is a failure.
- **CacheOnly**: the cached answer, or a failure.

What is stored is Workbox's default (no `cacheWillUpdate` plugin): NetworkFirst and
StaleWhileRevalidate store status 200 and 0 (an opaque, cross-origin answer without
CORS), CacheFirst only 200. A proxy sees every status, so no answer here is opaque.

When a strategy has no answer, Workbox throws a `no-response` WorkboxError and the
page's `fetch()` rejects (a TypeError). HTTP has no rejection, so the proxy answers
504 with `x-sw-error: no-response` and a JSON reason. Every answer says where it
came from in `x-sw-from` (`cache`, `network`, or `stale-while-revalidate` for a
cached answer served while a fetch updates it) and which strategy served it in
`x-sw-strategy` (`none` when no route matched); a cached answer carries
`x-sw-cached-at` (seconds since the epoch).

Differences from a browser: the cache key is the path and query (Workbox's is the
URL; there is one server here), `Vary` is not honoured, and a fresh answer is
stored before it is sent (Workbox stores it in the next task, so a request arriving
just then may miss it; here none can).

The network going away
----------------------
Browsers watch the operating system for network changes and give up the connections
they had (Chrome reports ERR_NETWORK_CHANGED); TCP on its own would keep retrying a
connection whose interface went down for minutes. The proxy does the same: it
listens to the kernel's route and link notifications (netlink) in its host and, on
any change, closes its pooled connections. So when a device's access link is cut,
fetches fail at once (no route: ENETUNREACH), and only "lie-fi", a link that is up
but carries nothing, leaves a fetch waiting: what `network_timeout_s` is for. A fetch
the network never answers gives up after `--max-wait-s` (a browser's own limit).

Control plane (root-only Unix socket):

    GET  /_kit/config         {"routes": [...]}; POST {"routes": [...]} replaces them
    GET  /_kit/cache          {"entries": N, "bytes": B}; DELETE empties the cache
    GET  /_kit/metrics        from_cache, from_network, from_swr, no_response, passthrough,
                              stored, not_stored, fetches_done, fetches_failed (fetches a
                              strategy started, counted when they end, also after it
                              answered), in_flight (those still running), network_changes
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from kit.control import protocol
from kit.services.common import Log, Metrics, Served, make_apps, parser, serve

PORT = 7301
STRATEGIES = ("CacheFirst", "NetworkFirst", "StaleWhileRevalidate", "NetworkOnly", "CacheOnly")
HOP_BY_HOP = {
    "connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding",
    "host", "upgrade", "te", "trailer", "proxy-authorization", "proxy-connection",
}  # fmt: skip
RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE = 0x1, 0x10, 0x40


@dataclass(frozen=True)
class Route:
    """Which requests a strategy handles (see the module docstring)."""

    match: str
    strategy: str
    network_timeout_s: float | None = None

    @classmethod
    def parse(cls, data: Any) -> Route:
        if not isinstance(data, dict) or not isinstance(data.get("match"), str):
            raise ValueError(f'a route is {{"match": "/prefix", "strategy": ...}}, not {data!r}')
        if data.get("strategy") not in STRATEGIES:
            raise ValueError(f"strategy {data.get('strategy')!r}: one of {', '.join(STRATEGIES)}")
        timeout = data.get("network_timeout_s")
        if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
            raise ValueError("network_timeout_s is a number of seconds > 0")
        if data["match"].startswith("re:"):
            re.compile(data["match"][3:])  # a bad expression fails here, not per request
        return cls(data["match"], data["strategy"], timeout)

    def matches(self, url: str) -> bool:
        if self.match.startswith("re:"):
            return re.search(self.match[3:], url) is not None
        return url.startswith(self.match)


@dataclass
class Stored:
    """An answer: from the network, or as the cache keeps it."""

    status: int
    headers: dict[str, str]
    body: bytes
    cached_at: float | None = None


class NoResponse(Exception):
    """What Workbox throws as WorkboxError('no-response')."""


class Cache:
    """Answers by URL in SQLite: the Cache Storage API's stand-in."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS answers "
            "(url TEXT PRIMARY KEY, status INT, headers TEXT, body BLOB, at REAL)"
        )

    def match(self, url: str) -> Stored | None:
        row = self.db.execute(
            "SELECT status, headers, body, at FROM answers WHERE url = ?", (url,)
        ).fetchone()
        return Stored(row[0], json.loads(row[1]), row[2], row[3]) if row else None

    def put(self, url: str, answer: Stored) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)",
            (url, answer.status, json.dumps(answer.headers), answer.body, time.time()),
        )

    def size(self) -> dict[str, int]:
        entries, size = self.db.execute(
            "SELECT count(*), sum(length(body)) FROM answers"
        ).fetchone()
        return {"entries": entries, "bytes": size or 0}

    def clear(self) -> None:
        self.db.execute("DELETE FROM answers")


class Proxy:
    """The strategies, the network and the cache (see the module docstring)."""

    def __init__(self, upstream: str, cache: Cache, metrics: Metrics, max_wait_s: float) -> None:
        self.upstream, self.cache, self.metrics = upstream.rstrip("/"), cache, metrics
        self.max_wait_s = max_wait_s
        self.routes: list[Route] = []
        self.session: aiohttp.ClientSession | None = None
        self.background: set[asyncio.Task] = set()

    # -- the strategies: what the chapter shows ------------------------------------------

    async def cache_first(self, url: str, request: web.Request, route: Route) -> Stored:
        cached = self.cache.match(url)
        if cached:
            return self.answer(cached, "cache")
        return self.answer(await self.fetch_and_put(url, request), "network")

    async def network_first(self, url: str, request: web.Request, route: Route) -> Stored:
        network = self.start(self.fetch_and_put(url, request))  # goes on after a timeout
        try:  # the network's answer, waiting at most network_timeout_s if one is set
            fetched = await asyncio.wait_for(asyncio.shield(network), route.network_timeout_s)
            return self.answer(fetched, "network")
        except TimeoutError:  # too slow: the cached answer, or wait for the network after all
            cached = self.cache.match(url)
            if cached:
                return self.answer(cached, "cache")
            try:
                return self.answer(await network, "network")
            except NoResponse:
                pass
        except NoResponse:  # the fetch failed
            pass
        cached = self.cache.match(url)
        if cached is None:
            raise NoResponse("the network failed and nothing is cached")
        return self.answer(cached, "cache")

    async def stale_while_revalidate(self, url: str, request: web.Request, route: Route) -> Stored:
        network = self.start(self.fetch_and_put(url, request))  # always: it updates the cache
        cached = self.cache.match(url)
        if cached:
            return self.answer(cached, "stale-while-revalidate")
        return self.answer(await network, "network")

    async def network_only(self, url: str, request: web.Request, route: Route) -> Stored:
        try:
            fetched = await asyncio.wait_for(self.fetch(url, request), route.network_timeout_s)
        except TimeoutError:
            raise NoResponse(f"no answer within {route.network_timeout_s} s") from None
        return self.answer(fetched, "network")

    async def cache_only(self, url: str, request: web.Request, route: Route) -> Stored:
        cached = self.cache.match(url)
        if cached is None:
            raise NoResponse("nothing cached")
        return self.answer(cached, "cache")

    # -- the pieces they are made of ----------------------------------------------------

    async def fetch(self, url: str, request: web.Request, body: bytes = b"") -> Stored:
        """The network's answer, any status; NoResponse if there is none (no route, reset)."""
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            async with self.session.request(
                request.method, self.upstream + url, headers=headers, data=body or None
            ) as response:
                data = await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise NoResponse(f"the network failed: {type(error).__name__}: {error}") from None
        kept = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
        return Stored(response.status, kept, data)

    async def fetch_and_put(self, url: str, request: web.Request) -> Stored:
        """Fetch, and store the answer if its status is 200: Workbox's default for every
        strategy here (NetworkFirst's and StaleWhileRevalidate's would add 0, opaque
        answers, which a proxy never sees)."""
        fetched = await self.fetch(url, request)
        if fetched.status == 200:
            self.cache.put(url, fetched)
            self.metrics.count("stored")
        else:
            self.metrics.count("not_stored")
        return fetched

    def start(self, work: Any) -> asyncio.Task:
        """Run a fetch as its own task: it goes on (and updates the cache) after the
        strategy has answered, as Workbox's `event.waitUntil` lets it."""
        task = asyncio.ensure_future(work)
        self.background.add(task)
        task.add_done_callback(self.finished)
        self.metrics.info["in_flight"] = len(self.background)
        return task

    def finished(self, task: asyncio.Task) -> None:
        self.background.discard(task)
        self.metrics.info["in_flight"] = len(self.background)
        if not task.cancelled():
            self.metrics.count("fetches_failed" if task.exception() else "fetches_done")

    def answer(self, stored: Stored, source: str) -> Stored:
        self.metrics.count(
            {"cache": "from_cache", "network": "from_network"}.get(source, "from_swr")
        )
        headers = {**stored.headers, "x-sw-from": source}
        if source != "network" and stored.cached_at:
            headers["x-sw-cached-at"] = f"{stored.cached_at:.3f}"
        return Stored(stored.status, headers, stored.body, stored.cached_at)

    # -- serving ------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        url = request.path_qs
        route = next((r for r in self.routes if r.matches(url)), None)
        if request.method != "GET" or route is None:  # not routed: straight to the network
            self.metrics.count("passthrough")
            try:
                fetched = await self.fetch(url, request, await request.read())
            except NoResponse as error:
                return self.no_response(url, "none", str(error))
            return respond(
                Stored(fetched.status, {**fetched.headers, "x-sw-from": "network"}, fetched.body),
                "none",
            )
        strategy = {
            "CacheFirst": self.cache_first,
            "NetworkFirst": self.network_first,
            "StaleWhileRevalidate": self.stale_while_revalidate,
            "NetworkOnly": self.network_only,
            "CacheOnly": self.cache_only,
        }[route.strategy]
        try:
            return respond(await strategy(url, request, route), route.strategy)
        except NoResponse as error:
            return self.no_response(url, route.strategy, str(error))

    def no_response(self, url: str, strategy: str, reason: str) -> web.Response:
        self.metrics.count("no_response")
        return web.json_response(
            {"error": "no-response", "url": url, "strategy": strategy, "reason": reason},
            status=504,
            headers={"x-sw-error": "no-response", "x-sw-strategy": strategy},
        )

    async def open(self) -> None:
        await self.network_changed()

    async def network_changed(self) -> None:
        """Drop every pooled connection, as a browser does when its network changes."""
        old = self.session
        timeout = aiohttp.ClientTimeout(total=self.max_wait_s)
        self.session = aiohttp.ClientSession(timeout=timeout, auto_decompress=True)
        if old is not None:
            self.metrics.count("network_changes")
            await old.close()

    # -- control ------------------------------------------------------------------------

    async def config_route(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            changes = await request.json()
            if not isinstance(changes, dict) or not isinstance(changes.get("routes"), list):
                raise ValueError('send {"routes": [{"match": ..., "strategy": ...}, ...]}')
            self.routes = [Route.parse(r) for r in changes["routes"]]
        return web.json_response({"routes": [r.__dict__ for r in self.routes]})

    async def cache_route(self, request: web.Request) -> web.Response:
        if request.method == "DELETE":
            self.cache.clear()
        return web.json_response(self.cache.size())


def respond(stored: Stored, strategy: str) -> web.Response:
    headers = {**stored.headers, "x-sw-strategy": strategy}
    return web.Response(status=stored.status, headers=headers, body=stored.body)


def watch_network(proxy: Proxy, loop: asyncio.AbstractEventLoop) -> socket.socket | None:
    """Call `proxy.network_changed()` on every link, address or route change in this host
    (netlink); None where netlink is not available."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE))
    except (OSError, AttributeError):
        return None
    sock.setblocking(False)

    def readable() -> None:
        try:
            while sock.recv(65536):  # one change comes as several messages: read them all
                pass
        except BlockingIOError:
            pass
        loop.create_task(proxy.network_changed())

    loop.add_reader(sock.fileno(), readable)
    return sock


def main(argv: list[str] | None = None) -> None:
    cli = parser("swproxy", "A device's proxy with Workbox's caching strategies.")
    cli.add_argument("--upstream", required=True, help="the app's server, http://HOST:PORT")
    cli.add_argument("--cache", required=True, help="the cache's SQLite file")
    cli.add_argument("--routes", default="[]", help="JSON list of routes (see the docstring)")
    cli.add_argument("--max-wait-s", type=float, default=60.0, help="a fetch's own limit")
    args = cli.parse_args(argv)
    log = Log("swproxy")
    counters = ("from_cache", "from_network", "from_swr", "no_response", "passthrough")
    counters += ("stored", "not_stored", "fetches_done", "fetches_failed")
    metrics = Metrics("swproxy", (*counters, "network_changes"), in_flight=0)
    proxy = Proxy(args.upstream, Cache(args.cache), metrics, args.max_wait_s)
    proxy.routes = [Route.parse(r) for r in json.loads(args.routes)]
    served = Served.of(args)
    planes = make_apps("swproxy", served, metrics, log)
    planes.data.router.add_route("*", "/{tail:.*}", proxy.handle)
    control = planes.control.router
    control.add_route("*", protocol.CONFIG, proxy.config_route)
    control.add_route("*", protocol.CACHE, proxy.cache_route)

    async def start(app: web.Application) -> None:
        await proxy.open()
        watch_network(proxy, asyncio.get_running_loop())

    async def stop(app: web.Application) -> None:
        if proxy.session:
            await proxy.session.close()

    planes.data.on_startup.append(start)
    planes.data.on_cleanup.append(stop)
    serve(planes, served, log)


if __name__ == "__main__":
    main()
