"""The ESI processor alone (kit/services/esi.py): parsing, and assembling with a fetch function.

The fetch function here answers from a dict, with a delay per path, so order,
parallelism, timeouts, depth and the allow-list are tested without a network.
The PoP running it against a real origin is tests/test_esi_pop.py.
"""

import asyncio
import time

import pytest

from kit.runtime.http import Response
from kit.services import esi
from kit.services.esi import Include, IncludeFailed, Limits, assemble, parse

ESI = {"Surrogate-Control": 'content="ESI/1.0"'}


def run(test):
    """Run an async test function in its own event loop."""

    def sync(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    sync.__name__ = test.__name__
    return sync


def test_a_page_without_markup_is_one_piece_of_text():
    body = b"<html><p>nothing <b>here</b> &amp; <esi-like></p></html>"
    template = parse(body)
    assert template.pieces == [body] and not template.has_markup and not template.errors


def test_include_remove_comment_and_esi_comments():
    body = (
        b'<a><esi:include src="/x?a=1&amp;b=2" alt="/y" onerror="continue"/>'
        b"<esi:remove><a href=/nojs>link</a></esi:remove>"
        b'<!--esi <p>in</p><esi:include src="/z"></esi:include> -->'
        b'<esi:comment text="gone"/></a>'
    )
    template = parse(body)
    assert template.pieces == [
        b"<a>",
        Include("/x?a=1&b=2", "/y", True),
        b" <p>in</p>",
        Include("/z"),
        b" </a>",
    ]
    assert not template.errors


@pytest.mark.parametrize(
    "body, error",
    [
        (b'<p><esi:include src="/x"', "never closes"),
        (b"<p><esi:include/></p>", "without src"),
        (b"<esi:remove>forever", "without </esi:remove>"),
        (b"<!--esi <p>", "without its closing"),
        (b'<esi:choose><esi:when test="1">x</esi:when></esi:choose>', "not supported"),
    ],
)
def test_malformed_markup_is_kept_as_text_and_named(body, error):
    template = parse(body)
    assert any(error in e for e in template.errors), template.errors
    assert b"".join(p for p in template.pieces if isinstance(p, bytes))  # nothing lost


def fetcher(pages, delays=None, calls=None):
    async def fetch(target):
        if calls is not None:
            calls.append(target)
        await asyncio.sleep((delays or {}).get(target, 0))
        if target not in pages:
            return Response(b"missing", 404)
        body, headers = pages[target] if isinstance(pages[target], tuple) else (pages[target], {})
        return Response(body, 200, headers)

    return fetch


async def collect(body, fetch, limits=None, timeline=None):
    started, parts = time.monotonic(), []
    async for part in assemble(parse(body), fetch, limits or Limits(), ("/page",)):
        parts.append(part)
        if timeline is not None:
            timeline.append((time.monotonic() - started, part))
    return b"".join(parts)


@pytest.mark.timing
@run
async def test_includes_run_in_parallel_and_come_out_in_document_order():
    pages = {"/slow": b"S", "/fast": b"F", "/mid": b"M"}
    delays = {"/slow": 0.3, "/mid": 0.2, "/fast": 0.0}
    body = b'<h1>shell</h1><esi:include src="/slow"/>-<esi:include src="/fast"/>-'
    body += b'<esi:include src="/mid"/>'
    timeline = []
    started = time.monotonic()
    page = await collect(body, fetcher(pages, delays), timeline=timeline)
    assert page == b"<h1>shell</h1>S-F-M"
    assert time.monotonic() - started < 0.45  # not 0.5 s: the includes overlapped
    assert timeline[0] == (pytest.approx(0, abs=0.05), b"<h1>shell</h1>")  # the shell first


@run
async def test_alt_then_onerror_continue_then_abort():
    fetch = fetcher({"/alt": b"A"})
    assert await collect(b'[<esi:include src="/gone" alt="/alt"/>]', fetch) == b"[A]"
    skipped = b'[<esi:include src="/gone" onerror="continue"/>]'
    assert await collect(skipped, fetch) == b"[]"
    with pytest.raises(IncludeFailed, match="/gone: status 404"):
        await collect(b'[<esi:include src="/gone"/>]', fetch)


@run
async def test_nested_includes_and_a_loop_stopped_at_the_depth_limit():
    pages = {"/outer": (b'(<esi:include src="/inner"/>)', ESI), "/inner": b"in"}
    assert await collect(b'<esi:include src="/outer"/>', fetcher(pages)) == b"(in)"
    loop = {"/a": (b'a<esi:include src="/b"/>', ESI), "/b": (b'b<esi:include src="/a"/>', ESI)}
    calls = []
    with pytest.raises(IncludeFailed, match=r"depth limit \(5\) reached: /page -> /a -> /b"):
        await collect(b'<esi:include src="/a"/>', fetcher(loop, calls=calls))
    assert len(calls) == esi.MAX_DEPTH
    errors = []
    limits = Limits(on_error=errors.append)
    page = await collect(b'<esi:include src="/a" onerror="continue"/>!', fetcher(loop), limits)
    assert page == b"!" and "depth limit" in errors[0]


@run
async def test_a_fragment_that_never_answers_is_bounded():
    fetch = fetcher({"/never": b"x", "/ok": b"ok"}, {"/never": 60})
    started = time.monotonic()
    page = await collect(
        b'<esi:include src="/never" onerror="continue"/><esi:include src="/ok"/>',
        fetch,
        Limits(timeout_s=0.2),
    )
    assert page == b"ok" and time.monotonic() - started < 1


@run
async def test_src_goes_only_to_the_origin_or_the_allow_list():
    from yarl import URL

    calls = []
    fetch = fetcher({"/p": b"P", "http://10.9.9.9/q": b"Q"}, calls=calls)
    limits = Limits(origin=URL("http://10.0.0.1:8000"), allowed=frozenset({"http://10.9.9.9:80"}))
    body = (
        b'<esi:include src="http://10.0.0.1:8000/p"/><esi:include src="http://10.9.9.9/q"/>'
        b'<esi:include src="//evil.example/x" onerror="continue"/>'
        b'<esi:include src="http://169.254.169.254/latest" onerror="continue"/>'
        b'<esi:include src="file:///etc/passwd" onerror="continue"/>'
    )
    assert await collect(body, fetch, limits) == b"PQ"
    assert calls == ["/p", "http://10.9.9.9/q"]


@run
async def test_includes_per_page_are_bounded():
    body = b'<esi:include src="/x" onerror="continue"/>' * (esi.MAX_INCLUDES + 10)
    page = await collect(body, fetcher({"/x": b"x"}))
    assert page == b"x" * esi.MAX_INCLUDES


PIECES = [
    b'<esi:include src="/a"/>',
    b'<esi:include src="/loop" onerror="continue"/>',
    b'<esi:include src="//elsewhere/x" alt="/a" onerror="continue"/>',
    b"<esi:include",
    b"/>",
    b"<esi:remove>",
    b"</esi:remove>",
    b"<!--esi",
    b"-->",
    b'<esi:comment text="c"/>',
    b"<esi:vars>",
    b"<p>",
    b"text \xff\x00 ",
    b"<",
    b">",
    b'"',
]


@run
async def test_random_markup_never_breaks_the_parser_or_the_assembler():
    """Fuzzed templates: parse never raises; assembly ends (or names its failure) in bounds."""
    import random

    rng = random.Random()
    pages = {"/a": b"A", "/loop": (b'<esi:include src="/loop" onerror="continue"/>', ESI)}
    for _ in range(300):
        body = b"".join(rng.choices(PIECES, k=rng.randint(0, 30)))
        template = parse(body)
        if not template.has_markup:
            assert template.pieces == [body]
        try:
            async with asyncio.timeout(5):
                await collect(body, fetcher(pages), Limits(timeout_s=0.5))
        except IncludeFailed as failed:
            assert str(failed)


def test_a_page_that_is_all_removed_is_still_processed():
    template = parse(b"<esi:remove>only for clients without ESI</esi:remove>")
    assert template.has_markup and template.pieces == [b""]
