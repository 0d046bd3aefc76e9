"""The PoP's ESI against real processes: the kit's origin, and an origin serving bad markup.

The kit's origin (`/esi/...` in kit/services/origin.py) gives pages made of
fragments; a small origin started here gives what the kit's never does:
malformed markup, an include loop, a fragment that never answers, an include
of another host. Every time the PoP must answer within its bounds and go on
serving.
"""

import asyncio
import http.client
import socket
import threading
import time

import pytest
from aiohttp import web
from test_services_support import LoopbackEdge, metrics, request

from kit.services import esi

pytestmark = pytest.mark.loopback
CUT = (http.client.HTTPException, ConnectionError)  # a body cut before its end

ESI = {"Surrogate-Control": 'content="ESI/1.0"', "Cache-Control": "public, max-age=60"}
BAD_PAGES = {
    "/plain": (b"<p>no markup <b>here</b></p>", ESI),
    "/malformed": (b'<p>a<esi:include src="/frag"/>b<esi:include src="/frag"', ESI),
    "/no-src": (b"<p><esi:include/>c</p>", ESI),
    "/loop": (b'L<esi:include src="/loop"/>', ESI),
    "/loop-continue": (b'[<esi:include src="/loop" onerror="continue"/>]', ESI),
    "/never": (b'[<esi:include src="/hang" onerror="continue"/>]', ESI),
    "/elsewhere": (b'[<esi:include src="http://127.0.0.1:9/x" onerror="continue"/>]', ESI),
    "/broken": (b'[<esi:include src="/missing"/>]', ESI),
    "/frag": (b"F", {"Cache-Control": "public, max-age=60"}),
}


class BadOrigin:
    """An origin on loopback serving `BAD_PAGES` (and `/hang`, which never answers)."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    async def serve(self, request: web.Request) -> web.Response:
        if request.path == "/hang":
            await asyncio.sleep(3600)
        if request.path not in BAD_PAGES:
            return web.Response(status=404, text="no")
        body, headers = BAD_PAGES[request.path]
        return web.Response(body=body, headers=headers, content_type="text/html")

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self.serve)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        self.loop.run_until_complete(site.start())
        self.ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        async def stop() -> None:
            for task in asyncio.all_tasks():  # /hang's handlers, still asleep
                if task is not asyncio.current_task():
                    task.cancel()
            await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def edge():
    world = LoopbackEdge()
    yield world
    world.close()


@pytest.fixture(scope="module")
def bad(edge):
    origin = BadOrigin()
    pop = edge.start("pop", "--pop", "bad", "--origin", f"http://127.0.0.1:{origin.port}")
    yield pop
    pop.stop()
    origin.close()


def fragment_counts(edge) -> dict:
    return {k: v for k, v in metrics(edge.origin).items() if k.startswith("fragment:")}


def test_a_page_is_assembled_from_cached_fragments_and_matches_the_whole(edge):
    layout = "/esi/page/tea?f=head:300:0,user,news:5:100"
    whole = request(edge.origin, "/esi/whole/tea?f=head:300:0,user,news:5:100", headers={})
    cookie = {"Cookie": "uid=ana<&>"}
    first = request(edge.pop, layout, headers=cookie)
    second = request(edge.pop, layout, headers=cookie)
    expected = request(edge.origin, "/esi/whole/tea?f=head:300:0,user,news:5:100", headers=cookie)
    assert first.body == second.body == expected.body != whole.body
    assert b"Hello, ana&lt;&amp;&gt;" in first.body
    assert "Surrogate-Control" not in first.headers and "ETag" not in first.headers
    counts = fragment_counts(edge)
    assert counts["fragment:head"] == 1 and counts["fragment:news"] == 1  # cached
    assert counts["fragment:user"] >= 2  # private: every time


def test_a_page_without_markup_passes_byte_for_byte(bad, edge):
    reply = request(bad, "/plain")
    assert reply.body == BAD_PAGES["/plain"][0] and "Surrogate-Control" not in reply.headers
    assert "ETag" in request(edge.pop, "/esi/frag/plain/60").headers


def test_malformed_markup_is_kept_and_the_rest_assembled(bad):
    reply = request(bad, "/malformed")
    assert reply.status == 200
    assert reply.body == b'<p>aFb<esi:include src="/frag"'
    assert request(bad, "/no-src").body == b"<p><esi:include/>c</p>"
    assert metrics(bad)["esi_errors"] >= 2


def test_a_loop_stops_at_the_depth_limit(bad):
    started = time.monotonic()
    reply = request(bad, "/loop-continue")
    assert reply.body == b"[]" and time.monotonic() - started < 5
    with pytest.raises(CUT):  # without onerror: the body is cut, as Varnish aborts
        request(bad, "/loop")
    errors = [line.get("error", "") for line in bad.logs() if line.get("event") == "esi_error"]
    assert any(
        f"depth limit ({esi.MAX_DEPTH}) reached" in e and "/loop -> /loop" in e for e in errors
    )


def test_a_fragment_that_never_answers_is_bounded(bad):
    started = time.monotonic()
    reply = request(bad, "/never")
    assert reply.body == b"[]"
    assert time.monotonic() - started < esi.TIMEOUT_S + 2


def test_no_include_leaves_the_origin_and_a_failed_one_cuts_the_page(bad):
    assert request(bad, "/elsewhere").body == b"[]"
    with pytest.raises(CUT):
        request(bad, "/broken")
    assert request(bad, "/plain").status == 200  # and the PoP goes on serving
