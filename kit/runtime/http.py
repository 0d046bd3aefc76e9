"""Request and Response: the two objects every edge handler touches.

They are shaped like the Fetch API that Cloudflare Workers, Deno Deploy and
Vercel's edge runtime use, translated to Python:

    Workers (JavaScript)                  kit.runtime (Python)
    request.cf.country                    request.geo.country
    new URL(request.url).pathname         request.url.path
    await request.json()                  await request.json()
    Response.json({...})                  Response.json({...})
    Response.redirect(url, 302)           Response.redirect(url, 302)
    new Response(stream)                  Response.stream(async_iterator)
    await response.text()                 await response.text()

`request.url` is a `yarl.URL` (`.path`, `.query`, `.raw_query_string`), and the
headers are a case-insensitive multidict. A body is either `bytes` or an
async iterator of `bytes` (a stream); reading a stream buffers it once.

`Response.text` and `Response.json` do two jobs, as in JavaScript: called on the
class they build a response, called on an instance they read its body.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDict
from yarl import URL

Body = bytes | AsyncIterable[bytes]
HeadersLike = Mapping[str, str] | list[tuple[str, str]] | None


@dataclass(frozen=True, slots=True)
class Geo:
    """Where the client is, looked up from its IP (the PoP's subnet table)."""

    country: str | None = None
    city: str | None = None
    region: str | None = None
    pop: str | None = None  # the PoP that received the request


class _ClassOrInstance:
    """A method that does one thing on the class and another on an instance.

    `Response.json(data)` builds a response; `await response.json()` reads one.
    """

    def __init__(self, on_class: Callable[..., Any], on_instance: Callable[..., Any]) -> None:
        self.on_class, self.on_instance = on_class, on_instance

    def __get__(self, instance: object, owner: type) -> Callable[..., Any]:
        if instance is None:
            return self.on_class.__get__(owner, owner)
        return self.on_instance.__get__(instance, owner)


async def _iterate(chunks: AsyncIterable[bytes | str]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield chunk.encode() if isinstance(chunk, str) else chunk


class _HasBody:
    """Body reading shared by Request and Response (buffered once, then kept)."""

    _body: Body

    @property
    def is_stream(self) -> bool:
        return not isinstance(self._body, bytes)

    async def read(self) -> bytes:
        """The whole body as bytes (a stream is read to the end and kept)."""
        if not isinstance(self._body, bytes):
            self._body = b"".join([chunk async for chunk in _iterate(self._body)])
        return self._body

    async def text(self) -> str:
        """The body decoded as UTF-8."""
        return (await self.read()).decode("utf-8", errors="replace")

    async def json(self) -> Any:
        """The body parsed as JSON."""
        return jsonlib.loads(await self.read())

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body piece by piece, without buffering it (use once)."""
        if isinstance(self._body, bytes):
            if self._body:
                yield self._body
            return
        async for chunk in _iterate(self._body):
            yield chunk


class Request(_HasBody):
    """An HTTP request as a handler sees it.

    Build one to send somewhere else: `Request("/api/x", method="POST", body=b"...")`,
    or change one: `request.replace(method="HEAD")`.
    """

    def __init__(
        self,
        url: str | URL,
        method: str = "GET",
        headers: HeadersLike = None,
        body: Body | str = b"",
        geo: Geo | None = None,
        client_ip: str | None = None,
    ) -> None:
        self.url = url if isinstance(url, URL) else URL(url)
        self.method = method.upper()
        self.headers: CIMultiDict[str] = CIMultiDict(headers or {})
        self._body = body.encode() if isinstance(body, str) else body
        self._geo = geo or Geo()  # the PoP looks it up from the client's address
        self.client_ip = client_ip
        self.params: dict[str, str] = {}  # filled from the path matcher, e.g. ":slug"

    @property
    def path(self) -> str:
        return self.url.path

    @property
    def query(self) -> Mapping[str, str]:
        return self.url.query

    @property
    def geo(self) -> Geo:
        """The client's country, city and region, and the PoP that answered."""
        return self._geo

    def replace(
        self,
        *,
        url: str | URL | None = None,
        method: str | None = None,
        headers: HeadersLike = None,
        body: Body | str | None = None,
    ) -> Request:
        """A copy of this request with some parts changed (the body is shared)."""
        copy = Request(
            url if url is not None else self.url,
            method or self.method,
            headers if headers is not None else self.headers,
            body if body is not None else self._body,
            geo=self._geo,
            client_ip=self.client_ip,
        )
        copy.params = dict(self.params)
        return copy

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"


class Response(_HasBody):
    """An HTTP response: status, headers and a body (bytes or a stream).

    Build one with `Response("hi")`, `Response.text(...)`, `Response.json(...)`,
    `Response.html(...)`, `Response.redirect(...)` or `Response.stream(...)`.
    """

    def __init__(self, body: Body | str = b"", status: int = 200, headers: HeadersLike = None):
        self.status = status
        self.headers: CIMultiDict[str] = CIMultiDict(headers or {})
        self._body = body.encode() if isinstance(body, str) else body
        self.cache_status: str | None = None  # set by the PoP: HIT, MISS, STALE, ...

    @classmethod
    def _with_type(
        cls, body: Body | str, content_type: str, status: int, headers: HeadersLike
    ) -> Response:
        response = cls(body, status, headers)
        response.headers.setdefault("Content-Type", content_type)
        return response

    @classmethod
    def _make_text(cls, text: str, status: int = 200, headers: HeadersLike = None) -> Response:
        return cls._with_type(text, "text/plain; charset=utf-8", status, headers)

    @classmethod
    def _make_json(cls, data: Any, status: int = 200, headers: HeadersLike = None) -> Response:
        return cls._with_type(jsonlib.dumps(data), "application/json", status, headers)

    text = _ClassOrInstance(_make_text, _HasBody.text)
    json = _ClassOrInstance(_make_json, _HasBody.json)

    @classmethod
    def html(cls, html: str, status: int = 200, headers: HeadersLike = None) -> Response:
        return cls._with_type(html, "text/html; charset=utf-8", status, headers)

    @classmethod
    def redirect(cls, url: str | URL, status: int = 302) -> Response:
        if status not in (301, 302, 303, 307, 308):
            raise ValueError(f"redirect status must be 301, 302, 303, 307 or 308, not {status}")
        return cls(b"", status, {"Location": str(url)})

    @classmethod
    def stream(
        cls,
        chunks: AsyncIterable[bytes | str],
        status: int = 200,
        headers: HeadersLike = None,
        content_type: str = "text/plain; charset=utf-8",
    ) -> Response:
        """A response whose body is sent piece by piece as the iterator yields."""
        return cls._with_type(_iterate(chunks), content_type, status, headers)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.headers.get('Content-Type', '')}>"
