"""A device shadow service in the shape of AWS IoT's: one JSON document per thing, in the cloud.

    python -m kit.services.shadow --rule /tmp/edgelab-x/rule.py --host 0.0.0.0 --port 7300 \\
        --unix /tmp/edgelab-x/origin.shadow.sock

A document is ``{"state": {"desired": {...}, "reported": {...}, "delta": {...}},
"version": N}``. What an update does to it is the **rule**: a Python function
``update_shadow(doc, request) -> (status, body)`` read from the file ``--rule``
names (chapter 09's learner writes one). The service keeps the documents, calls
the rule under a lock (one update of a thing at a time), stores what it returns
on a 200, and answers with the rule's status and body. A rule that raises (or
calls ``sys.exit``) is a 500 that says so, never a changed document. The rule runs
in the service's own process, unlike a PoP's handlers: a rule that never returns
stalls the service (the chapter runs it in the kernel's checks first). A thing
nobody has updated reads as 404, as AWS IoT answers for a shadow that does not
exist, and is updated from the empty document (version 0).

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
import copy
import json
import time
from typing import Any

from aiohttp import web

from kit.services.common import Log, Metrics, Served, json_error, make_apps, parser, serve

HISTORY = "/_kit/shadow/history"
EMPTY = {"state": {"desired": {}, "reported": {}}, "version": 0}


class Shadows:
    """The documents, the rule and the history (see the module docstring)."""

    def __init__(self, rule: Any, log: Log) -> None:
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
            doc = copy.deepcopy(self.docs.get(thing, EMPTY))
            try:
                status, body = self.rule(doc, copy.deepcopy(update))
            except (Exception, SystemExit) as error:  # noqa: BLE001 (a learner's code)
                self.log("rule_failed", "warning", error=repr(error)[:300])
                return json_error(500, f"the update rule raised {error!r}"[:300])
            if status == 200:
                self.docs[thing] = copy.deepcopy(body)
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


def load_rule(path: str) -> Any:
    """`update_shadow` from the Python file at `path`."""
    with open(path) as file:
        source = file.read()
    namespace: dict[str, Any] = {}
    exec(compile(source, path, "exec"), namespace)
    return namespace["update_shadow"]


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
    shadows = Shadows(load_rule(args.rule), log)
    for app in (planes.data, planes.control):
        app.router.add_get("/things/{thing}/shadow", shadows.get)
        app.router.add_post("/things/{thing}/shadow", shadows.post)
    planes.control.router.add_get(HISTORY, shadows.get_history)
    serve(planes, served, log)


if __name__ == "__main__":
    main()
