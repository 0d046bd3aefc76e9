"""A PoP's control plane: the routes on its root-only Unix socket.

JSON in, JSON out; each route checks its input, asks `Handlers`
(`pop_handlers.py`) or the cache to act, and says what happened. The paths are
declared once, in `kit.control.protocol`, where the notebook's client
(`kit.control.deploy`) finds them too:

    POST   DEPLOY     {"source", "config", "matcher", "timeout_s", "activate"}
                      load a handler into a worker; -> {"token", "cold_start_ms", ...}
    POST   ACTIVATE   {"token"}  serve a staged handler
    POST   ROLLBACK   {"token"}  undo that activation (for ROLLBACK_WINDOW_S)
    DELETE STAGED     drop one staged handler (or wait --staged-ttl)
    POST   EVICT      unload the handler: the next request loads it (a cold start)
    GET    DEPLOY     the serving handler and its source;  DELETE DEPLOY  remove it
    GET    CACHE      cache size;  DELETE CACHE?prefix=/api  purge
                      DELETE CACHE?url=/page/a  every variant of one URL (path and query)
                      DELETE CACHE?tag=product-7  what carried Surrogate-Key/Cache-Tag: product-7
    GET    RUM        the RUM collector's sketches (rum.py);  DELETE RUM  empty them
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from kit.control import protocol
from kit.runtime.loader import LoadError
from kit.services.common import json_error

if TYPE_CHECKING:
    from kit.services.pop import Pop


class PopControl:
    """The control routes of one PoP (see the module docstring)."""

    def __init__(self, pop: Pop) -> None:
        self.pop, self.handlers = pop, pop.handlers

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_post(protocol.DEPLOY, self.deploy)
        router.add_route("GET", protocol.DEPLOY, self.serving)
        router.add_route("DELETE", protocol.DEPLOY, self.serving)
        router.add_post(protocol.ACTIVATE, self.activate)
        router.add_post(protocol.ROLLBACK, self.rollback)
        router.add_delete(protocol.STAGED, self.drop)
        router.add_post(protocol.EVICT, self.evict)
        router.add_route("*", protocol.CACHE, self.cache)
        router.add_route("GET", protocol.RUM, self.rum)
        router.add_route("DELETE", protocol.RUM, self.rum)

    def answer(self, **fields: Any) -> web.Response:
        return web.json_response({"ok": True, "pop": self.pop.name, **fields})

    async def deploy(self, web_request: web.Request) -> web.Response:
        """Stage a handler: load it into a worker next to the one serving (phase 1)."""
        payload = await web_request.json()
        if not isinstance(payload, dict) or not isinstance(payload.get("source"), str):
            return json_error(400, 'expected JSON {"source": "...python..."}')
        config = payload.get("config") or {}
        timeout_s = payload.get("timeout_s") or self.handlers.timeout_s
        matcher = payload.get("matcher")
        if not isinstance(config, dict) or not isinstance(timeout_s, int | float) or timeout_s <= 0:
            return json_error(400, "config must be an object and timeout_s a positive number")
        if matcher is not None and not (
            isinstance(matcher, list) and all(isinstance(m, str) for m in matcher)
        ):
            return json_error(400, "matcher must be a list of path patterns")
        try:
            token, staged = await self.handlers.stage(
                payload["source"], config, matcher, float(timeout_s)
            )
        except LoadError as error:
            self.pop.log("deploy_failed", "warning", reason=str(error), trace=error.trace)
            return web.json_response(
                {"ok": False, "pop": self.pop.name, "error": error.as_dict()}, status=422
            )
        result = {"token": token, **staged.describe()}
        result["worker_start_ms"] = round(staged.worker.start_ms, 3)
        if payload.get("activate", True):
            result.update(self.handlers.activate(token).describe())
        return self.answer(**result)

    async def activate(self, web_request: web.Request) -> web.Response:
        """Serve a staged handler (phase 2)."""
        token = await _token(web_request)
        if token not in self.handlers.staged:
            return json_error(404, f"no staged handler with token {token!r} (expired?)")
        return self.answer(**self.handlers.activate(token).describe())

    async def rollback(self, web_request: web.Request) -> web.Response:
        """Undo an activation: serve again what the deploy with this token replaced."""
        token = await _token(web_request)
        done, serving = self.handlers.rollback(token) if token else (False, None)
        if not done:
            return json_error(409, f"deploy {token!r} is not the one serving: nothing to undo")
        return self.answer(handler=serving.describe() if serving else None)

    async def drop(self, web_request: web.Request) -> web.Response:
        token = web_request.match_info["token"]
        if not self.handlers.drop(token, "withdrawn"):
            return json_error(404, f"no staged handler with token {token!r}")
        return self.answer()

    async def evict(self, web_request: web.Request) -> web.Response:
        evicted = await self.handlers.evict()
        if evicted is None:
            return json_error(409, "no handler is deployed: nothing to evict")
        return self.answer(**evicted.describe())

    async def serving(self, web_request: web.Request) -> web.Response:
        if web_request.method == "DELETE":
            self.handlers.undeploy()
            return self.answer(handler=None)
        active = self.handlers.active
        return self.answer(
            handler=active.describe() if active else None,
            source=active.source if active else None,
        )

    async def cache(self, web_request: web.Request) -> web.Response:
        cache = self.pop.cache
        if web_request.method == "DELETE":
            query = web_request.query
            if "tag" in query:
                return self.answer(purged=cache.purge_tag(query["tag"]))
            if "url" in query:
                return self.answer(purged=cache.purge_url(query["url"]))
            return self.answer(purged=cache.purge(query.get("prefix", "")))
        return web.json_response({"entries": len(cache), "bytes": cache.bytes})

    async def rum(self, web_request: web.Request) -> web.Response:
        if web_request.method == "DELETE":
            self.pop.rum.reset()
            return self.answer()
        return self.answer(**self.pop.rum.export())


async def _token(web_request: web.Request) -> str | None:
    payload = await web_request.json()
    token = payload.get("token") if isinstance(payload, dict) else None
    return token if isinstance(token, str) else None
