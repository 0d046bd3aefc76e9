"""A point of presence: a caching reverse proxy that runs learners' edge handlers.

    python -m kit.services.pop --pop tokyo --origin http://10.0.0.10:8000 \\
        --geo geo.json --port 8080 [--handler-timeout 10] [--cache-mb 64]

Every request goes one of two ways:

    client -> [handler, if one is deployed and its matcher fits] -> cache -> origin
    client -> cache -> origin                                    (no handler)

Without a handler in the way, a fresh cached copy is sent straight from its
cache entry (`Pop.fresh_hit`): that is most of a PoP's traffic, so it is kept short.

The cache (`cache.py`, RFC 9111 + RFC 5861) answers HIT, STALE (served stale
while revalidating, or because the origin failed), REVALIDATED (the origin
said 304), MISS, or BYPASS (not a GET/HEAD, or a handler asked for no cache);
that word goes out in `x-cache`, and the PoP's name in `x-edge-pop`. Bodies are
asked from the origin uncompressed over one shared connection pool and
compressed here per client (`encoding.py`); large or unknown-length bodies are
streamed through (and kept if they fit in the cache). A handler can also reach
any other server with `env.fetch(url)`: past the cache, over the same pool.

The geo file maps client subnets to places (most specific subnet wins):

    [{"subnet": "10.1.10.0/24", "country": "JP", "city": "Tokyo", "region": "tokyo"}]

The PoP has three parts, one module each:

- the data plane, here: serving users from the cache and the origin;
- its handlers (`pop_handlers.py`): which one serves, running each request in
  the handler's worker process (`workers.py`), and answering the handler's
  `env` bindings with this cache and connection pool. A handler that loops,
  blocks, calls `sys.exit()` or eats memory gets its request a 5xx that says
  why, while the PoP goes on serving everything else;
- its control plane (`pop_control.py`): deploys, rollbacks, evictions and
  purges, on the root-only Unix socket only.

Loops: every request the PoP sends on carries its id in `CDN-Loop` (RFC 8586);
a request that arrives already carrying it (a handler that fetches its own
PoP) is answered 508 at once instead of asking itself forever.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import traceback
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from kit.runtime.bindings import FetchError
from kit.runtime.http import Geo, Request, Response
from kit.services import esi
from kit.services.cache import (
    HOP_BY_HOP,
    NOT_TO_CLIENTS,
    Entry,
    HttpCache,
    State,
    etag_matches,
)
from kit.services.common import Log, Metrics, Served, make_apps, parser, serve
from kit.services.encoding import compress, compress_stream, compressible, negotiate
from kit.services.pop_actors import ACTOR_HEADER, ActorRouter, load_actors
from kit.services.pop_control import PopControl
from kit.services.pop_handlers import Handlers
from kit.services.rum import MAX_BODY as BEACON_MAX_BODY
from kit.services.rum import PATH as BEACON_PATH
from kit.services.rum import Collector

BUFFER_LIMIT = 256 << 10  # origin bodies up to this size (with a Content-Length) are read whole
CHUNK = 64 << 10
UPSTREAM_CONNECTIONS = 256
NOT_FORWARDED = HOP_BY_HOP | {"host", "accept-encoding", "content-length", "transfer-encoding"}
CLIENT_CONDITIONALS = {"if-none-match", "if-modified-since"}
NOT_RETURNED = HOP_BY_HOP | {"transfer-encoding", "content-length"} | NOT_TO_CLIENTS
COLLAPSE_WAIT_S = 30.0  # a waiter goes to the origin itself if the first fetch takes longer


POP_COUNTERS = (
    "origin_fetches",
    "origin_errors",
    "origin_bytes",
    "fetches",  # env.fetch calls: to any URL, past the cache
    "fetch_errors",
    "fetch_bytes",
    "handler_errors",
    "handler_restarts",  # workers replaced after a handler got stuck or exited
    "collapsed",  # misses that waited for another request's origin fetch (request collapsing)
    "loops",  # requests answered 508: they had passed this PoP before (CDN-Loop)
)


class OriginError(FetchError):
    """The origin could not be reached or did not answer in time."""


class Cached(Response):
    """A response answered from a cache entry. `send` uses the entry: a client
    that has it gets a 304, and a compressed copy is made once and kept with it."""

    def __init__(self, entry: Entry, status: str, headers: CIMultiDict[str]) -> None:
        super().__init__(entry.body, entry.status, headers)
        self.entry, self.cache_status = entry, status


class GeoTable:
    """Client subnet -> Geo, most specific subnet first; lookups are memoised."""

    def __init__(self, rows: list[dict[str, Any]], pop: str) -> None:
        self.pop = pop
        self.networks = sorted(
            (
                (
                    ipaddress.ip_network(row["subnet"], strict=False),
                    Geo(row.get("country"), row.get("city"), row.get("region"), pop),
                )
                for row in rows
            ),
            key=lambda item: -item[0].prefixlen,
        )
        self.seen: dict[str, Geo] = {}

    @classmethod
    def load(cls, path: str | None, pop: str) -> GeoTable:
        if not path:
            return cls([], pop)
        with open(path) as file:
            rows = json.load(file)
        if not isinstance(rows, list) or not all(
            isinstance(r, dict) and "subnet" in r for r in rows
        ):
            raise ValueError(f"{path}: expected a list of objects with a 'subnet' key")
        return cls(rows, pop)

    def lookup(self, ip: str | None) -> Geo:
        geo = self.seen.get(ip or "")
        if geo is None:
            try:
                address = ipaddress.ip_address(ip or "")
            except ValueError:
                address = None
            found = (g for net, g in self.networks if address and address in net)
            geo = next(found, Geo(pop=self.pop))
            if len(self.seen) < 65536:
                self.seen[ip or ""] = geo
        return geo


@dataclass(frozen=True)
class PopOptions:
    """What a PoP is told on its command line (`main` says what each means)."""

    name: str
    origin: str
    geo: str | None = None
    handler_timeout_s: float = 10.0
    handler_memory_mb: int = 128
    staged_ttl_s: float = 60.0
    cache_mb: int = 64
    cache_object_mb: int = 8
    db_replica: str | None = None  # env.db: the database replica nearest this PoP
    db_primary: str | None = None  # and its primary
    kv: str | None = None  # env.kv: the KV store's central URL
    collapse: bool = True  # request collapsing (off only to measure what it saves)
    actors: str | None = None  # env.actors: a JSON file (pop_actors.load_actors says what)


class Pop:
    """The PoP's state: cache, connection pool, geo table and deployed handler."""

    def __init__(self, options: PopOptions, log: Log, metrics: Metrics) -> None:
        self.name, self.log, self.metrics = options.name, log, metrics
        self.cdn_id = f"edgelab-{self.name}"  # this PoP's name in CDN-Loop (RFC 8586)
        self.origin = URL(options.origin.rstrip("/"))
        self.geo = GeoTable.load(options.geo, options.name)
        self.cache = HttpCache(options.cache_mb << 20, options.cache_object_mb << 20)
        self.handlers = Handlers(
            self, options.handler_timeout_s, options.handler_memory_mb, options.staged_ttl_s
        )
        self.revalidating: set[str] = set()
        self.inflight: dict[str, asyncio.Future[None]] = {}  # key -> its miss being fetched
        self.services: dict[str, Any] = {}  # what env.db and env.kv reach, for each worker
        if options.db_replica:
            primary = options.db_primary or options.db_replica
            self.services["db"] = {"replica": options.db_replica, "primary": primary}
        if options.kv:
            self.services["kv"] = options.kv
        self.actors: ActorRouter | None = None
        if options.actors:
            setup = load_actors(options.actors)
            self.actors = ActorRouter(self, setup["directory"], setup["peers"], setup["secret"])
            self.services["actors"] = {"folder": f"{setup['folder']}/{self.name}"}
        self.rum = Collector()  # beacons at BEACON_PATH (rum.py)
        self.collapse = options.collapse
        self.background: set[asyncio.Task[Any]] = set()
        self.session: aiohttp.ClientSession | None = None

    async def start(self, app: web.Application) -> None:
        self.session = aiohttp.ClientSession(
            # At most UPSTREAM_CONNECTIONS sockets (they count against the file limit
            # with the clients'); idle ones close before the origin closes them (15 s).
            connector=aiohttp.TCPConnector(limit=UPSTREAM_CONNECTIONS, keepalive_timeout=10),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60),
            auto_decompress=False,
        )
        self.handlers.start()

    async def stop(self, app: web.Application) -> None:
        for task in list(self.background):
            task.cancel()
        await self.handlers.close()
        if self.session:
            await self.session.close()

    # -- the request path ----------------------------------------------------

    async def entry(self, web_request: web.Request) -> web.StreamResponse:
        """Every client request comes in here."""
        if self.is_loop(web_request):
            return self.loop_detected(web_request)
        if web_request.path == BEACON_PATH:
            return await self.beacon(web_request)
        if ACTOR_HEADER in web_request.headers:  # another PoP, for an actor living here
            if self.actors is None:
                return web.Response(status=404, text=f"PoP {self.name} runs no actors\n")
            return await self.actors.incoming(web_request)
        handler = self.handlers.matching(web_request.path)
        if handler is None:  # no handler for this path: a plain caching proxy
            hit = self.fresh_hit(web_request)
            if hit is not None:
                return hit
            request = await self.incoming(web_request, web_request.rel_url)
            response = await self.fetch(request)
            if esi.wants_esi(response):  # the origin asked: assemble (esi.py)
                response = await esi.process(self, request, response)
        else:
            deployment, params = handler
            request = await self.incoming(web_request, web_request.url)
            request.params = params
            response = await self.handlers.run(deployment, request)
        return await self.send(web_request, response)

    async def beacon(self, web_request: web.Request) -> web.Response:
        """A RUM beacon (rum.py): read at most its limit, counted by the sender's region."""
        headers = {"x-edge-pop": self.name}
        if web_request.method != "POST":
            return web.Response(status=405, text="beacons are POSTed\n", headers=headers)
        body = await web_request.content.read(BEACON_MAX_BODY + 1)
        region = self.geo.lookup(web_request.remote).region
        status, text = self.rum.receive(body, region)
        if status == 429:
            headers["Retry-After"] = "1"
        if status == 204:
            return web.Response(status=204, headers=headers)
        if status == 413 and web_request.transport:
            headers["Connection"] = "close"  # the rest of the body is not read
        return web.Response(status=status, text=text + "\n", headers=headers)

    def is_loop(self, web_request: web.Request) -> bool:
        """True if this request already passed this PoP (its id is in CDN-Loop)."""
        for value in web_request.headers.getall("CDN-Loop", ()):
            if any(part.split(";")[0].strip() == self.cdn_id for part in value.split(",")):
                return True
        return False

    def loop_detected(self, web_request: web.Request) -> web.Response:
        self.metrics.count("loops")
        chain = ", ".join(web_request.headers.getall("CDN-Loop"))
        self.log("loop_detected", "warning", path=web_request.path, cdn_loop=chain)
        body = (
            f"loop detected at PoP {self.name}: this request already passed it "
            f"(CDN-Loop: {chain}). A handler that fetches its own PoP asks itself forever.\n"
        )
        return web.Response(status=508, text=body, headers={"x-edge-pop": self.name})

    def fresh_hit(self, web_request: web.Request) -> web.Response | None:
        """The hit path: a fresh stored copy, sent straight from its cache entry.

        Most of what a PoP serves is this, so it skips what only misses and
        handlers need: no runtime Request/Response objects (no handler will see
        them), no header filtering (done once, when the entry was stored), no
        awaiting. Anything else (not GET/HEAD, nothing stored, stale) gives None
        and takes the full way through `fetch`, which applies every rule.
        """
        if web_request.method not in ("GET", "HEAD"):
            return None
        entry = self.cache.lookup(web_request.rel_url.raw_path_qs, web_request.headers)
        now = self.cache.clock()
        if entry is None or entry.state(now) is not State.FRESH or esi.entry_wants_esi(entry):
            return None  # (a page for ESI takes the full way, where it is assembled)
        self.metrics.cache["hit"] += 1
        headers = CIMultiDict(entry.headers)
        headers["Age"] = str(int(entry.age(now)))
        headers["x-edge-pop"], headers["x-cache"] = self.name, "HIT"
        return self.whole_body(web_request, entry.status, headers, entry.body, entry)

    async def incoming(self, web_request: web.Request, url: URL) -> Request:
        body = await web_request.read() if web_request.body_exists else b""
        ip = web_request.remote
        # aiohttp keeps a header's bytes that are not UTF-8 as lone surrogates, which
        # no code can encode again (a handler's `token.encode()` would raise): a handler
        # sees U+FFFD in their place, as a browser shows them.
        headers = CIMultiDict(
            (name, value.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
            for name, value in web_request.headers.items()
        )
        return Request(url, web_request.method, headers, body, self.geo.lookup(ip), ip)

    def in_background(self, work: Coroutine[Any, Any, Any], limit_s: float) -> None:
        async def run() -> None:
            try:
                async with asyncio.timeout(limit_s):
                    await work
            except Exception:
                self.log("background_error", "error", trace=traceback.format_exc())

        task = asyncio.create_task(run())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # -- cache and origin ----------------------------------------------------

    async def fetch(
        self, request: Request, *, cache: bool = True, cache_key: str | None = None
    ) -> Response:
        """Answer a request from the cache or the origin (RFC 9111 + RFC 5861)."""
        key = cache_key or request.url.raw_path_qs
        if not cache or request.method not in ("GET", "HEAD"):
            response = await self.forward(request)
            if request.method not in ("GET", "HEAD", "OPTIONS") and response.status < 400:
                self.cache.invalidate(key)  # RFC 9111 §4.4
            self.metrics.cache["bypass"] += 1
            response.cache_status = "BYPASS"
            return response
        entry = self.cache.lookup(key, request.headers)
        if entry is not None:
            state = entry.state(self.cache.clock())
            if state is State.FRESH:
                return self.from_cache(entry, "HIT")
            if state is State.STALE_WHILE_REVALIDATE:
                self.revalidate_soon(key, request, entry)
                return self.from_cache(entry, "STALE")
        return await self.collapsed(key, request, entry)

    async def collapsed(self, key: str, request: Request, entry: Entry | None) -> Response:
        """Request collapsing: while one miss for a key is at the origin, others wait for it.

        The first request for a key goes to the origin; the ones that arrive before
        its answer wait, then look in the cache again and are served what it
        stored (x-cache HIT, counted as `collapsed`). What could not be stored (a
        private answer, a body still streaming) sends each waiter on its own way
        to the origin, as Fastly's "hit-for-pass" does.
        """
        waiting = self.inflight.get(key) if self.collapse else None
        if waiting is not None:
            try:
                async with asyncio.timeout(COLLAPSE_WAIT_S):
                    await asyncio.shield(waiting)
            except TimeoutError:
                pass
            again = self.cache.lookup(key, request.headers)
            if again is not None and again.state(self.cache.clock()) is State.FRESH:
                self.metrics.count("collapsed")
                return self.from_cache(again, "HIT")
            return await self.fetch_and_store(key, request, again or entry)
        if not self.collapse:
            return await self.fetch_and_store(key, request, entry)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.inflight[key] = done
        try:
            return await self.fetch_and_store(key, request, entry)
        finally:
            if self.inflight.get(key) is done:
                del self.inflight[key]
            done.set_result(None)

    def from_cache(self, entry: Entry, status: str) -> Cached:
        self.metrics.cache[status.lower()] += 1
        headers = CIMultiDict(entry.headers)
        headers["Age"] = str(int(entry.age(self.cache.clock())))
        return Cached(entry, status, headers)

    async def fetch_and_store(self, key: str, request: Request, entry: Entry | None) -> Response:
        """Go to the origin (conditionally if we hold a copy); store what may be stored."""
        request_time = self.cache.clock()
        validators = entry.validators() if entry else {}
        try:
            upstream = await self.origin_request("GET", request, validators)
        except OriginError as error:
            if entry is not None and entry.usable_if_error(self.cache.clock()):
                return self.from_cache(entry, "STALE")  # RFC 5861 §4
            return Response.text(f"PoP {self.name}: origin unreachable: {error}\n", 502)
        now = self.cache.clock()
        if upstream.status >= 500 and entry is not None and entry.usable_if_error(now):
            upstream.release()
            return self.from_cache(entry, "STALE")
        if upstream.status == 304 and entry is not None:
            upstream.release()
            entry.refresh(upstream.headers, request_time, now)  # RFC 9111 §4.3.4
            return self.from_cache(entry, "REVALIDATED")
        self.metrics.cache["miss"] += 1
        headers = CIMultiDict(
            (k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP
        )
        length = upstream.content_length
        if length is not None and length <= BUFFER_LIMIT:
            body = await upstream.read()
            upstream.release()
            self.metrics.count("origin_bytes", len(body))
            self.cache.store(
                key, request.headers, upstream.status, upstream.headers, body, request_time
            )
            response = Response(body, upstream.status, headers)
        else:
            chunks = self.stream_and_store(key, request, upstream, request_time)
            response = Response(chunks, upstream.status, headers)
        response.cache_status = "MISS"
        return response

    async def stream_and_store(
        self, key: str, request: Request, upstream: aiohttp.ClientResponse, request_time: float
    ) -> AsyncIterator[bytes]:
        """Pass the origin's body through as it arrives; store it if complete and small enough."""
        parts, size, complete = [], 0, False
        try:
            async for chunk in upstream.content.iter_chunked(CHUNK):
                size += len(chunk)
                if size <= self.cache.max_object_bytes:
                    parts.append(chunk)
                yield chunk
            complete = True
        finally:
            upstream.release()
            self.metrics.count("origin_bytes", size)
            if complete and size <= self.cache.max_object_bytes:
                body = b"".join(parts)
                self.cache.store(
                    key, request.headers, upstream.status, upstream.headers, body, request_time
                )

    def revalidate_soon(self, key: str, request: Request, entry: Entry) -> None:
        """Refresh a stale entry in the background, once per key at a time (RFC 5861 §3).

        The refresh counts as the key's fetch in flight for request collapsing: a
        request that finds the copy too old to serve stale while it runs waits for it
        instead of asking the origin a second time.
        """
        if key in self.revalidating:
            return
        self.revalidating.add(key)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.collapse and key not in self.inflight:
            self.inflight[key] = done

        async def revalidate() -> None:
            try:
                response = await self.fetch_and_store(key, request, entry)
                await response.read()  # a streamed body is stored once read to the end
            finally:
                self.revalidating.discard(key)
                if self.inflight.get(key) is done:
                    del self.inflight[key]
                done.set_result(None)

        self.in_background(revalidate(), 60.0)

    async def forward(self, request: Request) -> Response:
        """Send a request to the origin as is (no cache), streaming the answer back."""
        try:
            upstream = await self.origin_request(request.method, request, {}, cache=False)
        except OriginError as error:
            return Response.text(f"PoP {self.name}: origin unreachable: {error}\n", 502)
        return self.passed_through(upstream, "origin_bytes")

    async def fetch_url(self, request: Request, timeout_s: float | None = None) -> Response:
        """`env.fetch`: send a request to its own absolute URL, past the cache."""
        self.metrics.count("fetches")
        try:
            upstream = await self.send_upstream(
                request.method, request.url, request, {}, cache=False, timeout_s=timeout_s
            )
        except FetchError:
            self.metrics.count("fetch_errors")
            raise
        return self.passed_through(upstream, "fetch_bytes")

    def passed_through(self, upstream: aiohttp.ClientResponse, counter: str) -> Response:
        """An upstream answer as a runtime Response, its body streamed as it arrives."""
        headers = CIMultiDict(
            (k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP
        )
        return Response(self.stream_only(upstream, counter), upstream.status, headers)

    async def stream_only(
        self, upstream: aiohttp.ClientResponse, counter: str
    ) -> AsyncIterator[bytes]:
        size = 0
        try:
            async for chunk in upstream.content.iter_chunked(CHUNK):
                size += len(chunk)
                yield chunk
        finally:
            upstream.release()
            self.metrics.count(counter, size)

    def origin_url(self, request: Request) -> URL:
        """The origin plus the request's path and query: never a URL the client chose.

        (Joining `//other-host/x` onto the origin would give `http://other-host/x`:
        an open proxy. Pasted after the origin, it is just an odd path there.)
        """
        path_qs = request.url.raw_path_qs
        return URL(f"{self.origin}{'' if path_qs.startswith('/') else '/'}{path_qs}", encoded=True)

    async def origin_request(
        self, method: str, request: Request, validators: dict[str, str], cache: bool = True
    ) -> aiohttp.ClientResponse:
        """One request to the origin over the shared connection pool."""
        url = self.origin_url(request)
        self.metrics.count("origin_fetches")
        try:
            return await self.send_upstream(method, url, request, validators, cache=cache)
        except FetchError as error:
            self.metrics.count("origin_errors")
            raise OriginError(str(error)) from error

    async def send_upstream(
        self,
        method: str,
        url: URL,
        request: Request,
        validators: dict[str, str],
        *,
        cache: bool,
        timeout_s: float | None = None,
    ) -> aiohttp.ClientResponse:
        """One request to `url` over the shared connection pool; FetchError if no answer.

        Hop-by-hop headers are dropped (and the client's conditionals, if the answer
        is for the cache); the body is asked for uncompressed, as compression
        happens here, per client.
        """
        dropped = NOT_FORWARDED | CLIENT_CONDITIONALS if cache else NOT_FORWARDED
        headers = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower() not in dropped
        )
        headers["Accept-Encoding"] = "identity"  # compression happens here, per client
        headers["Via"] = f"1.1 {self.name}"
        headers.add("CDN-Loop", self.cdn_id)  # so a request that comes back is a loop
        if request.client_ip:
            headers["X-Forwarded-For"] = request.client_ip
        headers.update(validators)
        body = await request.read() if method not in ("GET", "HEAD") else None
        limit = {"timeout": aiohttp.ClientTimeout(total=timeout_s)} if timeout_s else {}
        assert self.session is not None
        try:
            return await self.session.request(
                method, url, headers=headers, data=body, allow_redirects=False, **limit
            )
        except TimeoutError as error:
            within = f"{timeout_s:g} s" if timeout_s else "the PoP's time limits"
            raise FetchError(f"{method} {url}: no answer within {within}") from error
        except (aiohttp.ClientError, OSError) as error:
            reason = str(error) or type(error).__name__
            raise FetchError(f"{method} {url}: {reason}") from error

    # -- the way out ---------------------------------------------------------

    async def send(self, web_request: web.Request, response: Response) -> web.StreamResponse:
        """Write a runtime Response to the client: headers, compression, body."""
        headers = CIMultiDict(
            (k, v) for k, v in response.headers.items() if k.lower() not in NOT_RETURNED
        )
        headers["x-edge-pop"] = self.name
        if response.cache_status:
            headers["x-cache"] = response.cache_status
        if not response.is_stream:
            entry = response.entry if isinstance(response, Cached) else None
            body = await response.read()
            return self.whole_body(web_request, response.status, headers, body, entry)
        encoding = self.choose_encoding(web_request, response.status, None, headers)
        length = response.headers.get("Content-Length")
        out = web.StreamResponse(status=response.status, headers=headers)
        if length and not encoding:
            out.content_length = int(length)
        chunks = response.chunks()
        if encoding:
            chunks = compress_stream(chunks, encoding)
        await out.prepare(web_request)
        try:
            if web_request.method != "HEAD":
                async for chunk in chunks:
                    await out.write(chunk)
            await out.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:
            self.log("stream_error", "error", path=web_request.path, trace=traceback.format_exc())
            if web_request.transport:
                web_request.transport.close()  # the client sees a cut body, not a false end
        finally:
            await chunks.aclose()
        return out

    def whole_body(
        self,
        web_request: web.Request,
        status: int,
        headers: CIMultiDict[str],
        body: bytes,
        entry: Entry | None,
    ) -> web.Response:
        """A response whose body is all here: 304 if the client has it, else compressed."""
        if_none_match = web_request.headers.get("If-None-Match")
        if entry and entry.etag and if_none_match and etag_matches(if_none_match, entry.etag):
            return web.Response(status=304, headers=headers)  # RFC 9110 §13.1.2
        encoding = self.choose_encoding(web_request, status, len(body), headers)
        if encoding:
            body = self.compressed(entry, body, encoding)
        return web.Response(status=status, headers=headers, body=body)

    def choose_encoding(
        self, web_request: web.Request, status: int, size: int | None, headers: CIMultiDict[str]
    ) -> str | None:
        """Pick the client's encoding (None: send as is); size None means a stream."""
        if "Content-Encoding" in headers or status != 200:
            return None
        if not compressible(headers.get("Content-Type"), size):
            return None
        vary = headers.get("Vary", "")
        if "accept-encoding" not in vary.lower():
            headers["Vary"] = f"{vary}, Accept-Encoding" if vary else "Accept-Encoding"
        encoding = negotiate(web_request.headers.get("Accept-Encoding"))
        if encoding:
            headers["Content-Encoding"] = encoding
        return encoding

    def compressed(self, entry: Entry | None, body: bytes, encoding: str) -> bytes:
        """A compressed body; for a cached entry, made once and kept with it."""
        if entry is None:
            return compress(body, encoding)
        if encoding not in entry.encoded:
            self.cache.add_encoded(entry, encoding, compress(body, encoding))
        return entry.encoded[encoding]


def main(argv: list[str] | None = None) -> None:
    cli = parser("pop", "A PoP: caching reverse proxy and edge handler runtime.")
    cli.add_argument("--pop", required=True, help="this PoP's name, e.g. tokyo")
    cli.add_argument("--origin", required=True, help="origin base URL, e.g. http://10.0.0.10:8000")
    cli.add_argument("--geo", help="JSON file: [{subnet, country, city, region}, ...]")
    cli.add_argument("--handler-timeout", type=float, default=10.0, help="seconds per request")
    cli.add_argument(
        "--handler-memory-mb", type=int, default=128, help="memory a handler's worker may add"
    )
    cli.add_argument(
        "--staged-ttl", type=float, default=60.0, help="seconds a staged handler waits to be used"
    )
    cli.add_argument("--cache-mb", type=int, default=64, help="cache size")
    cli.add_argument("--cache-object-mb", type=int, default=8, help="largest object cached")
    cli.add_argument(
        "--no-collapse",
        action="store_true",
        help="send every miss to the origin (to measure what request collapsing saves)",
    )
    cli.add_argument("--db-replica", help="env.db: the database replica handlers read from")
    cli.add_argument("--db-primary", help="env.db's primary (default: the replica)")
    cli.add_argument("--kv", help="env.kv: the KV store's URL (kit/services/kv.py)")
    cli.add_argument("--actors", help="env.actors: JSON file of directory, peers, secret, folder")
    args = cli.parse_args(argv)
    log, metrics = Log("pop", pop=args.pop), Metrics("pop", POP_COUNTERS, pop=args.pop)
    try:
        origin = URL(args.origin)
        if origin.scheme not in ("http", "https") or not origin.host or origin.port is None:
            raise ValueError("expected a URL such as http://10.0.0.10:8000")
    except ValueError as error:
        cli.error(f"--origin {args.origin}: {error}")
    options = PopOptions(
        args.pop,
        args.origin,
        args.geo,
        args.handler_timeout,
        args.handler_memory_mb,
        args.staged_ttl,
        args.cache_mb,
        args.cache_object_mb,
        args.db_replica,
        args.db_primary,
        args.kv,
        collapse=not args.no_collapse,
        actors=args.actors,
    )
    try:
        pop = Pop(options, log, metrics)
    except (OSError, ValueError, KeyError) as error:
        cli.error(f"--geo or --actors: {error}")
    served = Served.of(args)
    planes = make_apps("pop", served, metrics, log, pop=args.pop, origin=args.origin)
    planes.data.on_startup.append(pop.start)
    planes.data.on_cleanup.append(pop.stop)
    planes.data.router.add_route("*", "/{tail:.*}", pop.entry)
    PopControl(pop).register(planes.control.router)
    serve(planes, served, log)


if __name__ == "__main__":
    main()
