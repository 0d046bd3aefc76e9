"""A key-value store in the shape of Workers KV: written centrally, read from PoP caches.

    python -m kit.services.kv --port 7100

Workers KV keeps its data in a few central stores and caches it in each location
that reads it, for `cacheTtl` seconds (60 by default). So a read is fast where a
key is popular, a write is one trip to the centre, and another location sees the
new value only when its cached copy expires: eventually consistent, by design.

This service is the central store. The caching is the PoP's own HTTP cache: the
`env.kv` binding (`kit/runtime/bindings.py`) looks a key up in `env.cache`, and on
a miss fetches it from here and stores the answer for the reader's `cache_ttl_s`.
That includes a key that is missing (a 404, negative-cached like a value), so a
key written after a PoP found it missing stays missing there until the copy
expires. The propagation delay is that TTL, chosen by the reader as in Workers.

Conflicting writes resolve as **last write wins**: each write carries the time
it was made at (`x-kv-at`, the writer's clock), and the store keeps the latest;
a write older than the stored one is acknowledged and dropped (`"kept": false`),
as are deletes (kept as tombstones with their time). Ties go to the larger
writer id (`x-kv-writer`), so every store would pick the same winner.

Data plane:

    GET    /kv/KEY      the value (bytes), x-kv-at; 404 if missing or deleted
    PUT    /kv/KEY      body = the value; headers x-kv-at, x-kv-writer: {"kept": bool}
    DELETE /kv/KEY      headers x-kv-at, x-kv-writer: {"kept": bool}
    GET    /kv?prefix=P {"keys": [...]} (at most LIST_LIMIT, sorted)

Limits as Workers KV documents them: keys up to 512 bytes, values up to
`MAX_VALUE_BYTES` (smaller than Workers' 25 MiB: this is a laptop); the whole
store up to `MAX_STORE_BYTES`, past which a write gets 507.

The same process is the actors' placement directory (`kit/services/pop_actors.py`),
because it is the one central place of the world's edge data:

    POST   /placement   {"actor": "Class/id", "pop": "pop-x"}: {"home": "pop-..."}

The first claim for an actor wins and is never changed: the answer is the PoP it
lives at, whoever asks. At most `MAX_PLACEMENTS` actors are placed (507 past it).
Only PoPs may ask: a claim must carry the edge's peer secret (`PEER_SECRET_HEADER`),
which `kit.edge` hands the directory on the control socket when it starts PoPs
with actors. Otherwise any world host could claim an actor first and place it
at the far side of the world; without it, a claim gets 403.

Control plane: `POST /_kit/kv/peers {"secret"}` sets that secret (a new edge
replaces it); `DELETE /_kit/kv` forgets every key (not the placements, whose
actors' storage is still at their homes); metrics count reads, writes, stale
writes dropped and actors placed.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from aiohttp import web

from kit.control import protocol
from kit.services.common import Log, Metrics, Served, json_error, make_apps, parser, serve

MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 1 << 20
MAX_STORE_BYTES = 64 << 20
LIST_LIMIT = 1000
MAX_PLACEMENTS = 100_000
PEER_SECRET_HEADER = "x-edge-peer-secret"  # only PoPs know it (kit/services/pop_actors.py)


@dataclass(frozen=True)
class Version:
    """When a value was written, and by whom: the order last-write-wins compares."""

    at: float
    writer: str

    def newer_than(self, other: Version | None) -> bool:
        return other is None or (self.at, self.writer) > (other.at, other.writer)


class Store:
    """Values by key with their versions; deletes are tombstones (value None)."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[bytes | None, Version]] = {}
        self.bytes = 0

    def get(self, key: str) -> tuple[bytes, Version] | None:
        found = self.entries.get(key)
        if found is None or found[0] is None:
            return None
        return found[0], found[1]

    def write(self, key: str, value: bytes | None, version: Version) -> bool:
        """Apply a put (value) or a delete (None) if it is the newest; True if it was."""
        old = self.entries.get(key)
        if not version.newer_than(old[1] if old else None):
            return False
        old_size = len(old[0] or b"") if old else 0
        if self.bytes - old_size + len(value or b"") > MAX_STORE_BYTES:
            raise StoreFull(f"the store holds at most {MAX_STORE_BYTES >> 20} MB")
        self.entries[key] = (value, version)
        self.bytes += len(value or b"") - old_size
        return True

    def keys(self, prefix: str) -> list[str]:
        live = (k for k, (v, _) in self.entries.items() if v is not None and k.startswith(prefix))
        return sorted(live)[:LIST_LIMIT]


class StoreFull(Exception):
    """A write that would take the store past its size."""


def _key(request: web.Request) -> str:
    key = request.match_info["key"]
    if not 0 < len(key.encode()) <= MAX_KEY_BYTES:
        raise ValueError(f"a key is 1 to {MAX_KEY_BYTES} bytes")
    return key


def _version(request: web.Request) -> Version:
    at = float(request.headers.get("x-kv-at", "nan"))
    if not at == at or at < 0:  # NaN or negative: no time given
        raise ValueError("send x-kv-at: the time of the write, in seconds since the epoch")
    return Version(at, request.headers.get("x-kv-writer", "")[:100])


class KvService:
    """The routes (see the module docstring)."""

    def __init__(self, metrics: Metrics) -> None:
        self.store, self.metrics = Store(), metrics
        self.homes: dict[str, str] = {}  # actor "Class/id" -> the PoP it lives at
        self.peer_secret: str | None = None  # set by kit.edge; until then nobody places

    async def get_route(self, request: web.Request) -> web.Response:
        self.metrics.count("reads")
        found = self.store.get(_key(request))
        if found is None:
            return json_error(404, "no such key")
        value, version = found
        return web.Response(body=value, headers={"x-kv-at": repr(version.at)})

    async def put_route(self, request: web.Request) -> web.Response:
        key, version = _key(request), _version(request)
        value = await request.read()
        if len(value) > MAX_VALUE_BYTES:
            return json_error(413, f"a value is at most {MAX_VALUE_BYTES} bytes")
        return self._write(key, value, version)

    async def delete_route(self, request: web.Request) -> web.Response:
        return self._write(_key(request), None, _version(request))

    def _write(self, key: str, value: bytes | None, version: Version) -> web.Response:
        try:
            kept = self.store.write(key, value, version)
        except StoreFull as error:
            return json_error(507, str(error))
        self.metrics.count("writes" if kept else "stale_writes")
        return web.json_response({"kept": kept})

    async def list_route(self, request: web.Request) -> web.Response:
        return web.json_response({"keys": self.store.keys(request.query.get("prefix", ""))})

    async def placement_route(self, request: web.Request) -> web.Response:
        """Where an actor lives: the first claim for it, kept for ever."""
        given = request.headers.get(PEER_SECRET_HEADER, "").encode()
        if self.peer_secret is None or not hmac.compare_digest(given, self.peer_secret.encode()):
            return json_error(403, "actors are placed by PoPs only")
        try:
            claim = await request.json()
            actor, pop = claim["actor"], claim["pop"]
            if not (isinstance(actor, str) and isinstance(pop, str)) or not actor or not pop:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return json_error(400, 'send {"actor": "Class/id", "pop": "pop-name"}')
        if len(actor.encode()) > MAX_KEY_BYTES or len(pop) > 100:
            return json_error(400, "an actor or PoP name that long is not one")
        home = self.homes.get(actor)
        if home is None:
            if len(self.homes) >= MAX_PLACEMENTS:
                return json_error(507, f"at most {MAX_PLACEMENTS} actors are placed")
            home = self.homes[actor] = pop
            self.metrics.count("placed")
        return web.json_response({"home": home})

    async def peers_route(self, request: web.Request) -> web.Response:
        body = await request.json()
        secret = body.get("secret") if isinstance(body, dict) else None
        if not isinstance(secret, str) or len(secret) < 16:
            return json_error(400, 'send {"secret": "..."} (16 characters or more)')
        self.peer_secret = secret
        return web.json_response({"ok": True})

    async def forget_route(self, request: web.Request) -> web.Response:
        forgotten = len(self.store.entries)
        self.store = Store()
        return web.json_response({"forgotten": forgotten})


def main(argv: list[str] | None = None) -> None:
    cli = parser("kv", "A key-value store in the shape of Workers KV (the central store).")
    args = cli.parse_args(argv)
    log = Log("kv")
    metrics = Metrics("kv", ("reads", "writes", "stale_writes", "placed"))
    kv = KvService(metrics)
    served = Served.of(args)
    planes = make_apps("kv", served, metrics, log)
    data = planes.data.router
    data.add_get("/kv", kv.list_route)
    data.add_get("/kv/{key:.+}", kv.get_route)
    data.add_put("/kv/{key:.+}", kv.put_route)
    data.add_delete("/kv/{key:.+}", kv.delete_route)
    data.add_post("/placement", kv.placement_route)
    planes.control.router.add_delete(protocol.KV, kv.forget_route)
    planes.control.router.add_post(protocol.KV_PEERS, kv.peers_route)
    serve(planes, served, log)


if __name__ == "__main__":
    main()
