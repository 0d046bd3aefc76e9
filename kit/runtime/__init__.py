"""The edge runtime: what learners' edge handlers are written against.

    from kit.runtime import Response
    from kit.control import deploy           # the notebook's side (kit.control)

    async def fetch(request, env, ctx):
        if request.path == "/maintenance":
            return Response.text("back soon", 503, {"Retry-After": "60"})
        return await env.origin.fetch(request)

    deploy(fetch, pops)

Modules: `http` (Request, Response, Geo), `bindings` (Env, Context, FetchError),
`matcher` (Next.js-style path patterns), `loader` (compile a handler, report
errors with line numbers), `worker` (the process a handler runs in, one per
deployment, and `wire`, its messages to the PoP). Shipping a handler to PoPs
from a notebook is the control plane's job: `kit.control`. The PoP that runs
and supervises handlers is `kit.services.pop`.
"""

from kit.runtime.bindings import Context, Env, FetchError
from kit.runtime.http import Geo, Request, Response
from kit.runtime.matcher import Matcher

__all__ = [
    "Context",
    "Env",
    "FetchError",
    "Geo",
    "Matcher",
    "Request",
    "Response",
]
