"""What every service shares: CLI, health, metrics, logs, limits and errors.

- `parser(name)`: argparse with `--host` (loopback unless told), `--port`,
  `--unix`, `--max-body-kb`, `--log-sample`; each service adds its own options.
- `Metrics`: counters and a latency histogram, served as JSON at
  `GET /_kit/metrics` (`POST /_kit/metrics/reset` zeroes them), with the
  connection guard's counts under `"guard"`: requests refused before any route
  saw them (bad headers, versions, sizes), connections shed, timed out or open.
- `GET /_kit/health`: `{"status": "ok", "service": NAME, ...}`.
- `Log`: one JSON object per line on stdout. Successful requests are logged at
  `--log-sample` (a fraction; a log line per cached hit would cost more than
  serving the hit), errors always.
- `make_apps`: two aiohttp apps, one per plane (below), with body/header limits
  and a middleware that turns bad input into a 4xx with a reason, and any other
  exception into a JSON 500 (the traceback goes to the log, not the client).
- `Served`: what every service is told on its command line (where to listen,
  body limit, log sampling), typed; `Served.of(args)` reads it from `parser`'s.
- `serve(planes, served)`: run them; prints `{"event": "listening", "port": N}`
  once both listen, so `--port 0` (any free port) can be used by tests.

Two planes
----------
Services run as root, and anyone on the emulated network can reach their TCP
port. So what a service *does* and what *changes* it are served apart:

- the **data plane** (`planes.data`) is the TCP port: users' requests, timed
  and counted in the metrics. Every `/_kit/...` path on it answers 404.
- the **control plane** (`planes.control`) is the Unix socket `--unix PATH`,
  made root-only (mode 0600): health, metrics, and whatever a service adds
  (deploys, config, purges). A world host is a network namespace that the
  notebook cannot reach over IP; a path in the filesystem it can, so a notebook
  deploys handlers and reads metrics through the socket while users' requests
  stay on the emulated network. A service started without `--unix` has no
  control plane at all. The socket file is removed when the service exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import stat
import sys
import time
import traceback
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kit.control import protocol
from kit.services.guard import HTTP_LIMITS, Guard, log_errors_through

LATENCY_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
CONTROL_PREFIX = "/_kit/"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Served:
    """Where and how a service serves: the options every service shares."""

    host: str = "127.0.0.1"
    port: int = 8080
    unix: str | None = None  # the control socket; None: no control plane
    max_body_kb: int = 1024
    log_sample: float = 0.01

    @classmethod
    def of(cls, args: argparse.Namespace) -> Served:
        """From the options `parser` defines."""
        return cls(args.host, args.port, args.unix, args.max_body_kb, args.log_sample)


def parser(service: str, description: str) -> argparse.ArgumentParser:
    """The command line every service starts from."""
    cli = argparse.ArgumentParser(prog=f"python -m kit.services.{service}", description=description)
    cli.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every address)"
    )
    cli.add_argument("--port", type=int, default=8080, help="port (0 = any free port)")
    cli.add_argument(
        "--unix", metavar="PATH", help="serve the control plane on this Unix socket (root-only)"
    )
    cli.add_argument("--max-body-kb", type=int, default=1024, help="largest request body")
    cli.add_argument(
        "--log-sample",
        type=float,
        default=0.01,
        help="fraction of successful requests to log (errors are always logged)",
    )
    return cli


class Log:
    """Structured logs: one JSON object per line on stdout.

    Warnings and errors are rate-limited per event: a hostile client can make
    one repeat thousands of times a second (a bad request, accept() out of file
    descriptors), and a log growing by megabytes a second is an outage of its
    own. The first `BURST` lines of an event in a second are written, the rest
    counted; `flush()` (the connection guard calls it every second) and the
    event's next line after the second write `{"event": "suppressed", "of":
    EVENT, "count": N}`.
    """

    BURST = 5  # lines per second of one warning or error event

    def __init__(self, service: str, **fields: Any) -> None:
        self.fields = {"service": service, **fields}
        self.windows: dict[str, tuple[float, int]] = {}  # event -> (second began, lines)

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        if level == "info" or self._admit(event):
            self._write(event, level, fields)

    def flush(self, everything: bool = False) -> None:
        """Write the count of lines suppressed in every second that is over (or all)."""
        now = time.monotonic()
        for event, (began, lines) in list(self.windows.items()):
            if everything or now - began >= 1:
                del self.windows[event]
                self._summarise(event, lines)

    def _admit(self, event: str) -> bool:
        now = time.monotonic()
        began, lines = self.windows.get(event, (now, 0))
        if now - began >= 1:
            self._summarise(event, lines)
            began, lines = now, 0
        self.windows[event] = (began, lines + 1)
        return lines < self.BURST

    def _summarise(self, event: str, lines: int) -> None:
        if lines > self.BURST:
            self._write("suppressed", "warning", {"of": event, "count": lines - self.BURST})

    def _write(self, event: str, level: str, fields: dict[str, Any]) -> None:
        record = {"ts": round(time.time(), 3), "level": level, "event": event}
        line = json.dumps({**record, **self.fields, **fields}, default=str)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Metrics:
    """Counters and a latency histogram; `snapshot()` is what /_kit/metrics returns."""

    BASIC = ("requests", "bytes_in", "bytes_out", "errors_4xx", "errors_5xx")

    def __init__(self, service: str, counters: tuple[str, ...] = (), **info: Any) -> None:
        self.service, self.info, self.names = service, info, self.BASIC + counters
        self.reset()

    def reset(self) -> None:
        self.counters: dict[str, int] = dict.fromkeys(self.names, 0)
        self.cache = dict.fromkeys(("hit", "miss", "stale", "revalidated", "bypass"), 0)
        self.latency_counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)
        self.latency_sum_ms = 0.0
        self.started = time.time()

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + amount

    def observe(self, latency_ms: float) -> None:
        self.latency_counts[bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += 1
        self.latency_sum_ms += latency_ms

    def snapshot(self) -> dict[str, Any]:
        buckets = [str(b) for b in LATENCY_BUCKETS_MS] + ["+Inf"]
        return {
            "service": self.service,
            **self.info,
            **self.counters,
            "cache": dict(self.cache),
            "latency_ms": {
                "buckets": dict(zip(buckets, self.latency_counts, strict=True)),
                "count": sum(self.latency_counts),
                "sum": round(self.latency_sum_ms, 3),
            },
            "since": self.started,
        }


def json_error(status: int, reason: str, **extra: Any) -> web.Response:
    """An error response a person can read: `{"error": reason}`."""
    return web.json_response({"error": reason, **extra}, status=status)


@dataclass
class Planes:
    """A service's two apps: users' requests on TCP, control on the Unix socket,
    and the guard of the TCP port (`guard.py`)."""

    data: web.Application
    control: web.Application
    guard: Guard


def make_apps(service: str, served: Served, metrics: Metrics, log: Log, **health: Any) -> Planes:
    """The two planes, with the shared middleware, health and metrics routes.

    A service adds its users' routes to `planes.data` and anything that changes
    it (deploys, config, purges) to `planes.control`.
    """
    sample = served.log_sample
    guard = Guard(log, max_body=served.max_body_kb * 1024)

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        connection = guard.start(request)  # busy until done: the guard will not shed it
        try:
            if request.path.startswith(CONTROL_PREFIX):
                return json_error(404, "not found: control endpoints are not served on this port")
            response = guard.refuse(request)
            if response is None:
                started = time.perf_counter()
                response = await _guarded(request, handler, log)
                record(request, response, (time.perf_counter() - started) * 1000)
            return response
        finally:
            guard.done(connection)

    def record(request: web.Request, response: web.StreamResponse, elapsed_ms: float) -> None:
        """Count a served request in the metrics; log it if it failed (or sampled)."""
        metrics.counters["requests"] += 1
        metrics.observe(elapsed_ms)
        size = request.content_length
        if size:
            metrics.counters["bytes_in"] += size
        metrics.counters["bytes_out"] += _bytes_out(response)
        status = response.status
        if status >= 400:
            metrics.counters["errors_5xx" if status >= 500 else "errors_4xx"] += 1
        if status >= 400 or (sample and random.random() < sample):
            log(
                "request",
                "warning" if status >= 400 else "info",
                method=request.method,
                path=request.path_qs,
                status=status,
                ms=round(elapsed_ms, 2),
                client=request.remote,
                cache=response.headers.get("x-cache"),
            )

    @web.middleware
    async def control_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await _guarded(request, handler, log)

    limit = served.max_body_kb * 1024
    data = web.Application(middlewares=[observe], client_max_size=limit)
    control = web.Application(middlewares=[control_errors], client_max_size=64 << 20)

    async def health_route(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "service": service, **health})

    async def metrics_route(request: web.Request) -> web.Response:
        kinds = ("refused", "shed", "slow_headers", "idle", "accept_failed")
        connections = {"open": len(guard.open), **{k: guard.counts[k] for k in kinds}}
        return web.json_response({**metrics.snapshot(), "guard": connections})

    async def reset_route(request: web.Request) -> web.Response:
        metrics.reset()
        guard.counts.clear()
        guard.reported.clear()
        return web.json_response({"ok": True})

    control.router.add_get(protocol.HEALTH, health_route)
    control.router.add_get(protocol.METRICS, metrics_route)
    control.router.add_post(protocol.METRICS_RESET, reset_route)
    return Planes(data, control, guard)


def _bytes_out(response: web.StreamResponse) -> int:
    """Body bytes sent (a streamed response) or about to be sent (a plain one)."""
    if response.body_length:
        return response.body_length
    body = getattr(response, "body", None)
    return len(body) if isinstance(body, bytes) else 0


async def _guarded(request: web.Request, handler: Handler, log: Log) -> web.StreamResponse:
    """Run a route; bad input becomes a 4xx with a reason, a bug a JSON 500."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status >= 400 and not error.text:
            return json_error(error.status, error.reason)
        if error.status == 413:
            return json_error(413, f"request body larger than {request.app._client_max_size} bytes")
        return error
    except (ValueError, UnicodeDecodeError) as error:  # bad JSON, bad numbers, bad bytes
        return json_error(400, f"bad request: {error}")
    except asyncio.CancelledError:
        raise
    except Exception as error:
        log("error", "error", path=request.path_qs, trace=traceback.format_exc())
        return json_error(500, f"internal error: {type(error).__name__}: {error}")


async def _run(planes: Planes, served: Served, log: Log) -> None:
    log_errors_through(log)
    guard = planes.guard
    # access_log=None: the middleware logs (sampled); aiohttp's logger per request is slow
    data = web.AppRunner(planes.data, access_log=None, **HTTP_LIMITS)
    control = web.AppRunner(planes.control, access_log=None)
    await data.setup()
    await control.setup()
    unix_path, unix_bound = served.unix, False
    try:
        port = await guard.listen(data, served.host, served.port)  # timeouts, shedding, checks
        if unix_path:  # second: once the control socket answers, TCP is up too
            _remove_stale_socket(unix_path)
            old_umask = os.umask(0o177)  # the socket is born root-only (0600), no window
            try:
                await web.UnixSite(control, unix_path, backlog=128).start()
            finally:
                os.umask(old_umask)
            unix_bound = True
        stop = asyncio.Event()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signal_number, stop.set)
        log("listening", host=served.host, port=port, unix=unix_path)
        await stop.wait()
    finally:
        guard.close()
        await control.cleanup()
        await data.cleanup()
        if unix_bound:
            _remove_socket(unix_path)


def _remove_stale_socket(path: str) -> None:
    """Remove a socket file a killed service left; refuse one a live service listens on."""
    if not os.path.exists(path):
        return
    if not stat.S_ISSOCK(os.stat(path).st_mode):
        raise SystemExit(f"--unix {path}: exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:  # nobody listens: left over
            os.unlink(path)
            return
    raise SystemExit(f"--unix {path}: another service is listening there")


def _remove_socket(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def serve(planes: Planes, served: Served, log: Log) -> None:
    """Serve both planes until SIGINT or SIGTERM, then close connections and exit."""
    asyncio.run(_run(planes, served, log))
    log("stopped")
