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

Control endpoints (besides /_kit/health and /_kit/metrics):

    POST   /_kit/deploy           {"source", "config", "timeout_s", "activate"}
    POST   /_kit/deploy/activate  {"token"}  switch to a staged handler
    DELETE /_kit/deploy/staged    drop staged handlers
    GET    /_kit/deploy           the active handler
    DELETE /_kit/deploy           remove it (back to a plain caching proxy)
    GET    /_kit/cache            cache size;  DELETE /_kit/cache?prefix=/api  purge

A handler that raises gives 500 (502 if it is an `env.fetch` that got no
answer), one that runs past its time limit 504; the body says why, with the
handler's line, and the traceback goes to the log. The PoP keeps serving.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import sys
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from kit.runtime.bindings import Context, Env, FetchError
from kit.runtime.http import Geo, Request, Response
from kit.runtime.loader import Handler, LoadError, handler_error_line, load_handler
from kit.services.cache import Entry, HttpCache, State, etag_matches
from kit.services.common import Log, Metrics, json_error, make_apps, parser, serve
from kit.services.encoding import compress, compress_stream, compressible, negotiate

BUFFER_LIMIT = 256 << 10  # origin bodies up to this size (with a Content-Length) are read whole
CHUNK = 64 << 10
AFTER_RESPONSE_LIMIT_S = 30.0  # ctx.wait_until work gets this long
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}
NOT_FORWARDED = HOP_BY_HOP | {"host", "accept-encoding", "content-length", "transfer-encoding"}
CLIENT_CONDITIONALS = {"if-none-match", "if-modified-since"}
NOT_RETURNED = HOP_BY_HOP | {"transfer-encoding", "content-length"}


POP_COUNTERS = (
    "origin_fetches",
    "origin_errors",
    "origin_bytes",
    "fetches",  # env.fetch calls: to any URL, past the cache
    "fetch_errors",
    "fetch_bytes",
    "handler_errors",
)


class OriginError(FetchError):
    """The origin could not be reached or did not answer in time."""


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


@dataclass
class Deployment:
    """A loaded handler with the env it runs in."""

    handler: Handler
    env: Env
    timeout_s: float
    version: int = 0
    deployed_at: float = field(default_factory=time.time)

    def describe(self) -> dict[str, Any]:
        matcher = self.handler.matcher.patterns if self.handler.matcher else None
        return {
            "kind": self.handler.kind,
            "matcher": matcher,
            "version": self.version,
            "cold_start_ms": round(self.handler.cold_start_ms, 3),
            "timeout_s": self.timeout_s,
            "deployed_at": self.deployed_at,
        }


class OriginBinding:
    """`env.origin`: fetch from the origin through this PoP's cache."""

    def __init__(self, pop: Pop) -> None:
        self._pop, self.url = pop, str(pop.origin)

    async def fetch(
        self,
        target: Request | str,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: bytes | str = b"",
        cache: bool = True,
        cache_key: str | None = None,
    ) -> Response:
        """Fetch a Request, or a path such as "/api/items/1", from the origin.

        cache=False goes straight to the origin; cache_key replaces the URL as the
        key the response is stored under (e.g. to ignore tracking parameters).
        """
        if isinstance(target, str):
            target = Request(target, method, headers, body)
        return await self._pop.fetch(target, cache=cache, cache_key=cache_key)


class FetchBinding:
    """`env.fetch`: send a request to any URL, like the global `fetch()` of Workers."""

    def __init__(self, pop: Pop) -> None:
        self._pop = pop

    async def __call__(
        self,
        target: Request | str | URL,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: bytes | str = b"",
        timeout_s: float | None = None,
    ) -> Response:
        """Fetch an absolute URL, or a Request whose URL is one, past the PoP's cache.

        `await env.fetch("http://10.0.0.2/api/x")`, or to send the client's request
        elsewhere: `await env.fetch(request.replace(url=other_server + request.url.path_qs))`.
        Raises FetchError if no answer comes (refused, unreachable, past `timeout_s`).
        """
        if not isinstance(target, Request):
            target = Request(target, method, headers, body)
        if target.url.scheme not in ("http", "https") or not target.url.host:
            raise ValueError(
                f"env.fetch needs an absolute http:// URL, not {str(target.url)!r}; "
                "for a path on the origin use env.origin.fetch"
            )
        return await self._pop.fetch_url(target, timeout_s)


class CacheBinding:
    """`env.cache`: the PoP's HTTP cache, like the Workers Cache API."""

    def __init__(self, pop: Pop) -> None:
        self._pop = pop

    @staticmethod
    def _key(target: Request | str) -> str:
        return target if isinstance(target, str) else target.url.raw_path_qs

    async def match(self, target: Request | str) -> Response | None:
        """The stored response if it is fresh, else None."""
        headers = target.headers if isinstance(target, Request) else {}
        entry = self._pop.cache.lookup(self._key(target), headers)
        if entry is None or entry.state(self._pop.cache.clock()) is not State.FRESH:
            return None
        return self._pop.from_cache(entry, "HIT")

    async def put(self, target: Request | str, response: Response) -> bool:
        """Store a response (its Cache-Control decides for how long); True if stored."""
        headers = target.headers if isinstance(target, Request) else {}
        now = self._pop.cache.clock()
        body = await response.read()
        key = self._key(target)
        return (
            self._pop.cache.store(key, headers, response.status, response.headers, body, now)
            is not None
        )

    async def delete(self, target: Request | str) -> None:
        self._pop.cache.invalidate(self._key(target))


class Pop:
    """The PoP's state: cache, connection pool, geo table and deployed handler."""

    def __init__(self, args: Any, log: Log, metrics: Metrics) -> None:
        self.name, self.log, self.metrics = args.pop, log, metrics
        self.origin = URL(args.origin.rstrip("/"))
        self.geo = GeoTable.load(args.geo, args.pop)
        self.cache = HttpCache(args.cache_mb << 20, args.cache_object_mb << 20)
        self.handler_timeout_s = args.handler_timeout
        self.active: Deployment | None = None
        self.staged: dict[str, Deployment] = {}
        self.versions = 0
        self.revalidating: set[str] = set()
        self.background: set[asyncio.Task[Any]] = set()
        self.session: aiohttp.ClientSession | None = None

    async def start(self, app: web.Application) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60),
            auto_decompress=False,
        )

    async def stop(self, app: web.Application) -> None:
        for task in list(self.background):
            task.cancel()
        if self.session:
            await self.session.close()

    # -- the request path ----------------------------------------------------

    async def entry(self, web_request: web.Request) -> web.StreamResponse:
        """Every client request comes in here."""
        deployment, ctx = self.active, None
        params = deployment.handler.matches(web_request.path) if deployment else None
        if params is None:  # no handler for this path: a plain caching proxy
            hit = self.fresh_hit(web_request)
            if hit is not None:
                return hit
            request = await self.incoming(web_request, web_request.rel_url)
            response = await self.fetch(request)
        else:
            request = await self.incoming(web_request, web_request.url)
            request.params = params
            ctx = Context()
            response = await self.run_handler(deployment, request, ctx)
        sent = await self.send(web_request, response)
        if ctx and ctx.after_response:
            if not sent.prepared:
                await sent.prepare(web_request)
                await sent.write_eof()
            for work in ctx.after_response:
                self.in_background(work, AFTER_RESPONSE_LIMIT_S)
        return sent

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
        if entry is None or entry.state(now) is not State.FRESH:
            return None
        self.metrics.cache["hit"] += 1
        headers = CIMultiDict(entry.headers)
        headers["Age"] = str(int(entry.age(now)))
        headers["x-edge-pop"], headers["x-cache"] = self.name, "HIT"
        return self.whole_body(web_request, entry.status, headers, entry.body, entry)

    async def incoming(self, web_request: web.Request, url: URL) -> Request:
        body = await web_request.read() if web_request.body_exists else b""
        request = Request(url, web_request.method, web_request.headers, body)
        request.client_ip = ip = web_request.remote
        request._geo_lookup = lambda: self.geo.lookup(ip)
        return request

    async def run_handler(self, deployment: Deployment, request: Request, ctx: Context) -> Response:
        """Call the handler with a time limit; turn failures into a 5xx with the reason."""
        handler, env = deployment.handler, deployment.env

        async def next_step(changed: Request | None = None) -> Response:
            return await self.fetch(changed or request)

        limit = deployment.timeout_s
        try:
            async with asyncio.timeout(limit) as scope:
                if handler.kind == "fetch":
                    response = await handler.function(request, env, ctx)
                else:
                    response = await handler.function(request, env, ctx, next_step)
        except TimeoutError:
            if not scope.expired():
                return self.handler_failed(request, *_error_reason())
            self.log("handler_timeout", "error", path=request.path, limit_s=limit)
            return self.handler_failed(
                request, 504, f"handler ran past its time limit of {limit} s"
            )
        except FetchError:  # env.fetch got no answer, and the handler did not catch it
            return self.handler_failed(request, *_error_reason(502))
        except Exception:
            return self.handler_failed(request, *_error_reason())
        if not isinstance(response, Response):
            kind = type(response).__name__
            return self.handler_failed(request, 500, f"handler returned {kind}, not a Response")
        return response

    def handler_failed(
        self, request: Request, status: int, reason: str, trace: str = ""
    ) -> Response:
        if trace:
            self.log("handler_error", "error", path=request.path, reason=reason, trace=trace)
        self.metrics.count("handler_errors")
        body = f"edge handler error at PoP {self.name}: {reason}\n"
        return Response.text(body, status, {"x-kit-error": "handler"})

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
        return await self.fetch_and_store(key, request, entry)

    def from_cache(self, entry: Entry, status: str) -> Response:
        self.metrics.cache[status.lower()] += 1
        headers = CIMultiDict(entry.headers)
        headers["Age"] = str(int(entry.age(self.cache.clock())))
        response = Response(entry.body, entry.status, headers)
        response.cache_status, response.entry = status, entry  # type: ignore[attr-defined]
        return response

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
        """Refresh a stale entry in the background, once per key at a time (RFC 5861 §3)."""
        if key in self.revalidating:
            return
        self.revalidating.add(key)

        async def revalidate() -> None:
            try:
                response = await self.fetch_and_store(key, request, entry)
                await response.read()  # a streamed body is stored once read to the end
            finally:
                self.revalidating.discard(key)

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

    async def origin_request(
        self, method: str, request: Request, validators: dict[str, str], cache: bool = True
    ) -> aiohttp.ClientResponse:
        """One request to the origin over the shared connection pool."""
        url = self.origin.join(URL(request.url.raw_path_qs, encoded=True))
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
            entry: Entry | None = getattr(response, "entry", None)  # set by from_cache
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

    # -- control endpoints ---------------------------------------------------

    async def deploy_route(self, web_request: web.Request) -> web.Response:
        payload = await web_request.json()
        if not isinstance(payload, dict) or not isinstance(payload.get("source"), str):
            return json_error(400, 'expected JSON {"source": "...python..."}')
        config = payload.get("config") or {}
        timeout_s = payload.get("timeout_s") or self.handler_timeout_s
        if not isinstance(config, dict) or not isinstance(timeout_s, int | float) or timeout_s <= 0:
            return json_error(400, "config must be an object and timeout_s a positive number")
        try:
            handler = load_handler(payload["source"])
        except LoadError as error:
            self.log("deploy_failed", "warning", reason=str(error), trace=error.trace)
            return web.json_response(
                {"ok": False, "pop": self.name, "error": error.as_dict()}, status=422
            )
        env = Env(
            origin=OriginBinding(self),
            fetch=FetchBinding(self),
            cache=CacheBinding(self),
            config=config,
            pop=self.name,
        )
        deployment = Deployment(handler, env, float(timeout_s))
        token = uuid.uuid4().hex
        self.staged[token] = deployment
        result = {"ok": True, "pop": self.name, "token": token, **deployment.describe()}
        if payload.get("activate", True):
            result.update(self.activate(token))
        return web.json_response(result)

    def activate(self, token: str) -> dict[str, Any]:
        deployment = self.staged.pop(token)
        self.versions += 1
        deployment.version, deployment.deployed_at = self.versions, time.time()
        self.active = deployment
        self.log("deployed", **deployment.describe())
        return {"ok": True, "pop": self.name, **deployment.describe()}

    async def activate_route(self, web_request: web.Request) -> web.Response:
        payload = await web_request.json()
        token = payload.get("token") if isinstance(payload, dict) else None
        if token not in self.staged:
            return json_error(404, f"no staged handler with token {token!r}")
        return web.json_response(self.activate(token))

    async def drop_staged_route(self, web_request: web.Request) -> web.Response:
        self.staged.clear()
        return web.json_response({"ok": True})

    async def active_route(self, web_request: web.Request) -> web.Response:
        if web_request.method == "DELETE":
            self.active = None
            self.log("undeployed")
            return web.json_response({"ok": True, "pop": self.name, "handler": None})
        handler = self.active.describe() if self.active else None
        source = self.active.handler.source if self.active else None
        return web.json_response(
            {"ok": True, "pop": self.name, "handler": handler, "source": source}
        )

    async def cache_route(self, web_request: web.Request) -> web.Response:
        if web_request.method == "DELETE":
            purged = self.cache.purge(web_request.query.get("prefix", ""))
            return web.json_response({"ok": True, "purged": purged})
        return web.json_response({"entries": len(self.cache), "bytes": self.cache.bytes})


def _error_reason(status: int = 500) -> tuple[int, str, str]:
    """500, 'ZeroDivisionError: division by zero (handler.py line 3)', traceback."""
    error = sys.exc_info()[1]
    assert error is not None, "call only while handling an exception"
    line = handler_error_line(error)
    where = f" (handler.py line {line})" if line else ""
    return status, f"{type(error).__name__}: {error}{where}", traceback.format_exc()


def main(argv: list[str] | None = None) -> None:
    cli = parser("pop", "A PoP: caching reverse proxy and edge handler runtime.")
    cli.add_argument("--pop", required=True, help="this PoP's name, e.g. tokyo")
    cli.add_argument("--origin", required=True, help="origin base URL, e.g. http://10.0.0.10:8000")
    cli.add_argument("--geo", help="JSON file: [{subnet, country, city, region}, ...]")
    cli.add_argument("--handler-timeout", type=float, default=10.0, help="seconds per request")
    cli.add_argument("--cache-mb", type=int, default=64, help="cache size")
    cli.add_argument("--cache-object-mb", type=int, default=8, help="largest object cached")
    args = cli.parse_args(argv)
    log, metrics = Log("pop", pop=args.pop), Metrics("pop", POP_COUNTERS, pop=args.pop)
    try:
        pop = Pop(args, log, metrics)
    except (OSError, ValueError, KeyError) as error:
        cli.error(f"--geo: {error}")
    planes = make_apps("pop", args, metrics, log, pop=args.pop, origin=args.origin)
    planes.data.on_startup.append(pop.start)
    planes.data.on_cleanup.append(pop.stop)
    planes.data.router.add_route("*", "/{tail:.*}", pop.entry)
    control = planes.control.router
    control.add_post("/_kit/deploy", pop.deploy_route)
    control.add_route("GET", "/_kit/deploy", pop.active_route)
    control.add_route("DELETE", "/_kit/deploy", pop.active_route)
    control.add_post("/_kit/deploy/activate", pop.activate_route)
    control.add_delete("/_kit/deploy/staged", pop.drop_staged_route)
    control.add_route("*", "/_kit/cache", pop.cache_route)
    serve(planes, args, log)


if __name__ == "__main__":
    main()
