"""Content encoding: pick brotli, zstd or gzip from Accept-Encoding, and compress.

The PoP asks the origin for uncompressed bodies and compresses on the way out,
so one cached copy serves every client; the compressed copies of a cached body
are made once and kept next to it. Only types that compress well (text, JSON,
JavaScript, SVG, ...) and bodies of at least `MIN_SIZE` bytes are compressed.

Preference when the client accepts several: br, then zstd, then gzip
(RFC 9110 §12.5.3 lets the server choose among equal q-values).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable

import brotli
import zstandard

PREFERENCE = ("br", "zstd", "gzip")
MIN_SIZE = 256
BROTLI_QUALITY, ZSTD_LEVEL, GZIP_LEVEL = 5, 3, 6
COMPRESSIBLE = ("text/", "application/json", "application/javascript", "application/xml")
COMPRESSIBLE_SUFFIXES = ("+json", "+xml", "svg+xml")

_choices: dict[str, str | None] = {}  # Accept-Encoding value -> choice (few distinct values)


def negotiate(accept_encoding: str | None) -> str | None:
    """The encoding to use for this Accept-Encoding header, or None for identity."""
    if not accept_encoding:
        return None
    choice = _choices.get(accept_encoding, "?")
    if choice != "?":
        return choice
    weights: dict[str, float] = {}
    for part in accept_encoding.lower().split(","):
        name, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        weights[name.strip()] = q
    star = weights.get("*", 0.0)
    ranked = [(weights.get(e, star), -i, e) for i, e in enumerate(PREFERENCE)]
    q, _, best = max(ranked)
    choice = best if q > 0 else None
    if len(_choices) < 256:
        _choices[accept_encoding] = choice
    return choice


def compressible(content_type: str | None, size: int | None) -> bool:
    """Is this body worth compressing? (size None = unknown, a stream)"""
    if size is not None and size < MIN_SIZE:
        return False
    kind = (content_type or "").split(";")[0].strip().lower()
    return kind.startswith(COMPRESSIBLE) or kind.endswith(COMPRESSIBLE_SUFFIXES)


def compress(data: bytes, encoding: str) -> bytes:
    """Compress a whole body."""
    return _compressor(encoding)()(data, final=True)


def _compressor(encoding: str) -> Callable[[], Callable[..., bytes]]:
    """A factory of streaming compressors: `step(chunk)`, then `step(b"", final=True)`."""

    def brotli_stream() -> Callable[..., bytes]:
        state = brotli.Compressor(quality=BROTLI_QUALITY)

        def step(chunk: bytes, final: bool = False) -> bytes:
            out = state.process(chunk) + state.flush()
            return out + state.finish() if final else out

        return step

    def zstd_stream() -> Callable[..., bytes]:
        state = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()

        def step(chunk: bytes, final: bool = False) -> bytes:
            out = state.compress(chunk)
            flush = (
                zstandard.COMPRESSOBJ_FLUSH_FINISH if final else zstandard.COMPRESSOBJ_FLUSH_BLOCK
            )
            return out + state.flush(flush)

        return step

    def gzip_stream() -> Callable[..., bytes]:
        state = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing

        def step(chunk: bytes, final: bool = False) -> bytes:
            out = state.compress(chunk)
            return out + state.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)

        return step

    return {"br": brotli_stream, "zstd": zstd_stream, "gzip": gzip_stream}[encoding]


async def compress_stream(chunks: AsyncIterator[bytes], encoding: str) -> AsyncIterator[bytes]:
    """Compress a stream chunk by chunk, flushing each so the client sees it early."""
    step = _compressor(encoding)()
    async for chunk in chunks:
        out = step(chunk)
        if out:
            yield out
    yield step(b"", final=True)
