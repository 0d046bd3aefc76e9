"""A PoP's handlers: which one serves, running requests through it, serving its bindings.

The PoP's data plane (`pop.py`) asks one question of this module per request:
does a handler want this path (`Handlers.matching`)? If so, `Handlers.run`
sends the request to the handler's worker process (`workers.py`) and returns
its answer, or a 5xx that says why there is none. A worker that died (it got
stuck, exited or was evicted) is replaced on the next request: the handler is
loaded again into a spare worker.

What a handler's `env` asks for (`env.origin.fetch`, `env.fetch`, `env.cache`,
`env.state`, a middleware's `next()`) comes back from the worker as a call, and
`binding` answers it with the PoP's own cache, connection pool and state.

`env.state` lives here (`LocalState`), not in the worker: a worker that is
replaced (stuck, evicted) finds the values again. Each activation starts with
an empty one, so a new version of a handler never reads what an old one wrote.
It is bounded (`STATE_KEYS` keys of at most `STATE_VALUE_BYTES` each, least
recently used out first), since a handler can put a key per client.

The deploy steps change which handler serves; the control plane
(`pop_control.py`) calls them:

    stage(source, ...)  load a handler into a worker next to the serving one -> token
    activate(token)     serve it; what it replaced is kept ROLLBACK_WINDOW_S for
    rollback(token)     undoing that activation (all-or-nothing deploys)
    drop(token)         withdraw a staged handler (or it expires: --staged-ttl)
    evict()             unload the serving handler: the next request pays a cold start
    undeploy()          back to a plain caching proxy
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from kit.runtime.http import Request, Response
from kit.runtime.loader import LoadError
from kit.services.cache import State
from kit.services.workers import Deployment, HandlerFailed, Spares, Worker

if TYPE_CHECKING:
    from kit.services.pop import Pop

ROLLBACK_WINDOW_S = 30.0  # a replaced handler's worker is kept this long, for a rollback
STATE_KEYS = 100_000  # env.state: keys kept at one PoP
STATE_VALUE_BYTES = 64 << 10  # env.state: the largest value, as JSON


class LocalState:
    """`env.state` at one PoP: JSON values by key, with expiry, least recently used out."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.values: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        found = self.values.get(key)
        if found is None:
            return None
        value, expires = found
        if expires is not None and self.clock() >= expires:
            del self.values[key]
            return None
        self.values.move_to_end(key)
        return value

    def put(self, key: str, value: Any, ttl_s: float | None = None) -> None:
        try:
            data = json.dumps(value, allow_nan=False).encode()
        except TypeError as error:
            raise ValueError(f"env.state holds JSON values: {error}") from None
        if len(data) > STATE_VALUE_BYTES:
            raise ValueError(f"env.state value of {len(data)} bytes: at most {STATE_VALUE_BYTES}")
        if ttl_s is not None and not ttl_s > 0:
            raise ValueError(f"ttl_s must be a positive number of seconds, got {ttl_s!r}")
        self.values[key] = (data, None if ttl_s is None else self.clock() + float(ttl_s))
        self.values.move_to_end(key)
        while len(self.values) > STATE_KEYS:
            self.values.popitem(last=False)

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


class Handlers:
    """The handler side of one PoP (see the module docstring)."""

    def __init__(self, pop: Pop, timeout_s: float, memory_mb: int, staged_ttl_s: float) -> None:
        self.pop, self.timeout_s, self.staged_ttl_s = pop, timeout_s, staged_ttl_s
        self.spares = Spares(memory_mb)
        self.active: Deployment | None = None
        self.active_token: str | None = None
        self.staged: dict[str, Deployment] = {}
        self.replaced: tuple[str, Deployment | None] | None = None  # (token, what it replaced)
        self.versions = 0
        self.state = LocalState()

    def start(self) -> None:
        self.spares.prepare()  # a deploy then loads code into a running process

    async def close(self) -> None:
        await self.spares.close()
        for deployment in [self.active, *self.staged.values(), *self._replaced()]:
            if deployment:
                deployment.worker.kill("the PoP stopped")

    # -- requests ------------------------------------------------------------

    def matching(self, path: str) -> tuple[Deployment, dict[str, str]] | None:
        """The serving handler and its matcher's params, if it wants this path."""
        deployment = self.active
        params = deployment.matches(path) if deployment else None
        return None if params is None else (deployment, params)

    async def run(self, deployment: Deployment, request: Request) -> Response:
        """The handler's answer from its worker, or a 5xx that says why not."""
        try:
            worker = await self.live_worker(deployment)
            return await worker.handle(request, deployment.timeout_s)
        except HandlerFailed as failure:
            return self.failed(request, failure.status, failure.reason, failure.trace)

    async def live_worker(self, deployment: Deployment) -> Worker:
        """The deployment's worker; a new one (the handler loaded again) if it died."""
        async with deployment.lock:
            if not deployment.worker.alive:
                died = deployment.worker.death
                worker = await self.spares.take()
                try:
                    await self.load(
                        worker, deployment.source, deployment.config, deployment.matcher_given
                    )
                except LoadError as error:
                    raise HandlerFailed(500, f"the handler failed to load again: {error}") from None
                deployment.worker = worker
                deployment.restarts += 1
                self.pop.metrics.count("handler_restarts")
                self.pop.log("handler_restarted", "warning", why=died, version=deployment.version)
        return deployment.worker

    async def load(
        self, worker: Worker, source: str, config: dict[str, Any], matcher: list[str] | None
    ) -> dict[str, Any]:
        pop = self.pop
        return await worker.load(
            source, config, matcher, pop.name, str(pop.origin), self.binding, pop.services
        )

    async def binding(
        self, op: str, request: Request | None, options: dict[str, Any], stored: Response | None
    ) -> Response | None:
        """What a handler's `env` bindings ask the PoP for (see kit/runtime/bindings.py)."""
        if op.startswith("state."):
            return self.state_binding(op, options)
        assert request is not None
        pop = self.pop
        if op == "origin":
            return await pop.fetch(request, **options)
        if op == "next":  # a middleware's next(): on to the cache and the origin
            return await pop.fetch(request)
        if op == "fetch":
            return await pop.fetch_url(request, options.get("timeout_s"))
        if op == "actor":  # a stub's fetch: to wherever the actor lives (pop_actors.py)
            if pop.actors is None:
                raise ValueError("this PoP was started without actors (start_edge(..., kv=...))")
            actor, name, location = options["actor"], options["name"], options.get("location")
            return await pop.actors.call(request, actor, name, location)
        key, now = request.url.raw_path_qs, pop.cache.clock()
        if op == "cache.match":
            entry = pop.cache.lookup(key, request.headers)
            fresh = entry is not None and entry.state(now) is State.FRESH
            return pop.from_cache(entry, "HIT") if fresh else None
        if op == "cache.put" and stored is not None:
            body = await stored.read()
            entry = pop.cache.store(key, request.headers, stored.status, stored.headers, body, now)
            return Response(b"", 201) if entry is not None else None
        if op == "cache.delete":
            found = key in pop.cache.variants
            pop.cache.invalidate(key)
            return Response(b"", 200) if found else None
        raise ValueError(f"no binding operation {op!r}")

    def state_binding(self, op: str, options: dict[str, Any]) -> Response | None:
        """`env.state`: get (the value as a JSON body, or None), put, delete."""
        key = options.get("key")
        if not isinstance(key, str):
            raise ValueError(f"env.state keys are strings, got {key!r}")
        if op == "state.get":
            value = self.state.get(key)
            return None if value is None else Response(value, 200)
        if op == "state.put":
            self.state.put(key, options.get("value"), options.get("ttl_s"))
            return None
        if op == "state.delete":
            self.state.delete(key)
            return None
        raise ValueError(f"no binding operation {op!r}")

    def failed(self, request: Request, status: int, reason: str, trace: str = "") -> Response:
        self.pop.log("handler_error", "error", path=request.path, reason=reason, trace=trace)
        self.pop.metrics.count("handler_errors")
        body = f"edge handler error at PoP {self.pop.name}: {reason}\n"
        return Response.text(body, status, {"x-kit-error": "handler"})

    # -- deploy steps ------------------------------------------------------------

    async def stage(
        self, source: str, config: dict[str, Any], matcher: list[str] | None, timeout_s: float
    ) -> tuple[str, Deployment]:
        """Load a handler into a worker next to the serving one; LoadError if it cannot."""
        worker = await self.spares.take()
        loaded = await self.load(worker, source, config, matcher)
        deployment = Deployment(source, config, matcher, timeout_s, worker, loaded)
        token = uuid.uuid4().hex
        self.staged[token] = deployment
        asyncio.get_running_loop().call_later(self.staged_ttl_s, self.drop, token, "expired")
        return token, deployment

    def activate(self, token: str) -> Deployment:
        """Serve a staged handler; keep what it replaced for a rollback."""
        deployment = self.staged.pop(token)
        self.versions += 1
        deployment.version, deployment.deployed_at = self.versions, time.time()
        self._retire_replaced()
        self.replaced = (token, self.active)
        asyncio.get_running_loop().call_later(ROLLBACK_WINDOW_S, self._retire_replaced, token)
        self.active, self.active_token = deployment, token
        self.state = LocalState()  # a new version starts with nothing kept
        self.pop.log("deployed", **deployment.describe())
        return deployment

    def rollback(self, token: str) -> tuple[bool, Deployment | None]:
        """Serve again what the activation with this token replaced: (done, now serving)."""
        if token != self.active_token or not self.replaced:
            return False, self.active
        _, previous = self.replaced
        self.replaced = None
        undone, self.active, self.active_token = self.active, previous, None
        if undone:
            self.pop.in_background(self._retire(undone), ROLLBACK_WINDOW_S)
        self.pop.log("rolled_back", version=previous.version if previous else None)
        return True, previous

    def drop(self, token: str, why: str) -> bool:
        """Withdraw a staged handler; False if there is none with this token."""
        deployment = self.staged.pop(token, None)
        if deployment:
            deployment.worker.kill(f"staged handler {why}")
        return deployment is not None

    async def evict(self) -> Deployment | None:
        """Unload the serving handler, as a platform evicts an idle isolate.

        The next request that the handler serves loads it again into a new worker
        (the spare): that request pays the cold start, as a platform defines it.
        Returns once a spare is ready, so that cold start is loading the handler,
        not starting Python.
        """
        if self.active:
            self.active.worker.kill("evicted (the next request loads the handler again)")
            await self.spares.ready()
        return self.active

    def undeploy(self) -> None:
        if self.active:
            self.pop.in_background(self._retire(self.active), ROLLBACK_WINDOW_S)
        self.active = self.active_token = None
        self.pop.log("undeployed")

    def _replaced(self) -> list[Deployment]:
        return [self.replaced[1]] if self.replaced and self.replaced[1] else []

    def _retire_replaced(self, token: str | None = None) -> None:
        """Stop the worker of the version last replaced (whichever it is if token is None)."""
        if self.replaced and (token is None or self.replaced[0] == token):
            for old in self._replaced():
                self.pop.in_background(self._retire(old), ROLLBACK_WINDOW_S)
            self.replaced = None

    async def _retire(self, deployment: Deployment) -> None:
        """Let a replaced handler finish its requests, then stop its worker."""
        deadline = time.monotonic() + deployment.timeout_s + 1
        while deployment.worker.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        deployment.worker.kill(f"version {deployment.version} was replaced")
