"""Edge-side includes (ESI/1.0): the PoP assembles a page from fragments, as CDNs do.

An origin asks for it on a response with `Surrogate-Control: content="ESI/1.0"`
(the Akamai, Fastly and Varnish convention; the PoP removes the header before
the client sees it). The PoP then reads the page as a *template*:

    <esi:include src="/nav" alt="/nav-fallback" onerror="continue"/>
                                 the fragment's body takes the tag's place
    <esi:remove>...</esi:remove> removed (what a client without ESI would show)
    <!--esi ... -->              the comment markers go, what is inside is processed
    <esi:comment text="..."/>    removed

Everything else in the page is passed on byte for byte, and a page with no ESI
markup at all is passed on unchanged (its ETag and length too).

**How a page is assembled.** The template is parsed once (`parse`), then every
include starts at once (`assemble`: one task per include, so N slow fragments
cost the slowest, not their sum) and the output is streamed in document order:
the text before the first include goes out at once, then each fragment as soon
as it and everything before it are there (what is ready is sent as one piece:
a page whose fragments are all cached is two writes, not one per include).
Each fragment comes through the PoP's cache, so each is kept under its own
Cache-Control (a navigation bar for an hour, a price for ten seconds, a
greeting never) and the page's own TTL is the template's. A fragment may
itself ask for ESI (nested includes), up to `MAX_DEPTH` levels; a loop of
includes (a page that includes itself, or A -> B -> A) stops there with an
error that shows the chain.

**When an include fails** (an error status, no answer within `TIMEOUT_S`, a
`src` that is not allowed, the depth limit): its `alt` is tried; if that fails
too, `onerror="continue"` leaves the tag's place empty. Without it the
assembly stops, as Varnish documents it: a fragment that is not a 200 or 206
aborts the parent request, so the client gets a cut body (the connection is
closed before the end), never a page that silently lacks a part.

**No SSRF through src.** A `src` is a path on the page's own origin (fetched
through the cache), or an absolute URL on the origin or on an allow-list; any
other URL, `//host/x` included, is a failed include.

**Why a regex tokenizer.** The template is HTML with ESI elements in it, not
XML: real pages are not well-formed, and an HTML parser (bs4, html5lib)
re-serialises what it reads (case, quotes, entities), which breaks "byte for
byte". So this module looks only for `<esi:` and `<!--esi` and copies every
other byte as it is; attributes are read with a small regex and entity-decoded.
Malformed markup (a tag that never closes, an include without src, an
unclosed `<esi:remove>`) is reported in `Template.errors` and kept as text, so
the page is never lost; an ESI tag this module does not implement (`esi:choose`,
`esi:vars`...) is kept as text too and reported.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from kit.runtime.http import Request, Response

SURROGATE = "Surrogate-Control"
MAX_DEPTH = 5  # Varnish's max_esi_depth default
MAX_INCLUDES = 256  # per page, nested ones included: a bounded fan-out
TIMEOUT_S = 3.0  # per fragment
MAX_TEMPLATE = 1 << 20  # a larger page is passed on unprocessed
FRAGMENT_OK = (200, 206)

_START = re.compile(rb"<esi:([a-zA-Z]+)|<!--esi")
_ATTRIBUTE = re.compile(rb"""([a-zA-Z_:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_REMOVE_END = re.compile(rb"</esi:remove\s*>")
_INCLUDE_END = re.compile(rb"\s*</esi:include\s*>")


@dataclass(frozen=True)
class Include:
    """One `<esi:include>`: where to fetch, what to try instead, and whether to go on."""

    src: str
    alt: str | None = None
    continue_on_error: bool = False


@dataclass
class Template:
    """A parsed page: text (bytes, as they were) and Includes, in document order."""

    pieces: list[bytes | Include] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    has_markup: bool = False  # any ESI at all (else the body is passed on as it is)

    @property
    def includes(self) -> list[Include]:
        return [p for p in self.pieces if isinstance(p, Include)]


def parse(body: bytes) -> Template:
    """The template in `body` (pure: no I/O). Malformed markup is kept as text, in errors."""
    template = Template()
    _parse_into(body, template)
    if not template.pieces:
        template.pieces.append(b"")
    return template


def _parse_into(body: bytes, template: Template) -> None:
    pieces, errors, at = template.pieces, template.errors, 0

    def text(chunk: bytes) -> None:
        if chunk:
            if pieces and isinstance(pieces[-1], bytes):
                pieces[-1] += chunk
            else:
                pieces.append(chunk)

    while (found := _START.search(body, at)) is not None:
        template.has_markup = True
        text(body[at : found.start()])
        line = body.count(b"\n", 0, found.start()) + 1
        if found.group(0) == b"<!--esi":
            end = body.find(b"-->", found.end())
            if end < 0:
                errors.append(f"line {line}: <!--esi without its closing -->")
                text(body[found.start() :])
                return
            _parse_into(body[found.end() : end], template)  # the inside is processed
            at = end + 3
            continue
        name = found.group(1).decode().lower()
        close = body.find(b">", found.end())
        if close < 0:
            errors.append(f"line {line}: <esi:{name} never closes (no '>')")
            text(body[found.start() :])
            return
        tag = body[found.start() : close + 1]
        if name == "remove":
            end = _REMOVE_END.search(body, close + 1)
            if end is None:
                errors.append(f"line {line}: <esi:remove> without </esi:remove>")
                text(tag)
                at = close + 1
                continue
            at = end.end()
        elif name == "comment":
            at = close + 1
        elif name == "include":
            attributes = {
                m.group(1).decode().lower(): html.unescape(
                    (m.group(2) or m.group(3) or b"").decode()
                )
                for m in _ATTRIBUTE.finditer(tag)
            }
            at = close + 1
            if not tag.endswith(b"/>"):
                end = _INCLUDE_END.match(body, at)
                at = end.end() if end else at
            if not attributes.get("src"):
                errors.append(f"line {line}: <esi:include> without src")
                text(tag)
                continue
            pieces.append(
                Include(
                    attributes["src"],
                    attributes.get("alt") or None,
                    attributes.get("onerror", "").lower() == "continue",
                )
            )
        else:
            errors.append(f"line {line}: <esi:{name}> is not supported here (kept as text)")
            text(tag)
            at = close + 1
    text(body[at:])


class IncludeFailed(Exception):
    """An include that could not be fetched (after its alt), and may not be skipped."""


Fetch = Callable[[str], Awaitable[Response]]


@dataclass
class Limits:
    """What one page's assembly may do: where includes may go, how deep, how long."""

    origin: URL | None = None  # an absolute src on this origin is a path on it
    allowed: frozenset[str] = frozenset()  # other origins, as "http://host:port"
    max_depth: int = MAX_DEPTH
    max_includes: int = MAX_INCLUDES
    timeout_s: float = TIMEOUT_S
    on_error: Callable[[str], None] = lambda message: None
    includes: int = 0  # how many this page has started so far

    def target(self, src: str) -> str:
        """The path (on the origin) or allow-listed absolute URL to fetch; ValueError if none."""
        if src.startswith("/") and not src.startswith("//"):
            return src
        url = URL(src)
        if url.scheme in ("http", "https") and url.host:
            where = f"{url.scheme}://{url.host}:{url.port}"
            if (
                self.origin is not None
                and where == f"{self.origin.scheme}://{self.origin.host}:{self.origin.port}"
            ):
                return url.raw_path_qs
            if where in self.allowed:
                return str(url)
        raise ValueError(f"src {src!r} is neither a path on the origin nor on the allow-list")


def wants_esi(response: Response) -> bool:
    """True if the response's Surrogate-Control asks this surrogate to process ESI/1.0.

    A response from the cache is asked through its entry (`entry_wants_esi`).
    """
    entry = getattr(response, "entry", None)
    if entry is not None:
        return entry_wants_esi(entry)
    return any("ESI/1.0" in value for value in response.headers.getall(SURROGATE, ()))


def entry_wants_esi(entry: Any) -> bool:
    """The same for a cache entry (its headers, and the surrogate fields it keeps apart)."""
    fields = [*entry.headers, *getattr(entry, "targeted", ())]
    return any(k.lower() == "surrogate-control" and "ESI/1.0" in v for k, v in fields)


async def assemble(
    template: Template, fetch: Fetch, limits: Limits, chain: tuple[str, ...] = ()
) -> AsyncIterator[bytes]:
    """The page, streamed in document order, its includes fetched all at once.

    `fetch(target)` answers a path on the origin (or an allow-listed URL) with a
    Response; `chain` is the includes that led here (for the depth limit).
    Raises IncludeFailed, mid-stream, for an include that fails without
    `onerror="continue"`.
    """
    tasks = {
        id(piece): asyncio.ensure_future(_include(piece, fetch, limits, chain))
        for piece in template.pieces
        if isinstance(piece, Include)
    }
    ready: list[bytes] = []  # what may go now, sent as one piece when a wait comes
    try:
        for piece in template.pieces:
            if isinstance(piece, bytes):
                ready.append(piece)
                continue
            task = tasks[id(piece)]
            if not task.done() and ready:
                yield b"".join(ready)  # everything before a fragment still on its way
                ready = []
            ready.append(await task)
        if ready:
            yield b"".join(ready)
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)


async def _include(include: Include, fetch: Fetch, limits: Limits, chain: tuple[str, ...]) -> bytes:
    reasons = []
    for src in [include.src] + ([include.alt] if include.alt else []):
        try:
            return await _fragment(src, fetch, limits, chain)
        except IncludeFailed as failed:
            reasons.append(str(failed))
    message = "; then ".join(reasons)
    limits.on_error(message)
    if include.continue_on_error:
        return b""
    raise IncludeFailed(message)


async def _fragment(src: str, fetch: Fetch, limits: Limits, chain: tuple[str, ...]) -> bytes:
    path = " -> ".join([*chain, src])
    if len(chain) > limits.max_depth:  # chain[0] is the page itself
        raise IncludeFailed(f"include depth limit ({limits.max_depth}) reached: {path}")
    limits.includes += 1
    if limits.includes > limits.max_includes:
        raise IncludeFailed(f"more than {limits.max_includes} includes in one page: {src}")
    try:
        target = limits.target(src)
    except ValueError as error:
        raise IncludeFailed(str(error)) from None
    try:
        async with asyncio.timeout(limits.timeout_s):
            response = await fetch(target)
            body = await response.read()
    except TimeoutError:
        raise IncludeFailed(f"{src}: no answer within {limits.timeout_s:g} s") from None
    except Exception as error:  # the fetch itself failed (FetchError, a cut body)
        raise IncludeFailed(f"{src}: {error}") from None
    if response.status not in FRAGMENT_OK:
        raise IncludeFailed(f"{src}: status {response.status}")
    if not wants_esi(response):
        return body
    nested = parse(body)
    for error in nested.errors:
        limits.on_error(f"{src}: {error}")
    parts = [part async for part in assemble(nested, fetch, limits, (*chain, src))]
    return b"".join(parts)


async def process(pop: Any, request: Request, response: Response) -> Response:
    """The PoP's hook: a response that asked for ESI, assembled (the module docstring).

    `pop` gives `fetch` (through its cache), `origin`, `log` and `metrics`.
    """
    response.headers.popall(SURROGATE, None)  # (a copy: the cache keeps its own)
    if request.method != "GET" or response.status != 200:
        return response
    body = await response.read()
    if len(body) > MAX_TEMPLATE:
        pop.log("esi_skipped", "warning", path=request.path, bytes=len(body))
        return response
    template = parse(body)
    if not template.has_markup:
        return response  # byte for byte, ETag and length too
    headers = response.headers.copy()

    def on_error(message: str) -> None:
        pop.metrics.count("esi_errors")
        pop.log("esi_error", "warning", path=request.path, error=message)

    for error in template.errors:
        on_error(error)
    for name in ("ETag", "Last-Modified", "Content-Length"):
        headers.popall(name, None)  # the assembled body is another body
    forwarded = request.headers.copy()
    for name in ("If-None-Match", "If-Modified-Since", "Range", "If-Range"):
        forwarded.popall(name, None)

    async def fetch(target: str) -> Response:
        pop.metrics.count("esi_includes")
        fragment = Request(target, "GET", forwarded, b"", request.geo, request.client_ip)
        if target.startswith("/"):
            return await pop.fetch(fragment)
        return await pop.fetch_url(fragment)

    limits = Limits(origin=pop.origin, on_error=on_error)
    page = assemble(template, fetch, limits, (request.url.raw_path_qs,))
    assembled = Response(page, response.status, headers)
    assembled.cache_status = response.cache_status
    return assembled
