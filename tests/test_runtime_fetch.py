"""`env.fetch`: a handler sends requests to any URL through its PoP's connection pool.

A PoP with its origin, a second origin named origin-eu, and two small loopback
servers made here: one that records which client port each request came from
(to see connections reused), and one that accepts connections and never answers.
"""

import gzip
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from test_services_support import LoopbackEdge, alive, metrics, request

from kit.control import deploy, undeploy

TO_EU = """
async def fetch(request, env, ctx):
    return await env.fetch(request.replace(url=env.config["eu"] + request.url.path_qs))
"""


@pytest.fixture(scope="module")
def world():
    world = LoopbackEdge()
    world.eu = world.start("origin", "--name", "origin-eu")
    yield world
    world.close()


@pytest.fixture
def pop(world):
    yield world.pop
    undeploy(world.pop.control)


class PortRecorder(BaseHTTPRequestHandler):
    """Answers every GET with 200 and remembers the client port it came from."""

    protocol_version = "HTTP/1.1"  # keep-alive, so a client can reuse the connection
    ports: list[int] = []

    def do_GET(self) -> None:
        self.ports.append(self.client_address[1])
        body = b"recorded"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder():
    server = ThreadingHTTPServer(("127.0.0.1", 0), PortRecorder)
    PortRecorder.ports = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", PortRecorder.ports
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port():
    with socket.socket() as probe:  # a port nobody listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def silent_server():
    with socket.socket() as server:  # the kernel completes handshakes; nobody answers
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def test_a_request_goes_to_another_origin_past_the_cache(world, pop):
    deploy(TO_EU, pop.control, config={"eu": world.eu.url})
    before = metrics(world.pop)
    replies = [request(pop, "/page/home") for _ in range(2)]
    for reply in replies:
        assert reply.status == 200 and b"<h1>home</h1>" in reply.body
        assert reply.headers["x-origin"] == "origin-eu" and reply.cache is None
    assert metrics(world.eu)["requests"] == 2  # no cache: both reached origin-eu
    after = metrics(world.pop)
    assert after["fetches"] - before["fetches"] == 2
    assert after["origin_fetches"] == before["origin_fetches"]
    assert after["fetch_bytes"] - before["fetch_bytes"] == 2 * len(replies[0].body)


def test_method_headers_and_body_are_forwarded_like_the_origin_path(world, pop):
    deploy(TO_EU, pop.control, config={"eu": world.eu.url})
    reply = request(
        pop,
        "/api/echo?x=1",
        "POST",
        {"X-Trace": "abc", "Connection": "keep-alive", "Accept-Encoding": "gzip"},
        b"hello",
    )
    assert reply.headers["Content-Encoding"] == "gzip"  # compressed here, for the client
    echoed = json.loads(gzip.decompress(reply.body))
    headers = {k.lower(): v for k, v in echoed["headers"].items()}
    assert echoed["method"] == "POST" and echoed["query"] == {"x": "1"}
    assert headers["x-trace"] == "abc" and headers["content-length"] == "5"
    assert headers["via"] == "1.1 fra" and headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["accept-encoding"] == "identity"  # the PoP compresses, per client
    assert headers["host"] == world.eu.url.removeprefix("http://")


def test_a_url_string_and_a_large_streamed_body(world, pop):
    source = """
async def fetch(request, env, ctx):
    return await env.fetch(env.config["eu"] + "/static/1m.bin")
"""
    deploy(source, pop.control, config={"eu": world.eu.url})
    reply = request(pop, "/anything")
    direct = request(world.eu.url, "/static/1m.bin")
    assert reply.status == 200 and reply.body == direct.body and len(reply.body) == 1 << 20


def test_connections_are_reused_across_requests_and_deploys(recorder, pop):
    url, ports = recorder
    source = "async def fetch(request, env, ctx):\n    return await env.fetch(env.config['url'])\n"
    deploy(source, pop.control, config={"url": url + "/x"})
    assert request(pop, "/a").body == b"recorded"
    assert request(pop, "/b").body == b"recorded"
    deploy(source, pop.control, config={"url": url + "/y"})  # a new version shares the PoP's pool
    assert request(pop, "/c").body == b"recorded"
    assert len(ports) == 3 and len(set(ports)) == 1


def test_no_answer_is_a_502_with_the_reason_and_line(world, pop, closed_port):
    source = """
async def fetch(request, env, ctx):
    return await env.fetch(env.config["url"])
"""
    deploy(source, pop.control, config={"url": f"http://127.0.0.1:{closed_port}/x"})
    before = metrics(world.pop)
    reply = request(pop, "/x")
    assert reply.status == 502 and reply.headers["x-kit-error"] == "handler"
    assert b"FetchError" in reply.body and b"handler.py line 3" in reply.body
    assert f"127.0.0.1:{closed_port}".encode() in reply.body
    assert metrics(world.pop)["fetch_errors"] == before["fetch_errors"] + 1
    assert alive(world.pop)


def test_a_handler_can_catch_the_error_and_a_time_limit(pop, closed_port, silent_server):
    source = """
async def fetch(request, env, ctx):
    try:
        return await env.fetch(env.config[request.path.strip("/")], timeout_s=0.3)
    except FetchError as error:
        return Response.text(f"fallback: {error}", 503)
"""
    urls = {"refused": f"http://127.0.0.1:{closed_port}/", "silent": f"{silent_server}/"}
    deploy(source, pop.control, config=urls)
    refused = request(pop, "/refused")
    assert refused.status == 503 and refused.body.startswith(b"fallback: GET http://127.0.0.1")
    silent = request(pop, "/silent")
    assert silent.status == 503 and b"no answer within 0.3 s" in silent.body


def test_a_relative_url_is_refused_with_a_hint(pop):
    deploy(
        "async def fetch(request, env, ctx):\n    return await env.fetch('/api/x')\n", pop.control
    )
    reply = request(pop, "/x")
    assert reply.status == 500
    assert b"absolute http:// URL" in reply.body and b"env.origin.fetch" in reply.body
