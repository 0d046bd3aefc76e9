"""A handler worker: the process in which one deployed handler runs.

    python -m kit.runtime.worker --fd 5 --dump-fd 7 --memory-mb 128

A PoP never runs a learner's handler in its own process. asyncio cannot
interrupt code that never awaits (`while True: pass`, `time.sleep(5)`), and
`sys.exit()` or a 2 GB list would end or starve whatever process runs it. So
each deployed handler gets a worker, a child process of its PoP, and the PoP
supervises it (`kit/services/workers.py`): it gives each request a time limit
and, when the worker stops answering, kills it and starts another. That is the
model of the platforms too: an isolate (Workers) or a micro-VM (Lambda@Edge)
per deployment, with limits on time and memory per request.

The worker's life, in messages over the socket pair of `wire.py`:

    worker -> PoP   ready                      (started, nothing loaded yet)
    PoP -> worker   load {source, config}      -> loaded {kind, matcher, cold_start_ms}
                                                  or load_error {error}
    PoP -> worker   request {id, ...} + body   -> response {id, ...} + body
                                                  or error {id, status, reason}
                                                  then done {id}, unless the answer
                                                  was one message (it says done)
    worker -> PoP   call {c, op, ...}          <- reply {c, ...} (a binding: env.origin...)
    PoP -> worker   cancel {id}                (the request ran out of time)

Limits the worker sets on itself before it loads anything:
- memory: its address space may grow by `--memory-mb` past what it uses when
  ready (RLIMIT_AS), so a runaway allocation raises MemoryError in the handler;
- `sys.exit()` in a handler is caught like any other exception: a 500 naming it;
- on SIGUSR1 it writes the Python stack of its main thread to `--dump-fd`
  (faulthandler, which works even while a handler never yields), so the PoP can
  tell the learner on which line a stuck handler was.

The worker dies with its PoP: it asks for PR_SET_PDEATHSIG first thing, and if
the PoP died before that, the worker finds its socket closed and ends.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import faulthandler
import itertools
import json
import os
import resource
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from kit.runtime.actors import ActorError, ActorsBinding, Home
from kit.runtime.bindings import (
    CacheBinding,
    Context,
    DbBinding,
    Env,
    FetchBinding,
    FetchError,
    KvBinding,
    OriginBinding,
    StateBinding,
)
from kit.runtime.http import Request, Response
from kit.runtime.loader import Handler, LoadError, error_reason, load_handler
from kit.runtime.wire import (
    PIECE,
    BodyStreams,
    WireClosed,
    read_message,
    request_fields,
    request_from,
    response_fields,
    response_from,
    send_body,
    write_message,
)

PR_SET_PDEATHSIG = 1  # prctl(2)
AFTER_RESPONSE_LIMIT_S = 30.0  # ctx.wait_until work gets this long


def log(event: str, level: str = "info", **fields: Any) -> None:
    """One JSON line on stdout, which the PoP's log file shares."""
    record = {"ts": round(time.time(), 3), "level": level, "event": event, "service": "worker"}
    print(json.dumps({**record, **fields}, default=str), flush=True)


class PopError(Exception):
    """A binding call that the PoP refused (a bad argument): shown as ValueError."""


class Worker:
    """Serves one handler: requests in, responses and binding calls out."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.handler: Handler | None = None
        self.env: Env | None = None
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.calls: dict[int, asyncio.Future[tuple[dict[str, Any], Any]]] = {}
        self.call_ids = itertools.count(1)
        self.streams = BodyStreams()
        self.background: set[asyncio.Task[Any]] = set()
        self.home: Home | None = None  # the actors living at this PoP (actors.py)

    async def run(self) -> None:
        self.reader, self.writer = await asyncio.open_unix_connection(sock=self.sock)
        write_message(self.writer, {"t": "ready", "pid": os.getpid()})
        try:
            header, _ = await read_message(self.reader)
            if not self.load(header):
                return
            while True:
                header, body = await read_message(self.reader)
                self.dispatch(header, body)
        except WireClosed:
            pass  # the PoP closed the socket: this worker is done

    def load(self, header: dict[str, Any]) -> bool:
        try:
            self.handler = load_handler(header["source"], header.get("matcher"))
        except LoadError as error:
            write_message(self.writer, {"t": "load_error", "error": error.as_dict()})
            return False
        fetch = FetchBinding(self.call)
        self.env = Env(
            origin=OriginBinding(self.call, header["origin"]),
            fetch=fetch,
            cache=CacheBinding(self.call),
            state=StateBinding(self.call),
            config=header.get("config") or {},
            pop=header.get("pop"),
        )
        services = header.get("services") or {}  # what this PoP was started with
        if "db" in services:  # a database: its replica nearest this PoP, and the primary
            db = services["db"]
            self.env.bind("db", DbBinding(fetch, db["replica"], db["primary"]))
        if "kv" in services:  # a KV store's central URL; reads are cached at this PoP
            writer = str(header.get("pop"))
            self.env.bind("kv", KvBinding(fetch, self.env.cache, services["kv"], writer))
        if "actors" in services:  # actors: stubs to any of them; this PoP is home to some
            self.env.bind("actors", ActorsBinding(self.call))
            folder = Path(services["actors"]["folder"])
            self.home = Home(folder, self.handler.namespace, self.env)
        matcher = self.handler.matcher.patterns if self.handler.matcher else None
        write_message(
            self.writer,
            {
                "t": "loaded",
                "kind": self.handler.kind,
                "matcher": matcher,
                "cold_start_ms": self.handler.cold_start_ms,
            },
        )
        return True

    def dispatch(self, header: dict[str, Any], body: bytes) -> None:
        """Route one message from the PoP (runs in the reader loop: never awaits)."""
        kind = header["t"]
        if kind == "request":
            rid = header["id"]
            payload = self.streams.open(f"q{rid}") if header.get("more") else body
            request = request_from(header["request"], payload)
            actor = header.get("actor")  # a request for one of the actors living here
            self.tasks[rid] = asyncio.create_task(self.serve(rid, request, actor))
        elif kind == "cancel":
            task = self.tasks.get(header["id"])
            if task:
                task.cancel()
        elif kind == "reply":
            future = self.calls.get(header["c"])
            payload = self.streams.open(f"c{header['c']}") if header.get("more") else body
            if future and not future.done():
                future.set_result((header, payload))
        elif kind == "chunk":
            self.streams.chunk(header, body)

    # -- one request -------------------------------------------------------

    async def serve(self, rid: int, request: Request, actor: dict[str, str] | None) -> None:
        ctx, ended = Context(), False  # ended: the PoP was told this request is over
        try:
            if actor is None:
                response = await self.run_handler(request, ctx)
            else:
                response = await self.run_actor(actor["class"], actor["name"], request)
            body = await _body(response)
            whole = isinstance(body, bytes) and len(body) <= PIECE  # one message: also the end
            head = {"t": "response", "id": rid, "done": whole, **response_fields(response)}
            await send_body(self.writer, head, f"r{rid}", body)
            ended = whole
        except asyncio.CancelledError:  # the PoP gave up on it (time limit) and answered
            for work in ctx.after_response:
                work.close()
            ctx.after_response.clear()
        except ActorError as error:  # an actor whose home is cut off, not caught
            ended = await self.failed(rid, 503, error)
        except FetchError as error:  # an env.fetch that got no answer, not caught
            ended = await self.failed(rid, 502, error)
        except BaseException as error:  # noqa: BLE001 — sys.exit() included: a handler error
            ended = await self.failed(rid, 500, error)
        finally:
            self.tasks.pop(rid, None)
            if not ended:
                write_message(self.writer, {"t": "done", "id": rid})
        for work in ctx.after_response:
            task = asyncio.create_task(self.after_response(work))
            self.background.add(task)
            task.add_done_callback(self.background.discard)

    async def run_handler(self, request: Request, ctx: Context) -> Response:
        assert self.handler is not None and self.env is not None
        if self.handler.kind == "fetch":
            response = await self.handler.function(request, self.env, ctx)
        else:

            async def next_step(changed: Request | None = None) -> Response:
                return await self.call("next", changed or request)

            response = await self.handler.function(request, self.env, ctx, next_step)
        if not isinstance(response, Response):
            raise TypeError(f"the handler returned {type(response).__name__}, not a Response")
        return response

    async def run_actor(self, class_name: str, name: str, request: Request) -> Response:
        if self.home is None:
            raise LookupError("this PoP was started without actors")
        return await self.home.serve(class_name, name, request)

    async def failed(self, rid: int, status: int, error: BaseException) -> bool:
        """Tell the PoP why the handler failed (an error message also ends the request)."""
        reason, trace = error_reason(error), traceback.format_exc()
        write_message(
            self.writer,
            {"t": "error", "id": rid, "status": status, "reason": reason, "trace": trace},
        )
        await self.writer.drain()
        return True

    async def after_response(self, work: Any) -> None:
        try:
            async with asyncio.timeout(AFTER_RESPONSE_LIMIT_S):
                await work
        except BaseException as error:  # noqa: BLE001 — nobody waits for this work
            log("after_response_error", "error", reason=error_reason(error))

    # -- calls to the PoP (the bindings) -----------------------------------

    async def call(self, op: str, request: Request | None = None, **options: Any) -> Any:
        """Ask the PoP to do `op`; its answer as a Response (or None)."""
        cid = next(self.call_ids)
        future: asyncio.Future[tuple[dict[str, Any], Any]] = asyncio.Future()
        self.calls[cid] = future
        header: dict[str, Any] = {"t": "call", "c": cid, "op": op}
        body = b""
        response = options.pop("response", None)
        if request is not None:
            header["request"] = request_fields(request)
            body = await request.read()
        if response is not None:  # cache.put: the response to store is the body
            header["response"] = response_fields(response)
            body = await response.read()
        header["options"] = options
        try:
            write_message(self.writer, header, body)
            await self.writer.drain()
            reply, payload = await future
        finally:
            self.calls.pop(cid, None)
        if "error" in reply:
            kinds = {"FetchError": FetchError, "ActorError": ActorError}
            raise kinds.get(reply.get("kind", ""), PopError)(reply["error"])
        return None if reply.get("none") else response_from(reply, payload)


async def _body(response: Response) -> Any:
    return response.chunks() if response.is_stream else await response.read()


def limit_memory(megabytes: int) -> None:
    """Let the address space grow by `megabytes` past its size now (RLIMIT_AS)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[0])
    now = pages * os.sysconf("SC_PAGE_SIZE")
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (now + (megabytes << 20), hard))


def die_with_parent() -> None:
    """SIGKILL this process when its parent (the PoP) ends, as a learner's handler may
    never return to read the socket that would tell it."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def main(argv: list[str] | None = None) -> None:
    cli = argparse.ArgumentParser(prog="python -m kit.runtime.worker", description=__doc__)
    cli.add_argument("--fd", type=int, required=True, help="the socket pair's end")
    cli.add_argument("--dump-fd", type=int, required=True, help="where SIGUSR1 writes the stack")
    cli.add_argument("--memory-mb", type=int, default=128, help="memory a handler may use")
    args = cli.parse_args(argv)
    die_with_parent()
    faulthandler.register(signal.SIGUSR1, file=os.fdopen(args.dump_fd, "w"), all_threads=False)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal is for the PoP
    sock = socket.socket(fileno=args.fd)
    limit_memory(args.memory_mb)
    try:
        asyncio.run(Worker(sock).run())
    except KeyboardInterrupt:
        sys.exit(1)


if __name__ == "__main__":
    main()
