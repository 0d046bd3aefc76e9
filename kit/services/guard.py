"""The connection guard: hostile clients on a service's TCP port cannot take it down.

Measured before the guard: aiohttp keeps a connection that sends nothing, or
half a request, open for an hour. A process may hold 1,024 open files (Debian's
default soft limit, RLIMIT_NOFILE), so 1,100 such connections left the PoP
unable to accept anything, health checks included. asyncio's accept loop then
logged a traceback for every failed accept(), up to `backlog` of them per turn
of the loop: 590,000 (227 MB) in 35 s.

What the guard does, for the data plane's TCP listener:

- **Accepting.** The guard accepts connections itself and counts each one the
  moment its socket exists. It lets client connections use three quarters of
  the process's file descriptors; the rest is headroom for upstream sockets,
  files, the control socket and worker pipes. (asyncio's own server accepts up
  to `backlog` sockets per turn before any of them reaches a protocol, so a
  burst of 2,000 connects exhausts the descriptors before anyone can count.)
- **Shedding.** To accept a connection over that limit, the guard first closes
  the idle connection (no request being handled, nothing left to send) that
  has waited longest: attackers holding thousands of connections cost real
  clients nothing but a reconnect. If every connection is busy, it stops
  accepting until one closes; new clients wait in the kernel's listen queue.
- **Timeouts.** A connection must start a request within `idle_timeout` (15 s)
  and send its complete headers within `header_timeout` (20 s) of connecting or
  of its previous response. Idle keep-alive connections therefore close after
  15 s, slow-header (slowloris) ones after 20 s. A sweep once a second closes
  those past their deadline.
- **Request checks**, before the app sees a request, with nginx's limits:
  headers of at most 100 fields and 8 KB a line (`HTTP_LIMITS`, enforced by
  aiohttp's parser: 400) and 32 KB in all (431; before, 800 KB in 100 fields
  went through to the origin). Also a valid Host (400), HTTP/1.0 or 1.1 only
  (505), no Transfer-Encoding in HTTP/1.0 (400, RFC 9112 §6.1), and no
  Content-Length above the service's body limit (413 at once, rather than
  after the client has trickled the body in). The parser (llhttp, strict)
  refuses the rest of malformed framing itself: CL+TE, bad chunk sizes,
  duplicate lengths, bare LF, control bytes.
- **Quiet errors.** `log_errors_through(log)` routes asyncio's exception
  handler and aiohttp's logger into the service's `Log`, which writes a
  repeating warning or error a few times a second and counts the rest.

How it hooks into aiohttp: a runner's `runner.server` is the protocol factory
that asyncio would call once per connection. The guard calls it for each socket
it accepts and wraps the protocol in `_Tracked`, which passes every call on and
notes when the connection opened and when bytes arrived. Requests are seen by
the data plane's first middleware (`common.py`), which calls `start` (the
connection is busy), `refuse` (the checks above) and, once the handler has
returned, `done`; a response still being sent shows as bytes in the
transport's write buffer. Each is a few attribute writes: the hit path of a PoP
serves some 20,000 requests a second, and a wrapper coroutine per request cost
15% of that. The sweep notes when a connection last finished a request. No
private attribute of aiohttp is used.

    guard = Guard(log, max_body=args.max_body_kb * 1024)
    runner = web.AppRunner(app, **HTTP_LIMITS)        # app's middleware: start/refuse/done
    await runner.setup()
    port = await guard.listen(runner, host, port)
    ...
    guard.close()                                     # then runner.cleanup()
"""

from __future__ import annotations

import asyncio
import logging
import re
import resource
import socket
import traceback
from collections import Counter
from typing import TYPE_CHECKING, Any

from aiohttp import HttpVersion10, HttpVersion11, web
from aiohttp.http_exceptions import HttpProcessingError

if TYPE_CHECKING:
    from kit.services.common import Log

HEADER_TIMEOUT_S = 20.0  # Apache's mod_reqtimeout default; headers are a packet or two
IDLE_TIMEOUT_S = 15.0  # longer than a load-test user's think time, shorter than a forgotten tab
SWEEP_S = 1.0
FD_SHARE = 0.75  # of RLIMIT_NOFILE for client connections; the rest is headroom
ACCEPT_BATCH = 64  # connections accepted per turn of the loop, so requests interleave
MAX_HEADERS_TOTAL = 32 << 10  # nginx: large_client_header_buffers 4 8k
HTTP_LIMITS = {"max_line_size": 8190, "max_field_size": 8190, "max_headers": 100}
HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(:[0-9]*)?")


def connection_limit(share: float = FD_SHARE) -> int:
    """How many client connections this process can hold: a share of its file limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return int(soft * share)


class Guard:
    """Accepting, shedding, timeouts and request checks for one TCP port (module doc)."""

    def __init__(
        self,
        log: Log,
        max_body: int,
        header_timeout: float = HEADER_TIMEOUT_S,
        idle_timeout: float = IDLE_TIMEOUT_S,
        max_connections: int | None = None,
    ) -> None:
        self.log, self.max_body = log, max_body
        self.header_timeout, self.idle_timeout = header_timeout, idle_timeout
        self.max_connections = max_connections or connection_limit()
        self.open: dict[_Tracked, None] = {}  # in order of waiting: longest first
        self.counts: Counter[str] = Counter()  # shed, slow_headers, idle, refused, accept_failed
        self.reported: Counter[str] = Counter()  # counts at the last sweep
        self.factory: web.Server | None = None  # aiohttp's protocol factory
        self.listener: socket.socket | None = None
        self.accepting = False
        self.sweeper: asyncio.Task[None] | None = None

    async def listen(
        self, runner: web.BaseRunner, host: str, port: int, backlog: int = 1024
    ) -> int:
        """Serve `runner` (set up, with no sites) on host:port; returns the port."""
        server = runner.server
        assert server is not None, "call runner.setup() first"
        self.factory = server
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.create_server((host, port), family=family, backlog=backlog)
        self.listener.setblocking(False)
        self.resume()
        self.sweeper = asyncio.create_task(self._sweep())
        return self.listener.getsockname()[1]

    def close(self) -> None:
        """Stop accepting and sweeping; `runner.cleanup()` then closes the connections."""
        self.pause()
        if self.listener:
            self.listener.close()
        if self.sweeper:
            self.sweeper.cancel()
        self.log.flush(everything=True)

    def pause(self) -> None:
        if self.accepting and self.listener:
            asyncio.get_running_loop().remove_reader(self.listener)
        self.accepting = False

    def resume(self) -> None:
        if not self.accepting and self.listener and self.listener.fileno() >= 0:
            asyncio.get_running_loop().add_reader(self.listener, self._accept)
            self.accepting = True

    def _accept(self) -> None:
        """Accept waiting connections while there is room; make room by shedding."""
        assert self.listener is not None and self.factory is not None
        loop = asyncio.get_running_loop()
        for _ in range(ACCEPT_BATCH):
            if len(self.open) >= self.max_connections and not self.shed():
                return self.pause()  # all busy: resumed when one closes
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # out of descriptors or memory after all
                self.counts["accept_failed"] += 1
                self.log("accept_failed", "error", error=str(error), open=len(self.open))
                self.shed()
                return self.pause()  # resumed when a connection closes, or by the sweep
            connection = _Tracked(self, self.factory())
            self.open[connection] = None
            connection.opening = loop.create_task(
                loop.connect_accepted_socket(lambda c=connection: c, sock)
            )

    def shed(self) -> bool:
        """Close the idle connection that has waited longest; False if none is idle."""
        idle = [c for c in self.open if c.idle()]
        victim = min(idle, key=lambda c: c.ready_at) if idle else None
        if victim:
            self.counts["shed"] += 1
            self.drop(victim)
        return victim is not None

    def drop(self, connection: _Tracked) -> None:
        self.open.pop(connection, None)
        if connection.transport:
            connection.transport.close()

    # -- per request: called by the data plane's middleware (common.py) ----------

    @staticmethod
    def start(request: web.BaseRequest) -> _Tracked | None:
        """The request's connection, marked busy until `done` (None if not guarded)."""
        transport = request.transport
        connection = transport.get_protocol() if transport else None
        if not isinstance(connection, _Tracked):
            return None
        connection.busy = True
        return connection

    def refuse(self, request: web.BaseRequest) -> web.Response | None:
        """A 4xx/5xx to answer instead of serving the request, or None to serve it."""
        problem = refusal(request, self.max_body)
        if problem is None:
            return None
        status, reason = problem
        self.counts["refused"] += 1
        self.log("refused", "warning", status=status, reason=reason, client=request.remote)
        response = web.json_response({"error": reason}, status=status)
        response.force_close()
        return response

    @staticmethod
    def done(connection: _Tracked | None) -> None:
        """The response was handed over: the connection waits for a request again."""
        if connection is not None:
            connection.busy = connection.started = False
            connection.served += 1

    def closed(self, connection: _Tracked) -> None:
        self.open.pop(connection, None)
        self.resume()

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_S)
            now = loop.time()
            for connection in list(self.open):
                if connection.transport is None:  # still opening, or failed to
                    if connection.opening and connection.opening.done():
                        self.open.pop(connection, None)
                    continue
                if connection.busy:
                    continue
                if connection.served != connection.swept:  # requests since the last sweep
                    connection.swept, connection.ready_at = connection.served, now
                if connection.transport.get_write_buffer_size():
                    connection.ready_at = now  # still sending: the clocks start after
                    continue
                if connection.started:
                    if now - connection.ready_at > self.header_timeout:
                        self.counts["slow_headers"] += 1
                        self.drop(connection)
                elif now - connection.ready_at > self.idle_timeout:
                    self.counts["idle"] += 1
                    self.drop(connection)
            new, self.reported = self.counts - self.reported, self.counts.copy()
            if new["shed"] or new["slow_headers"] or new["accept_failed"]:
                self.log("guard", "warning", open=len(self.open), **new, totals=dict(self.counts))
            self.resume()
            self.log.flush()


class _Tracked(asyncio.Protocol):
    """One client connection: aiohttp's protocol, plus what the guard needs to know."""

    def __init__(self, guard: Guard, inner: asyncio.Protocol) -> None:
        self.guard, self.inner = guard, inner
        self.opening: asyncio.Task[Any] | None = None
        self.transport: asyncio.Transport | None = None
        self.ready_at = 0.0  # when it began waiting for a request (loop time)
        self.started = False  # bytes of that request have arrived
        self.busy = False  # a request is being handled
        self.served = self.swept = 0  # requests answered; that count at the last sweep

    def idle(self) -> bool:
        """Open, no request being handled and nothing left to send: safe to close."""
        transport = self.transport
        return transport is not None and not self.busy and not transport.get_write_buffer_size()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport, self.ready_at = transport, asyncio.get_running_loop().time()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.started = self.started or not self.busy
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.guard.closed(self)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def refusal(request: web.BaseRequest, max_body: int) -> tuple[int, str] | None:
    """Status and reason to refuse a request with, or None if it may be served."""
    if request.version not in (HttpVersion10, HttpVersion11):  # llhttp lets 0.9 and 2.0 through
        major, minor = request.version
        return 505, f"HTTP/{major}.{minor} is not served here: send HTTP/1.1"
    header_bytes = sum(len(name) + len(value) + 4 for name, value in request.raw_headers)
    if header_bytes > MAX_HEADERS_TOTAL:
        return 431, f"request headers are {header_bytes} bytes, more than {MAX_HEADERS_TOTAL}"
    if request.version == HttpVersion10 and "Transfer-Encoding" in request.headers:
        return 400, "Transfer-Encoding in an HTTP/1.0 request (RFC 9112 section 6.1)"
    host = request.headers.get("Host")  # the parser refuses a second one
    if host is not None and not HOST.fullmatch(host):
        return 400, f"bad Host header: {host!r}"
    if (request.content_length or 0) > max_body:
        return 413, f"request body of {request.content_length} bytes, more than {max_body}"
    return None


def log_errors_through(log: Log) -> None:
    """Send asyncio's and aiohttp's error reports through `log` (one JSON line each)."""

    def report(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        trace = "".join(traceback.format_exception(error)) if error else None
        log("loop_error", "error", message=context.get("message"), trace=trace)

    asyncio.get_running_loop().set_exception_handler(report)
    aiohttp_logger = logging.getLogger("aiohttp")
    aiohttp_logger.addHandler(_ToLog(log))
    aiohttp_logger.propagate = False


class _ToLog(logging.Handler):
    """A logging handler that writes records as `Log` events named after the logger."""

    def __init__(self, log: Log) -> None:
        super().__init__(logging.WARNING)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):  # the client's mistake: its reason is enough
            self.log(record.name, "warning", message=record.getMessage(), error=error.message)
            return
        trace = "".join(traceback.format_exception(error)) if error else None
        self.log(record.name, record.levelname.lower(), message=record.getMessage(), trace=trace)
