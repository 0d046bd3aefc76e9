"""The wire between a PoP and its handler worker: framed messages on a socket pair.

A PoP runs learners' handlers in a separate process (`worker.py`) so that a
handler that loops, blocks, exits or eats memory cannot take the PoP down
(`kit/services/workers.py` is the PoP's side). The two talk over one Unix
socket pair. Every message is a small JSON header plus an optional body:

    +----------------+----------------+-------------+--------------+
    | header size u32| body size u32  | header JSON | body bytes   |
    +----------------+----------------+-------------+--------------+

The header's "t" says what it is ("request", "response", "call", "reply",
"chunk", "cancel", "done", ...). Bodies travel as bytes, never inside JSON.

A body that is long or still being produced goes as a *stream*: the first
message carries the first piece and `"more": true`, then `chunk` messages with
the same stream key follow, the last one with `"more": false`. `send_body`
writes one, `BodyStreams` collects them at the other end.

Requests and responses cross as plain dicts (`request_fields`,
`response_fields`): method, URL, headers as a list of pairs (a header may
repeat), and for requests the client's address, geo and matcher params.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

from kit.runtime.http import Geo, Request, Response

SIZES = struct.Struct("!II")
PIECE = 256 << 10  # a body is sent in pieces of at most this many bytes
MAX_HEADER = 1 << 20
MAX_PIECE = 16 << 20


class WireClosed(ConnectionError):
    """The other side went away (its process exited)."""


class BodyCut(ConnectionError):
    """A streamed body that ended in an error instead of its end."""


async def read_message(reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytes]:
    """The next message; WireClosed when the other side is gone."""
    try:
        header_size, body_size = SIZES.unpack(await reader.readexactly(SIZES.size))
        if header_size > MAX_HEADER or body_size > MAX_PIECE:
            raise WireClosed(f"message too large ({header_size}, {body_size} bytes)")
        header = json.loads(await reader.readexactly(header_size))
        body = await reader.readexactly(body_size) if body_size else b""
    except (asyncio.IncompleteReadError, ConnectionError) as error:
        raise WireClosed(str(error) or "closed") from None
    return header, body


def write_message(writer: asyncio.StreamWriter, header: dict[str, Any], body: bytes = b"") -> None:
    """Queue one message (call `await writer.drain()` to wait for room)."""
    data = json.dumps(header, separators=(",", ":")).encode()
    writer.write(SIZES.pack(len(data), len(body)) + data + body)


async def send_body(
    writer: asyncio.StreamWriter,
    first: dict[str, Any],
    key: str,
    body: bytes | AsyncIterator[bytes],
) -> None:
    """Send `first` (a response or reply header) with a body, streamed if need be."""
    if isinstance(body, bytes) and len(body) <= PIECE:
        write_message(writer, {**first, "more": False}, body)
        await writer.drain()
        return
    pieces = _pieces(body) if isinstance(body, bytes) else body
    write_message(writer, {**first, "more": True})
    try:
        async for piece in pieces:
            if piece:
                write_message(writer, {"t": "chunk", "s": key, "more": True}, piece)
                await writer.drain()
    except Exception as error:  # the producer failed mid-body: the reader must not see an end
        write_message(writer, {"t": "chunk", "s": key, "more": False, "error": repr(error)})
        await writer.drain()
        raise
    write_message(writer, {"t": "chunk", "s": key, "more": False})
    await writer.drain()


async def _pieces(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), PIECE):
        yield body[start : start + PIECE]


class BodyStreams:
    """The receiving end of streamed bodies, by stream key."""

    def __init__(self) -> None:
        self.queues: dict[str, asyncio.Queue[bytes | BaseException | None]] = {}

    def open(self, key: str) -> AsyncIterator[bytes]:
        """A body whose pieces will arrive as `chunk` messages with this key."""
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        self.queues[key] = queue
        return self._drain(key, queue)

    async def _drain(
        self, key: str, queue: asyncio.Queue[bytes | BaseException | None]
    ) -> AsyncIterator[bytes]:
        try:
            while (piece := await queue.get()) is not None:
                if isinstance(piece, BaseException):
                    raise piece
                yield piece
        finally:
            self.queues.pop(key, None)

    def chunk(self, header: dict[str, Any], body: bytes) -> None:
        queue = self.queues.get(header["s"])
        if queue is None:  # the reader gave up on this body
            return
        if body:
            queue.put_nowait(body)
        if header.get("error"):
            queue.put_nowait(BodyCut(header["error"]))
        elif not header.get("more"):
            queue.put_nowait(None)

    def fail(self, key: str, error: BaseException) -> None:
        """End one body with an error (e.g. the worker died mid-stream)."""
        if key in self.queues:
            self.queues[key].put_nowait(error)

    def fail_all(self, error: BaseException) -> None:
        for key in list(self.queues):
            self.fail(key, error)


def request_fields(request: Request) -> dict[str, Any]:
    """A Request's head as a JSON-able dict (the body travels separately)."""
    geo = request.geo
    return {
        "method": request.method,
        "url": str(request.url),
        "headers": list(request.headers.items()),
        "client_ip": request.client_ip,
        "geo": [geo.country, geo.city, geo.region, geo.pop],
        "params": request.params,
    }


def request_from(fields: dict[str, Any], body: bytes | AsyncIterator[bytes]) -> Request:
    geo = Geo(*fields["geo"]) if fields.get("geo") else None
    request = Request(
        fields["url"], fields["method"], fields["headers"], body, geo, fields.get("client_ip")
    )
    request.params = fields.get("params") or {}
    return request


def response_fields(response: Response) -> dict[str, Any]:
    return {
        "status": response.status,
        "headers": list(response.headers.items()),
        "cache": response.cache_status,
    }


def response_from(fields: dict[str, Any], body: bytes | AsyncIterator[bytes]) -> Response:
    response = Response(body, fields["status"], fields["headers"])
    response.cache_status = fields.get("cache")
    return response
