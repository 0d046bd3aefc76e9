"""Actors in the shape of Durable Objects: one instance per id, one place, one request at a time.

A handler module may define actor classes beside its handler:

    class Counter:
        def __init__(self, state, env):
            self.state = state                          # state.id, state.storage

        async def fetch(self, request):
            hits = await self.state.storage.get("hits") or 0
            await self.state.storage.put("hits", hits + 1)
            return Response.json({"hits": hits + 1})

    async def fetch(request, env, ctx):
        counter = env.actors.get("Counter", "front-page")   # a stub: nothing runs yet
        return await counter.fetch("/hit", method="POST")

What the kit guarantees, as Cloudflare's Durable Objects do:

- **One instance per (class, id) in the world.** It lives at one PoP, its home:
  the PoP of its first caller, or the PoP named by `location=` on the first
  call. A central directory (next to the KV store) records the home, the first
  claim wins, and it never moves. Every other PoP forwards the stub's requests
  there over the emulated network (`kit/services/pop_actors.py`).
- **An input gate.** The home runs one request of an object at a time: the next
  waits until the previous has answered. So a read-modify-write inside `fetch`
  cannot interleave with another one, unlike a read and a write of KV.
- **Storage that is the object's own.** `state.storage` is a SQLite file per
  object at its home: `get`, `put` (one key, or a dict of keys written in one
  transaction), `delete`, `list`. Each write is committed before its `await`
  returns, and a read sees only committed writes. The instance itself is just
  memory: when the worker is replaced (a stuck handler, an eviction, a new
  deploy) the next request builds a new one, which finds only what was stored.
- **No second copy.** When the home cannot be reached, `stub.fetch` raises
  `ActorError` naming the home. Nobody else answers for it, so a caller sees an
  error, never stale or split state. An error does not mean "not done": a request
  that reached the home before the cut may still run there, and its answer is
  what was lost. A caller that retries should send an idempotency key.

Unlike Durable Objects there is no output gate: a response is sent when `fetch`
returns, so an actor that answers before its write has completed (a write put
in `ctx.wait_until`, or a task left running) can tell a caller something that
the next request does not find. Await the write, then answer.

This module is the worker's side: the `env.actors` binding and the instances at
the home. The storage runs in the worker, in threads (`asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import sqlite3
from pathlib import Path
from typing import Any

from kit.runtime.bindings import Calls, Env, FetchError
from kit.runtime.http import Request, Response

MAX_NAME_BYTES = 256  # an actor id
MAX_VALUE_BYTES = 128 << 10  # one stored value, as JSON (Durable Objects: 128 KiB)
MAX_KEY_BYTES = 2048  # Durable Objects: 2 KiB
LIST_LIMIT = 1000


class ActorError(FetchError):
    """A stub's request reached no instance: its home is cut off, or the directory is."""


class ActorsBinding:
    """`env.actors`: stubs of actors, by class name and id (see the module docstring)."""

    def __init__(self, calls: Calls) -> None:
        self._calls = calls

    def get(self, class_name: str, name: str, *, location: str | None = None) -> ActorStub:
        """The stub of the actor `name` of class `class_name` (defined in the handler module).

        `location` (a PoP's name) is where it lives if this call is the first for it;
        otherwise it lives at the PoP of its first caller.
        """
        if not isinstance(class_name, str) or not class_name.isidentifier():
            raise ValueError(f"an actor class is named by its Python name, not {class_name!r}")
        if not isinstance(name, str) or not name or len(name.encode()) > MAX_NAME_BYTES:
            raise ValueError(f"an actor id is a string of 1 to {MAX_NAME_BYTES} bytes")
        return ActorStub(self._calls, class_name, name, location)


class ActorStub:
    """A way to send requests to one actor, wherever it lives."""

    def __init__(self, calls: Calls, class_name: str, name: str, location: str | None) -> None:
        self._calls, self.class_name, self.name, self.location = calls, class_name, name, location

    async def fetch(
        self,
        target: Request | str = "/",
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: bytes | str = b"",
    ) -> Response:
        """Send a request (a Request, or a path such as "/add") to the actor's `fetch`."""
        if isinstance(target, str):
            target = Request(target, method, headers, body)
        answer = await self._calls(
            "actor", target, actor=self.class_name, name=self.name, location=self.location
        )
        assert answer is not None
        return answer

    def __repr__(self) -> str:
        return f"<actor {self.class_name}/{self.name}>"


class Storage:
    """`state.storage`: one actor's SQLite file of JSON values by key."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with contextlib.closing(self._open()) as db:
            db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def _open(self) -> sqlite3.Connection:
        # One connection per operation, in whichever thread runs it: WAL lets a read
        # run beside a write, and a read sees only what was committed before it.
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    async def get(self, key: str) -> Any:
        """The value stored under `key`, or None."""
        return await asyncio.to_thread(self._get, _checked_key(key))

    async def put(self, key: str | dict[str, Any], value: Any = None) -> None:
        """Store `value` under `key`, or every key of a dict in one transaction."""
        entries = key if isinstance(key, dict) else {key: value}
        rows = [(_checked_key(k), _encoded(v)) for k, v in entries.items()]
        await asyncio.to_thread(self._write, rows, [])

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._write, [], [_checked_key(key)])

    async def list(self, prefix: str = "") -> dict[str, Any]:
        """Every key starting with `prefix` and its value, in key order (at most LIST_LIMIT)."""
        return await asyncio.to_thread(self._list, str(prefix))

    def _get(self, key: str) -> Any:
        with contextlib.closing(self._open()) as db:
            row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def _write(self, rows: list[tuple[str, str]], deleted: list[str]) -> None:
        db = self._open()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", rows)
            db.executemany("DELETE FROM kv WHERE key = ?", [(k,) for k in deleted])
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def _list(self, prefix: str) -> dict[str, Any]:
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with contextlib.closing(self._open()) as db:
            rows = db.execute(
                "SELECT key, value FROM kv WHERE key LIKE ? ESCAPE '\\' ORDER BY key LIMIT ?",
                (pattern, LIST_LIMIT),
            ).fetchall()
        return {key: json.loads(value) for key, value in rows}


def _checked_key(key: Any) -> str:
    if not isinstance(key, str) or not key or len(key.encode()) > MAX_KEY_BYTES:
        raise ValueError(f"a storage key is a string of 1 to {MAX_KEY_BYTES} bytes, not {key!r}")
    return key


def _encoded(value: Any) -> str:
    try:
        data = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"actor storage holds JSON values: {error}") from None
    if len(data.encode()) > MAX_VALUE_BYTES:
        raise ValueError(f"a stored value of {len(data)} bytes: at most {MAX_VALUE_BYTES}")
    return data


class ActorState:
    """What an actor's constructor gets: its id and its storage."""

    def __init__(self, name: str, storage: Storage) -> None:
        self.id, self.storage = name, storage


class Home:
    """The actors living at this PoP, in its worker: instances, input gates, storage files."""

    def __init__(self, folder: Path, namespace: dict[str, Any], env: Env) -> None:
        self.folder, self.namespace, self.env = folder, namespace, env
        self.instances: dict[tuple[str, str], Any] = {}
        self.gates: dict[tuple[str, str], asyncio.Lock] = {}

    async def serve(self, class_name: str, name: str, request: Request) -> Response:
        """Run one request through the actor's input gate: one at a time per object."""
        key = (class_name, name)
        gate = self.gates.setdefault(key, asyncio.Lock())
        async with gate:
            actor = self.instances.get(key) or self._construct(class_name, name)
            self.instances[key] = actor
            response = await actor.fetch(request)
        if not isinstance(response, Response):
            raise TypeError(
                f"{class_name}.fetch returned {type(response).__name__}, not a Response"
            )
        return response

    def _construct(self, class_name: str, name: str) -> Any:
        cls = self.namespace.get(class_name)
        if not (inspect.isclass(cls) and inspect.iscoroutinefunction(getattr(cls, "fetch", None))):
            raise LookupError(
                f"the deployed handler has no actor class {class_name!r} "
                "(a class with an `async def fetch(self, request)`)"
            )
        digest = hashlib.sha256(name.encode()).hexdigest()[:32]  # any id is a safe file name
        folder = self.folder / class_name
        folder.mkdir(parents=True, exist_ok=True)
        return cls(ActorState(name, Storage(folder / f"{digest}.sqlite")), self.env)
