"""Handler workers, seen from the PoP: start, load, call with a time limit, restart.

A PoP runs each deployed handler in a worker process of its own
(`kit/runtime/worker.py` is the worker's side; `kit/runtime/wire.py` the
messages between them). This module is the supervisor:

- `Worker` is one process and the PoP's end of its socket pair. `handle()`
  sends a request and waits for the head of the answer within the handler's
  time limit, then for each piece of a streamed body within the same limit.
- When a limit runs out, the PoP answers the client 504 at once and tells the
  worker to cancel the request. A worker whose event loop is free confirms
  within `GRACE_S`; one that does not is stuck in code that never yields (a CPU
  loop, `time.sleep`, a blocking socket). The PoP then reads where it is stuck
  (SIGUSR1 makes the worker's faulthandler write its stack to a pipe), puts
  that line in the 504, and kills the worker. Every other request on that
  worker fails with a 503 that says why; the next request gets a new worker.
- A worker that exits (`os._exit`, a crash, out of memory) fails its requests
  with a 500 saying so, and is replaced the same way.
- `Spares` keeps one worker started and idle, so that a deploy loads code into
  a process that is already running: the handler's cold start is the time to
  load its code, as with an isolate, not the time to start Python.
- `Deployment` is one loaded handler: its source (to load it again into a new
  worker after a restart), its matcher, limits and version.

While a handler misbehaves, the PoP's own process never runs handler code, so
it keeps serving cached content and every other path.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kit.runtime.actors import ActorError
from kit.runtime.bindings import FetchError
from kit.runtime.http import Request, Response
from kit.runtime.loader import LoadError
from kit.runtime.matcher import Matcher
from kit.runtime.wire import (
    BodyCut,
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

GRACE_S = 0.5  # a free event loop confirms a cancel well within this
START_LIMIT_S = 40.0  # starting Python on a busy 2-core VM (20 s was seen to run out)
LOAD_LIMIT_S = 10.0
SPARE_NICE = 10  # a spare worker starts at this CPU priority (see Spares)
REFILL_AFTER_S = 0.05  # the next spare is forked this long after one is taken

# A binding served by the PoP: (op, request, options, response to store) -> answer.
Bindings = Callable[[str, Request | None, dict[str, Any], Response | None], Awaitable[Any]]


class HandlerFailed(Exception):
    """A request the handler did not answer: the status and reason the client gets."""

    def __init__(self, status: int, reason: str, trace: str = "") -> None:
        super().__init__(reason)
        self.status, self.reason, self.trace = status, reason, trace


@dataclass
class InFlight:
    """One request inside a worker: the head of its answer, and whether it finished."""

    head: asyncio.Future[tuple[dict[str, Any], Any]]
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Worker:
    """One worker process (see the module docstring)."""

    def __init__(self, memory_mb: int, nice: int = 0) -> None:
        self.memory_mb, self.nice = memory_mb, nice  # nice: its CPU priority (see Spares)
        self.proc: subprocess.Popen | None = None
        self.ids = itertools.count(1)
        self.in_flight: dict[int, InFlight] = {}
        self.streams = BodyStreams()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.death: str | None = None  # why this worker is gone, once it is
        self.bindings: Bindings | None = None
        self.source = ""

    async def start(self) -> Worker:
        """Start the process (at CPU priority ``self.nice``) and wait until it says it is ready.

        No code runs in the child between fork and exec (no ``preexec_fn``, which is
        unsafe in a process with threads, and would hold this event loop until the
        child, already at low priority, reached exec): the worker asks for
        PR_SET_PDEATHSIG itself, and the priority is set from here.
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        dump_read, dump_write = os.pipe()
        os.set_blocking(dump_read, False)
        started = time.perf_counter()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kit.runtime.worker", "--fd", str(theirs.fileno())]
                + ["--dump-fd", str(dump_write), "--memory-mb", str(self.memory_mb)],
                pass_fds=(theirs.fileno(), dump_write),
                stdin=subprocess.DEVNULL,
            )
            self.renice(self.nice)
        finally:
            theirs.close()
            os.close(dump_write)
        self.dump_fd = dump_read
        self.reader, self.writer = await asyncio.open_unix_connection(sock=ours)
        try:
            async with asyncio.timeout(START_LIMIT_S):
                header, _ = await read_message(self.reader)
        except (TimeoutError, WireClosed):
            self.kill("did not start")
            raise RuntimeError(f"handler worker did not start: {self.death}") from None
        assert header["t"] == "ready", header
        self.start_ms = (time.perf_counter() - started) * 1000
        return self

    def renice(self, nice: int) -> None:
        """Set the process's CPU priority (before it starts: the one it will start at)."""
        self.nice = nice
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.setpriority(os.PRIO_PROCESS, self.proc.pid, nice)

    async def load(
        self,
        source: str,
        config: dict[str, Any],
        matcher: list[str] | None,
        pop: str,
        origin: str,
        bindings: Bindings,
        services: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Load a handler; its "loaded" message, or LoadError (the worker is then killed).

        ``matcher``, if given, replaces the handler's own ``config["matcher"]``;
        ``services`` are the PoP's ({"db": {"replica", "primary"}, "kv": url}): the
        worker binds ``env.db`` and ``env.kv`` for those it names.
        """
        self.bindings, self.source = bindings, source
        message = {"t": "load", "source": source, "config": config, "pop": pop, "origin": origin}
        message["matcher"], message["services"] = matcher, services or {}
        try:
            write_message(self.writer, message)
            async with asyncio.timeout(LOAD_LIMIT_S):
                header, _ = await read_message(self.reader)
        except TimeoutError:
            line = await self.stuck_line()
            self.kill("loading ran past its limit")
            raise LoadError(
                f"loading the handler ran past its limit of {LOAD_LIMIT_S:g} s",
                *(line or (None, "")),
            ) from None
        except (WireClosed, ConnectionError):
            code = self.exit_code()
            self.kill("exited while loading")
            raise LoadError(
                f"the handler's process exited with status {code} while loading "
                "(os._exit() at import?)"
            ) from None
        if header["t"] == "load_error":
            self.kill("load error")
            error = header["error"]
            raise LoadError(error["reason"], error.get("line"), error.get("text"), error["trace"])
        reading = asyncio.create_task(self.read_loop())
        self.tasks.add(reading)
        return header

    @property
    def alive(self) -> bool:
        return self.death is None

    # -- requests -----------------------------------------------------------

    async def handle(
        self, request: Request, timeout_s: float, actor: dict[str, str] | None = None
    ) -> Response:
        """The handler's answer to one request, or HandlerFailed. With `actor`
        ({"class", "name"}), the answer of that actor living in this worker."""
        if not self.alive:
            raise HandlerFailed(503, f"the handler's worker is gone: {self.death}")
        rid = next(self.ids)
        flight = InFlight(asyncio.get_running_loop().create_future())
        self.in_flight[rid] = flight
        try:
            head = {"t": "request", "id": rid, "request": request_fields(request)}
            if actor is not None:
                head["actor"] = actor
            await send_body(self.writer, head, f"q{rid}", await request.read())
            async with asyncio.timeout(timeout_s):
                header, payload = await flight.head
        except TimeoutError:
            await self.give_up(rid, timeout_s)
        except (WireClosed, ConnectionError):
            self.in_flight.pop(rid, None)
            raise HandlerFailed(503, f"the handler's worker is gone: {self.death}") from None
        if header["t"] == "error":
            raise HandlerFailed(header["status"], header["reason"], header.get("trace", ""))
        if header.get("more"):
            payload = self.watch_stream(rid, payload, timeout_s)
        return response_from(header, payload)

    async def watch_stream(
        self, rid: int, pieces: AsyncIterator[bytes], timeout_s: float
    ) -> AsyncIterator[bytes]:
        """A streamed body, each piece within the time limit."""
        while True:
            try:
                async with asyncio.timeout(timeout_s):
                    piece = await anext(pieces)
            except StopAsyncIteration:
                return
            except TimeoutError:
                await self.give_up(rid, timeout_s, " between two pieces of its streamed body")
            yield piece

    async def give_up(self, rid: int, timeout_s: float, when: str = "") -> None:
        """The request ran out of time: cancel it; kill the worker if it cannot."""
        flight = self.in_flight.get(rid)
        reason = f"the handler ran past its time limit of {timeout_s:g} s{when}"
        with contextlib.suppress(ConnectionError):
            write_message(self.writer, {"t": "cancel", "id": rid})
        if flight is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(GRACE_S):
                    await flight.done.wait()
            if not flight.done.is_set():  # its event loop is not running: stuck
                line = await self.stuck_line()
                where = f"; it was at handler.py line {line[0]}: {line[1]}" if line else ""
                reason += f" without ever yielding (a CPU loop or a blocking call?){where}"
                self.in_flight.pop(rid, None)
                self.kill(
                    f"the handler's worker was restarted because of another request: {reason}"
                )
        self.in_flight.pop(rid, None)
        raise HandlerFailed(504, reason)

    # -- messages from the worker --------------------------------------------

    async def read_loop(self) -> None:
        try:
            while True:
                header, body = await read_message(self.reader)
                self.dispatch(header, body)
        except WireClosed:
            pass
        if self.alive:
            code = self.exit_code()
            hint = " (os._exit() or a crash in the handler?)" if code is not None else ""
            self.kill(f"the handler's worker exited with status {code}{hint}", status=500)

    def dispatch(self, header: dict[str, Any], body: bytes) -> None:
        """Route one message from the worker (runs in the reader loop: never awaits)."""
        kind = header["t"]
        if kind in ("response", "error"):
            flight = self.in_flight.get(header["id"])
            payload = self.streams.open(f"r{header['id']}") if header.get("more") else body
            if flight and not flight.head.done():
                flight.head.set_result((header, payload))
        if kind == "done" or kind == "error" or header.get("done"):
            flight = self.in_flight.pop(header["id"], None)
            if flight:
                flight.done.set()
        if kind == "chunk":
            self.streams.chunk(header, body)
        elif kind == "call":
            task = asyncio.create_task(self.serve_call(header, body))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def serve_call(self, header: dict[str, Any], body: bytes) -> None:
        """Run a binding for the handler (env.origin.fetch, env.cache.put, ...)."""
        assert self.bindings is not None
        cid, op = header["c"], header["op"]
        request = request_from(header["request"], body) if "request" in header else None
        stored = response_from(header["response"], body) if "response" in header else None
        reply: dict[str, Any] = {"t": "reply", "c": cid}
        try:
            result = await self.bindings(op, request, header.get("options") or {}, stored)
        except FetchError as error:  # the worker raises the same kind in the handler
            kind = "ActorError" if isinstance(error, ActorError) else "FetchError"
            result, reply["error"], reply["kind"] = None, str(error), kind
        except (ValueError, TypeError, KeyError) as error:
            result, reply["error"], reply["kind"] = None, str(error), type(error).__name__
        try:
            if not isinstance(result, Response):
                write_message(self.writer, {**reply, "none": True, "more": False})
            else:
                reply.update(response_fields(result))
                body_out = result.chunks() if result.is_stream else await result.read()
                await send_body(self.writer, reply, f"c{cid}", body_out)
        except (ConnectionError, BodyCut):
            pass  # the worker is gone, or the upstream body broke off: it sees a cut stream

    # -- the end ------------------------------------------------------------

    async def stuck_line(self) -> tuple[int, str] | None:
        """Where the worker's main thread is now (handler.py line, source), via SIGUSR1."""
        if self.proc.poll() is not None or self.dump_fd < 0:
            return None  # it has ended (and its pid may be another process's by now)
        self.proc.send_signal(signal.SIGUSR1)
        dump = b""
        for _ in range(50):  # faulthandler writes at once, from its signal handler
            await asyncio.sleep(0.01)
            with contextlib.suppress(BlockingIOError, OSError):
                dump += os.read(self.dump_fd, 65536)
            if b"most recent call first" in dump and dump.endswith(b"\n"):
                break
        found = re.search(rb'File "handler\.py", line (\d+)', dump)
        if not found:
            return None
        line = int(found[1])
        lines = self.source.splitlines()
        return line, lines[line - 1].strip() if 0 < line <= len(lines) else ""

    def exit_code(self) -> int | None:
        try:
            return self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return None

    def kill(self, why: str, status: int = 503) -> None:
        """End the process; every request still inside it fails with `why`.

        A worker can be killed more than once (evicted, then retired): every step
        here must be safe to repeat."""
        if self.death is None:
            self.death = why
        if self.proc.poll() is None:
            self.proc.kill()
        # SIGKILL ends it at once, unless it is inside a disk write: this event loop
        # serves every request of the PoP, so wait a little, and let Python reap it later.
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1)
        self.writer.close()
        if self.dump_fd >= 0:  # once: closing it again could close whatever reuses its number
            os.close(self.dump_fd)
            self.dump_fd = -1
        gone = HandlerFailed(status, why)
        for flight in self.in_flight.values():
            if not flight.head.done():
                flight.head.set_exception(gone)
            flight.done.set()
        self.in_flight.clear()
        self.streams.fail_all(BodyCut(why))
        for task in list(self.tasks):
            if task is not asyncio.current_task():
                task.cancel()


class Spares:
    """One started, idle worker kept ready, so a deploy does not wait for Python to start.

    The next spare starts just after one is taken (`REFILL_AFTER_S`: forking
    happens in the PoP's process), at a lower CPU priority (nice `SPARE_NICE`):
    starting Python takes a core for about 100 ms, and must not slow the request
    or the deploy that has just taken the spare (its cold start is what a chapter
    times). A spare that is taken gets normal priority at once, even while it is
    still starting: a deploy waiting for it must not wait behind every busy process.
    """

    def __init__(self, memory_mb: int) -> None:
        self.memory_mb = memory_mb
        # The spare, and its start (the worker is known before it is ready: see take).
        self.next: tuple[Worker, asyncio.Task[Worker]] | None = None

    def prepare(self) -> None:
        if self.next is None:
            spare = Worker(self.memory_mb, nice=SPARE_NICE)
            self.next = spare, asyncio.create_task(spare.start())

    async def ready(self) -> None:
        """Wait until a spare is started and idle (without taking it)."""
        self.prepare()
        assert self.next is not None
        await asyncio.shield(self.next[1])

    async def take(self) -> Worker:
        """A ready worker (the spare if there is one); the next spare starts right after."""
        self.prepare()
        assert self.next is not None
        (spare, started), self.next = self.next, None
        spare.renice(0)
        # Forking Python is done in this process: after the request at hand is served.
        asyncio.get_running_loop().call_later(REFILL_AFTER_S, self.prepare)
        return await started

    async def close(self) -> None:
        if self.next is not None:
            (_, started), self.next = self.next, None
            started.cancel()
            with contextlib.suppress(BaseException):
                (await started).kill("the PoP stopped")


@dataclass
class Deployment:
    """A handler loaded in a worker, with what it needs to be loaded again."""

    source: str
    config: dict[str, Any]
    matcher_given: list[str] | None  # deploy(matcher=...), instead of the handler's own
    timeout_s: float
    worker: Worker
    loaded: dict[str, Any]
    version: int = 0
    deployed_at: float = field(default_factory=time.time)
    restarts: int = 0
    matcher: Matcher | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one restart at a time

    def __post_init__(self) -> None:
        patterns = self.loaded.get("matcher")
        self.matcher = Matcher(patterns) if patterns else None

    @property
    def kind(self) -> str:
        return self.loaded["kind"]

    def matches(self, path: str) -> dict[str, str] | None:
        """The matcher's params for this path, or None if the handler should not run."""
        return self.matcher.match(path) if self.matcher else {}

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "matcher": self.loaded.get("matcher"),
            "version": self.version,
            "cold_start_ms": round(self.loaded["cold_start_ms"], 3),
            "timeout_s": self.timeout_s,
            "deployed_at": self.deployed_at,
            "restarts": self.restarts,
            "worker_pid": self.worker.proc.pid if self.worker.alive else None,
        }
