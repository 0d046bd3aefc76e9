"""A device shadow service in the shape of AWS IoT's: one JSON document per thing, in the cloud.

    python -m kit.services.shadow --rule /tmp/edgelab-x/rule.py --host 0.0.0.0 --port 7300 \\
        --unix /tmp/edgelab-x/origin.shadow.sock

A document is ``{"state": {"desired": {...}, "reported": {...}, "delta": {...}},
"version": N}``. What an update does to it is the **rule**: a Python function
``update_shadow(doc, request) -> (status, body)`` read from the file ``--rule``
names (chapter 09's learner writes one). The service keeps the documents, calls
the rule under a lock (one update of a thing at a time), stores what it returns
on a 200, and answers with the rule's status and body. A thing nobody has updated
reads as 404, as AWS IoT answers for a shadow that does not exist, and is updated
from the empty document (version 0).

The rule is a learner's code, so it never runs in the service's process: it runs
in a handler worker, the process a PoP gives each deployed handler
(`kit/services/workers.py`), wrapped in a small `fetch` that takes the document
and the request as JSON and answers with the rule's result. A rule that raises or
calls ``sys.exit`` is a 500 that says so; one that loops or blocks past
``RULE_LIMIT_S`` is a 504 naming its line, and its worker is replaced. Either way
no document changes and the service goes on. A rule that does not load (a syntax
error, no ``update_shadow``) stops the service at start, with the line, in its log.

Routes, on the data plane (devices, over the uplink) and on the control plane
(the notebook, playing the app in the cloud) alike:

    GET  /things/THING/shadow      the document (404 if none)
    POST /things/THING/shadow      an update request: the rule's status and body

and on the control plane only ``GET /_kit/shadow/history``: every update with its
time, its client (the ``x-client`` header or the ``client`` query), the request, the status and the
version after it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from kit.runtime.http import Request
from kit.runtime.loader import LoadError
from kit.services.common import Log, Metrics, Served, json_error, make_apps, parser, serve
from kit.services.workers import HandlerFailed, Worker

HISTORY = "/_kit/shadow/history"
EMPTY = {"state": {"desired": {}, "reported": {}}, "version": 0}
RULE_LIMIT_S = 2.0  # an update rule is a few dict operations; far more is a loop
RULE_MEMORY_MB = 128

# Appended to the rule's source: the handler a worker runs. The first line fails at
# load (with a line number) when the file defines no update_shadow.
CALL_RULE = """

_rule = update_shadow


async def fetch(request, env, ctx):
    call = await request.json()
    status, body = _rule(call["doc"], call["update"])
    return Response.json({"status": status, "body": body})
"""


class Rule:
    """The learner's `update_shadow`, run in a handler worker (see the module docstring)."""

    def __init__(self, source: str) -> None:
        self.source = source + CALL_RULE
        self.worker: Worker | None = None

    async def load(self) -> None:
        """A new worker with the rule loaded (LoadError if it does not load)."""
        worker = await Worker(RULE_MEMORY_MB).start()
        await worker.load(self.source, {}, None, "shadow", "", self.no_bindings)
        self.worker = worker

    async def __call__(self, doc: dict, update: dict) -> tuple[Any, Any]:
        """The rule's (status, body) for this document and request, or HandlerFailed."""
        if self.worker is None or not self.worker.alive:  # killed by a rule that looped
            try:
                await self.load()
            except (LoadError, RuntimeError) as error:  # no worker: this update fails alone
                raise HandlerFailed(503, f"the rule's new worker did not start: {error}") from None
        assert self.worker is not None
        call = json.dumps({"doc": doc, "update": update})
        request = Request("/rule", "POST", {"content-type": "application/json"}, call)
        answer = await (await self.worker.handle(request, RULE_LIMIT_S)).json()
        return answer["status"], answer["body"]

    async def no_bindings(self, op: str, *_: Any) -> Any:
        raise LookupError(f"an update rule has no bindings (it called {op})")

    def stop(self) -> None:
        if self.worker is not None and self.worker.alive:
            self.worker.kill("the shadow service stopped")


class Shadows:
    """The documents, the rule and the history (see the module docstring)."""

    def __init__(self, rule: Rule, log: Log) -> None:
        self.rule, self.log = rule, log
        self.docs: dict[str, dict] = {}
        self.history: list[dict] = []
        self.lock = asyncio.Lock()

    async def get(self, request: web.Request) -> web.Response:
        thing = request.match_info["thing"]
        if thing not in self.docs:
            return web.json_response({"code": 404, "message": f"No shadow for {thing}"}, status=404)
        return web.json_response(self.docs[thing])

    async def post(self, request: web.Request) -> web.Response:
        thing = request.match_info["thing"]
        try:
            update = json.loads(await request.read())
        except ValueError:
            return json_error(400, "the body is not JSON")
        if not isinstance(update, dict):
            return json_error(400, "an update is a JSON object")
        async with self.lock:
            try:
                status, body = await self.rule(self.docs.get(thing, EMPTY), update)
            except HandlerFailed as failed:  # raised, exited, looped: nothing changes
                self.log("rule_failed", "warning", status=failed.status, reason=failed.reason)
                return json_error(failed.status, f"the update rule failed: {failed.reason}")
            if not isinstance(status, int) or not 100 <= status <= 599:
                return json_error(500, f"the update rule returned status {status!r}"[:300])
            if status == 200 and not (
                isinstance(body, dict) and isinstance(body.get("version"), int)
            ):
                return json_error(500, "the update rule answered 200 without a versioned document")
            if status == 200:
                self.docs[thing] = body
            self.history.append(
                {
                    "t": time.time(),
                    "thing": thing,
                    "client": request.headers.get("x-client") or request.query.get("client", "?"),
                    "request": update,
                    "status": status,
                    "version": self.docs.get(thing, EMPTY)["version"],
                }
            )
        return web.json_response(body, status=status)

    async def get_history(self, request: web.Request) -> web.Response:
        return web.json_response(self.history)


def main(argv: list[str] | None = None) -> None:
    cli = parser("shadow", "Device shadows: desired, reported, delta and version, per thing.")
    cli.add_argument(
        "--rule", required=True, help="a Python file defining update_shadow(doc, request)"
    )
    args = cli.parse_args(argv)
    served = Served.of(args)
    log = Log("shadow")
    metrics = Metrics("shadow")
    planes = make_apps("shadow", served, metrics, log)
    with open(args.rule) as file:
        rule = Rule(file.read())
    shadows = Shadows(rule, log)

    async def load(_app: web.Application) -> None:
        try:
            await rule.load()
        except LoadError as error:
            log("rule_not_loaded", "error", reason=str(error))
            raise SystemExit(f"the update rule did not load: {error}") from None

    async def stop(_app: web.Application) -> None:
        rule.stop()

    planes.data.on_startup.append(load)
    planes.data.on_cleanup.append(stop)
    for app in (planes.data, planes.control):
        app.router.add_get("/things/{thing}/shadow", shadows.get)
        app.router.add_post("/things/{thing}/shadow", shadows.post)
    planes.control.router.add_get(HISTORY, shadows.get_history)
    serve(planes, served, log)


if __name__ == "__main__":
    main()
