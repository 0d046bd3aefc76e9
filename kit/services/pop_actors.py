"""A PoP's actors: where each one lives, and getting its requests there.

The worker's side of actors (the instances, their input gates and storage, and
what a handler sees) is `kit/runtime/actors.py`; its docstring says what an
actor is. This module is the PoP's side: a handler's `stub.fetch(...)` arrives
here as the binding call "actor", and `ActorRouter.call` answers it.

    stub.fetch at PoP A ──> home of (class, id)? ── A ──> A's worker runs it
                                               └─ B ──> B over the network ──> B's worker

Placement. The home of an actor is recorded once, in the directory beside the
central KV store (`kit/services/kv.py`, `POST /placement`, which takes claims
only with the peer secret below): the first claim
wins (the caller's own PoP, or the `location` it named) and every later
question gets the same answer. A PoP keeps the answers it got: a home never
changes, so asking once per actor is enough.

Forwarding. A request for an actor living at another PoP goes to that PoP's
address over the emulated network, with two headers: which actor (class and
percent-encoded id) and the world's peer secret, which only PoPs know (a file
in the world's scratch folder, given on the command line). A request that
carries the actor header without the secret is refused (403): a user, or any
other world host, cannot call an actor directly or pose as a PoP.

Failure. When the home does not answer within `ACTOR_TIMEOUT_S` (cut off by a
partition, or down), the caller gets `ActorError` naming the home. Nothing is
re-homed and no other PoP answers for it: its state is only there.
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from aiohttp import web
from yarl import URL

from kit.runtime.actors import ActorError
from kit.runtime.bindings import FetchError
from kit.runtime.http import Request, Response
from kit.services.kv import PEER_SECRET_HEADER
from kit.services.workers import HandlerFailed

if TYPE_CHECKING:
    from kit.services.pop import Pop

ACTOR_HEADER = "x-edge-actor"  # "Class/percent-encoded-id" on a request between PoPs
ACTOR_TIMEOUT_S = 5.0  # a home that has not answered by then is taken as cut off
DIRECTORY_TIMEOUT_S = 5.0
HOMES_KEPT = 100_000  # placements a PoP remembers (they never change)


class ActorRouter:
    """Actors seen from one PoP (see the module docstring)."""

    def __init__(self, pop: Pop, directory: str, peers: dict[str, str], secret: str) -> None:
        self.pop, self.directory, self.peers = pop, directory.rstrip("/"), peers
        self.secret = secret
        self.homes: dict[str, str] = {}

    async def call(self, request: Request, actor: str, name: str, location: str | None) -> Response:
        """A handler's `stub.fetch` at this PoP: the actor's answer, or ActorError."""
        home = await self.home_of(actor, name, location)
        if home == self.pop.name:
            return await self.run_here(actor, name, request)
        url = URL(self.peers[home].rstrip("/") + request.url.raw_path_qs, encoded=True)
        forwarded = Request(url, request.method, request.headers, await request.read())
        forwarded.client_ip = request.client_ip
        forwarded.headers[ACTOR_HEADER] = f"{actor}/{quote(name, safe='')}"
        forwarded.headers[PEER_SECRET_HEADER] = self.secret
        try:
            upstream = await self.pop.send_upstream(
                request.method, forwarded.url, forwarded, {}, cache=False, timeout_s=ACTOR_TIMEOUT_S
            )
        except FetchError as error:
            raise ActorError(
                f"actor {actor}/{name} lives at {home}, which did not answer ({error}). "
                "Its state is there only, so no other PoP answers for it."
            ) from None
        return self.pop.passed_through(upstream, "fetch_bytes")

    async def home_of(self, actor: str, name: str, location: str | None) -> str:
        """The PoP where this actor lives, asking the directory the first time."""
        key = f"{actor}/{name}"
        home = self.homes.get(key)
        if home is not None:
            return home
        if location is not None and location not in self.peers:
            known = ", ".join(sorted(self.peers))
            raise ValueError(f"location={location!r} is not a PoP of this edge; PoPs: {known}")
        claim = json.dumps({"actor": key, "pop": location or self.pop.name})
        url = URL(self.directory + "/placement")
        headers = {"Content-Type": "application/json", PEER_SECRET_HEADER: self.secret}
        ask = Request(url, "POST", headers, claim)
        try:
            answer = await self.pop.send_upstream(
                "POST", url, ask, {}, cache=False, timeout_s=DIRECTORY_TIMEOUT_S
            )
            data = await answer.json(content_type=None)
            answer.release()
        except (FetchError, ValueError) as error:
            raise ActorError(
                f"the actor directory at {self.directory} did not answer ({error}), "
                f"so where {key} lives is not known here"
            ) from None
        home = data.get("home") if isinstance(data, dict) else None
        if home not in self.peers:
            raise ActorError(f"the actor directory placed {key} at {home!r}, not a PoP here")
        if len(self.homes) >= HOMES_KEPT:
            self.homes.clear()
        self.homes[key] = home
        return home

    async def run_here(self, actor: str, name: str, request: Request) -> Response:
        """Run the request in the worker of the handler deployed here, where the actor lives."""
        handlers = self.pop.handlers
        deployment = handlers.active
        if deployment is None:
            body = f"actor {actor}/{name} lives at {self.pop.name}, where no handler is deployed\n"
            return Response.text(body, 503)
        try:
            worker = await handlers.live_worker(deployment)
            target = {"class": actor, "name": name}
            return await worker.handle(request, deployment.timeout_s, actor=target)
        except HandlerFailed as failure:
            return handlers.failed(request, failure.status, failure.reason, failure.trace)

    async def incoming(self, web_request: web.Request) -> web.StreamResponse:
        """A request another PoP forwarded to an actor living here."""
        given = web_request.headers.get(PEER_SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            return web.Response(status=403, text="actor requests come from PoPs only\n")
        actor, _, name = web_request.headers[ACTOR_HEADER].partition("/")
        if not actor.isidentifier() or not name:
            return web.Response(status=400, text=f"{ACTOR_HEADER}: expected Class/id\n")
        request = await self.pop.incoming(web_request, web_request.rel_url)
        for header in (ACTOR_HEADER, PEER_SECRET_HEADER):
            request.headers.popall(header, None)
        response = await self.run_here(actor, unquote(name), request)
        return await self.pop.send(web_request, response)


def load_actors(path: str) -> dict[str, Any]:
    """The PoP's `--actors` file (root-only: it holds the secret), written by `kit.edge`:

    {"directory": "http://10.x:7100", "peers": {"pop-tokyo": "http://10.x:80", ...},
     "secret": "...", "folder": "/scratch/actors"}   (each PoP's storage under folder/POP)
    """
    with open(path) as file:
        setup = json.load(file)
    peers = setup.get("peers") if isinstance(setup, dict) else None
    if not isinstance(peers, dict) or not all(isinstance(v, str) for v in peers.values()):
        raise ValueError(f"{path}: expected peers as {{pop name: base URL}}")
    for field in ("directory", "secret", "folder"):
        if not isinstance(setup.get(field), str) or not setup[field]:
            raise ValueError(f"{path}: {field!r} is missing")
    return setup
