"""`env` and `ctx`: what a handler gets besides the request.

`env` holds bindings, the handler's way to reach things outside itself. The PoP
fills it when a handler is deployed:

    env.origin   fetch from the origin:   await env.origin.fetch(request or "/path")
    env.fetch    fetch from any URL:      await env.fetch("http://10.0.0.2/api/x")
    env.cache    the PoP's HTTP cache:    await env.cache.match(request)
    env.config   the dict given to deploy(..., config={...})
    env.pop      the name of this PoP

Later chapters bind more (KV, a database replica, MQTT): `Env` is just a bag of
named attributes, so a new binding is one `env.bind("kv", client)` away.

`env.fetch` is the global `fetch()` of Workers: it sends a request (an absolute
URL, or a Request carrying one) to any server, past the PoP's cache, over the
PoP's shared connection pool. When it gets no answer (connection refused, time
out) it raises `FetchError`, which a handler may catch; one it does not catch
becomes a 502 that says why.

`ctx.wait_until(coro)` hands work to the PoP to run after the response has been
sent (logging, analytics, warming a cache), as in Cloudflare Workers.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any


class FetchError(Exception):
    """`env.fetch` got no answer: the server refused the connection, or timed out."""


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
