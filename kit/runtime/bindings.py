"""`env` and `ctx`: what a handler gets besides the request.

`env` holds bindings, the handler's way to reach things outside itself. The PoP
fills it when a handler is deployed:

    env.origin   fetch from the origin:   await env.origin.fetch(request or "/path")
    env.fetch    fetch from any URL:      await env.fetch("http://10.0.0.2/api/x")
    env.cache    the PoP's HTTP cache:    await env.cache.match(request)
    env.state    values kept at this PoP: await env.state.get("visits")
    env.db       the nearest replica:     await env.db.query("SELECT ...", [10])
                 (on a PoP started with a database: `start_edge(..., database=db)`)
    env.kv       a Workers-KV-like store: await env.kv.get("k")
                 (on a PoP started with one: `start_edge(..., kv=store)`)
    env.actors   Durable-Objects-like:    await env.actors.get("Room", "lobby").fetch("/")
                 (the same PoPs; `kit/runtime/actors.py`)
    env.config   the dict given to deploy(..., config={...})
    env.pop      the name of this PoP

Later chapters bind more (MQTT): `Env` is just a bag of
named attributes, so a new binding is one `env.bind("kv", client)` away.

`env.fetch` is the global `fetch()` of Workers: it sends a request (an absolute
URL, or a Request carrying one) to any server, past the PoP's cache, over the
PoP's shared connection pool. When it gets no answer (connection refused, time
out) it raises `FetchError`, which a handler may catch; one it does not catch
becomes a 502 that says why.

`env.state` is where a handler keeps what must outlive one request, since a
handler keeps nothing between requests itself: small JSON values by key, held
by the PoP (not the worker, which may be replaced), for as long as this
deployment serves there. Each PoP has its own: a value put at one PoP is not
seen at another. `get` and `put` are separate calls, so two requests at one
PoP that both read, change and write a key can interleave between them.

`ctx.wait_until(coro)` hands work to the PoP to run after the response has been
sent (logging, analytics, warming a cache), as in Cloudflare Workers.

How the bindings reach the PoP: a handler runs in a worker process of its own
(`worker.py`), not in the PoP, so every binding is a call across the wire to
the PoP, which owns the cache and the connections. `Calls` is that one door;
the bindings below only shape the arguments.
"""

from __future__ import annotations

import json
import time
from collections.abc import Coroutine
from typing import Any, Protocol
from urllib.parse import quote

from yarl import URL

from kit.runtime.http import Request, Response


class FetchError(Exception):
    """`env.fetch` got no answer: the server refused the connection, or timed out."""


class Calls(Protocol):
    """The door to the PoP: run one operation ("origin", "fetch", "cache.match", ...)."""

    async def __call__(
        self, op: str, request: Request | None = None, **options: Any
    ) -> Response | None: ...


class Env:
    """Named bindings, read as attributes: `env.origin`, `env.cache`, `env.config`."""

    def __init__(self, **bindings: Any) -> None:
        self.__dict__.update(bindings)

    def bind(self, name: str, binding: Any) -> None:
        setattr(self, name, binding)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"env has no binding {name!r}; bound: {', '.join(self.__dict__)}")

    def __repr__(self) -> str:
        return f"Env({', '.join(self.__dict__)})"


class Context:
    """Per-request context: collects work to run after the response is sent."""

    def __init__(self) -> None:
        self.after_response: list[Coroutine[Any, Any, Any]] = []

    def wait_until(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` (a coroutine) after the response has gone to the client."""
        self.after_response.append(work)


class OriginBinding:
    """`env.origin`: fetch from the origin through this PoP's cache."""

    def __init__(self, calls: Calls, url: str) -> None:
        self._calls, self.url = calls, url

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
        return await self._calls("origin", target, cache=cache, cache_key=cache_key)


class FetchBinding:
    """`env.fetch`: send a request to any URL, like the global `fetch()` of Workers."""

    def __init__(self, calls: Calls) -> None:
        self._calls = calls

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

        `await env.fetch("http://10.0.0.2/status", timeout_s=2)`.
        Raises FetchError if no answer comes (refused, unreachable, past `timeout_s`).
        """
        if not isinstance(target, Request):
            target = Request(target, method, headers, body)
        if target.url.scheme not in ("http", "https") or not target.url.host:
            raise ValueError(
                f"env.fetch needs an absolute http:// URL, not {str(target.url)!r}; "
                "for a path on the origin use env.origin.fetch"
            )
        return await self._calls("fetch", target, timeout_s=timeout_s)


class CacheBinding:
    """`env.cache`: the PoP's HTTP cache, like the Workers Cache API (`caches.default`).

    The key is a Request or a URL; what counts is its path and query (a PoP serves
    one site, so the host is ignored), and a handler may make up its own, e.g.
    `"/thumbnails/cat.jpg?w=200"`. It is the same store `env.origin.fetch` and the
    PoP itself use, and it follows the same rules (RFC 9111):

    - `put` stores a response only if its headers allow it (Cache-Control, no
      `Vary: *`, not a 206) and for as long as they say; `Set-Cookie` is never
      stored. Only GET requests are keys: `put` with another method raises
      ValueError, `match` and `delete` with one find nothing (as in Workers).
    - `match` honours `Vary`: a stored response that varies on a header is found
      only by a request with the same value of that header.
    - Entries stay at this PoP; other PoPs have their own (as Cloudflare's cache is
      per data centre).
    """

    def __init__(self, calls: Calls) -> None:
        self._calls = calls

    @staticmethod
    def _request(target: Request | str) -> Request:
        return target if isinstance(target, Request) else Request(target)

    async def match(self, target: Request | str) -> Response | None:
        """The stored response if it is fresh, else None."""
        request = self._request(target)
        if request.method not in ("GET", "HEAD"):
            return None
        return await self._calls("cache.match", request)

    async def put(self, target: Request | str, response: Response) -> bool:
        """Store a response (its Cache-Control decides for how long); True if stored."""
        request = self._request(target)
        if request.method != "GET":
            raise ValueError(f"env.cache.put: only GET requests are keys, not {request.method}")
        stored = await self._calls("cache.put", request, response=response)
        return stored is not None and stored.ok

    async def delete(self, target: Request | str) -> bool:
        """Remove every stored variant of the key; True if there was one."""
        request = self._request(target)
        if request.method not in ("GET", "HEAD"):
            return False
        deleted = await self._calls("cache.delete", request)
        return deleted is not None and deleted.ok


class StateBinding:
    """`env.state`: small JSON values kept at this PoP between requests, by key.

    seen = await env.state.get("greetings") or 0
    await env.state.put("greetings", seen + 1, ttl_s=60)
    """

    def __init__(self, calls: Calls) -> None:
        self._calls = calls

    async def get(self, key: str) -> Any:
        """The value put under `key` (a copy), or None if there is none (or it expired)."""
        found = await self._calls("state.get", key=str(key))
        return None if found is None else json.loads(await found.read())

    async def put(self, key: str, value: Any, ttl_s: float | None = None) -> None:
        """Keep `value` (anything JSON can hold) under `key`, for `ttl_s` seconds if given."""
        await self._calls("state.put", key=str(key), value=value, ttl_s=ttl_s)

    async def delete(self, key: str) -> None:
        await self._calls("state.delete", key=str(key))


class DbError(Exception):
    """The database refused a statement (bad SQL, a broken constraint) or did not answer."""

    def __init__(self, reason: str, status: int = 0) -> None:
        super().__init__(reason)
        self.status = status  # the database's HTTP status; 0: no answer


class DbBinding:
    """`env.db`: the replicated database (`kit/services/db.py`), from the replica nearest
    this PoP, shaped like the edge databases' clients (D1, libSQL):

        found = await env.db.query("SELECT name FROM planets WHERE moons > ?", [10])
        found["rows"], found["position"]                 # rows, and the txid they were read at
        done = await env.db.execute("UPDATE planets SET moons = ? WHERE name = ?", [95, "Saturn"])
        done["txid"]                                     # the write's place in commit order
        await env.db.position()                          # this replica's position and lag

    Writes go to the replica, which forwards them to the primary. `on="primary"` sends
    a query (or asks the position) of the primary instead, across the world. A refused
    statement or a database that does not answer raises `DbError` with the reason.
    """

    def __init__(self, fetch: FetchBinding, replica: str, primary: str) -> None:
        self._fetch, self.replica, self.primary = fetch, replica.rstrip("/"), primary.rstrip("/")

    async def query(
        self, sql: str, params: list[Any] | dict[str, Any] = (), *, on: str = "replica"
    ) -> dict[str, Any]:
        """One read-only statement: {"columns", "rows", "position", "role"}."""
        return await self._ask(on, "/query", {"sql": sql, "params": _params(params)})

    async def execute(
        self, sql: str | list[tuple[str, Any]], params: list[Any] | dict[str, Any] = ()
    ) -> dict[str, Any]:
        """A write, or a list of (sql, params) as one transaction: {"txid", "changes", ...}."""
        listed = [(sql, params)] if isinstance(sql, str) else sql
        statements = [{"sql": s, "params": _params(p)} for s, p in listed]
        return await self._ask("replica", "/exec", {"statements": statements})

    async def position(self, *, on: str = "replica") -> dict[str, Any]:
        """{"role", "position", "head", "lag_tx", ...} of the replica (or the primary)."""
        return await self._ask(on, "/position", None)

    async def _ask(self, on: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        if on not in ("replica", "primary"):
            raise ValueError(f'on= is "replica" or "primary", not {on!r}')
        url = (self.replica if on == "replica" else self.primary) + path
        try:
            if body is None:
                answer = await self._fetch(url)
            else:
                json_type = {"Content-Type": "application/json"}
                answer = await self._fetch(
                    url, method="POST", headers=json_type, body=json.dumps(body)
                )
        except FetchError as error:
            raise DbError(f"the database at {url} did not answer: {error}") from None
        data = await answer.json()
        if answer.status >= 400:
            raise DbError(data.get("error", f"HTTP {answer.status}"), answer.status)
        return data


def _params(params: Any) -> list[Any] | dict[str, Any]:
    return dict(params) if isinstance(params, dict) else list(params)


class KvBinding:
    """`env.kv`: a key-value store in the shape of Workers KV (`kit/services/kv.py`).

        await env.kv.put("theme:ada", "dark")
        await env.kv.get("theme:ada")                  # "dark", or None if there is none
        await env.kv.get("theme:ada", cache_ttl_s=5)   # keep what was read for 5 s here
        await env.kv.delete("theme:ada"); await env.kv.list(prefix="theme:")

    A read looks in this PoP's HTTP cache first (`env.cache`), and on a miss asks the
    central store and keeps its answer, a missing key included, for `cache_ttl_s`
    (default 60, as Workers KV). So other PoPs see a write when their copy expires.
    A write goes to the central store with the time it was made (the latest write
    wins there), and drops this PoP's copy, so this PoP reads its own write.
    """

    DEFAULT_TTL_S = 60.0
    TIMEOUT_S = 5.0  # a store that has not answered by then is cut off: KvError

    def __init__(self, fetch: FetchBinding, cache: CacheBinding, url: str, writer: str) -> None:
        self._fetch, self._cache = fetch, cache
        self.url, self.writer = url.rstrip("/"), writer

    def _key_url(self, key: str) -> str:
        if not isinstance(key, str) or not key:
            raise ValueError(f"a KV key is a non-empty string, not {key!r}")
        return f"{self.url}/kv/{quote(key, safe='')}"

    async def get(self, key: str, *, cache_ttl_s: float | None = None) -> str | None:
        """The value as text, or None if the key is missing."""
        data = await self.get_bytes(key, cache_ttl_s=cache_ttl_s)
        return None if data is None else data.decode()

    async def get_bytes(self, key: str, *, cache_ttl_s: float | None = None) -> bytes | None:
        url = self._key_url(key)
        cached_under = "/.kv" + URL(url).raw_path  # this PoP's cache key for it
        answer = await self._cache.match(cached_under)
        if answer is None:
            try:
                answer = await self._fetch(url, timeout_s=self.TIMEOUT_S)
            except FetchError as error:
                raise KvError(f"the KV store did not answer: {error}") from None
            if answer.status not in (200, 404):
                raise KvError(f"the KV store answered {answer.status}: {await answer.text()}")
            ttl = self.DEFAULT_TTL_S if cache_ttl_s is None else cache_ttl_s
            kept = Response(await answer.read(), answer.status)
            kept.headers["Cache-Control"] = f"max-age={max(0, int(ttl))}"
            await self._cache.put(cached_under, kept)
        return await answer.read() if answer.status == 200 else None

    async def put(self, key: str, value: str | bytes) -> bool:
        """Write `value`; True if it was the latest write the store has seen for `key`."""
        return await self._write("PUT", key, value.encode() if isinstance(value, str) else value)

    async def delete(self, key: str) -> bool:
        return await self._write("DELETE", key, b"")

    async def list(self, prefix: str = "") -> list[str]:
        """Keys that start with `prefix`, from the central store (never cached)."""
        try:
            listing = f"{self.url}/kv?prefix={quote(prefix, safe='')}"
            answer = await self._fetch(listing, timeout_s=self.TIMEOUT_S)
        except FetchError as error:
            raise KvError(f"the KV store did not answer: {error}") from None
        return (await answer.json())["keys"]

    async def _write(self, method: str, key: str, body: bytes) -> bool:
        url = self._key_url(key)
        headers = {"x-kv-at": repr(time.time()), "x-kv-writer": self.writer}
        try:
            answer = await self._fetch(
                url, method=method, headers=headers, body=body, timeout_s=self.TIMEOUT_S
            )
        except FetchError as error:
            raise KvError(f"the KV store did not answer: {error}") from None
        if answer.status != 200:
            raise KvError(f"the KV store refused the {method}: {await answer.text()}")
        await self._cache.delete("/.kv" + URL(url).raw_path)  # read your own write here
        return (await answer.json())["kept"]


class KvError(Exception):
    """The KV store refused an operation or did not answer."""
