"""Hostile HTTP clients against the real origin and PoP: the services keep serving.

- slowloris: 2,000 connections that send nothing or half a request, against a PoP
  that may open 1,024 files; real requests keep being answered, the guard sheds
  the idle connections and times out the rest, the log stays small.
- oversized headers get a 4xx with a reason and never reach the origin.
- a battery of malformed requests (smuggling, bad framing, bad versions...) gets a
  4xx/505 with a reason from both services, and none reaches the origin.
- the origin's store of generated assets stays under its bound.
"""

from __future__ import annotations

import http.client
import re
import resource
import select
import socket
from contextlib import contextmanager

import pytest
from test_services_support import LoopbackEdge, Service, metrics, request, wait_until

from kit.services.guard import FD_SHARE
from kit.services.origin import ASSET_STORE_BYTES

REFUSED = {400, 413, 431, 505}


@pytest.fixture(scope="module")
def edge():
    edge = LoopbackEdge()
    yield edge
    edge.close()


# -- raw HTTP ------------------------------------------------------------------


def exchange(url: str, data: bytes, timeout: float = 10.0) -> tuple[int | None, bytes]:
    """Send raw bytes; the response's status and body, or (None, b"") if the
    server closed the connection without answering."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):  # refused before we finished
            pass
        received = b""
        try:
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(65536)
                if not chunk:
                    return None, b""
                received += chunk
            head, _, body = received.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length: *(\d+)", head)
            while length and len(body) < int(length[1]):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
        except ConnectionResetError:
            if not received:
                return None, b""
    status = re.match(rb"HTTP/\d\.\d (\d{3}) ", received)
    return (int(status[1]) if status else None), body


def cached_hit(pop: Service) -> bool:
    """A real request: True if the PoP answered it from its cache within 5 s."""
    connection = http.client.HTTPConnection("127.0.0.1", pop.port, timeout=5)
    try:
        connection.request("GET", "/static/10k.bin")
        response = connection.getresponse()
        body = response.read()
        return response.status == 200 and response.getheader("x-cache") == "HIT" and len(body) > 0
    except OSError:
        return False
    finally:
        connection.close()


# -- slowloris -----------------------------------------------------------------


@contextmanager
def soft_file_limit(soft: int):
    """Run with RLIMIT_NOFILE's soft limit set to `soft` (children inherit it)."""
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)


def closed_by_server(sockets: list[socket.socket]) -> int:
    """How many of these connections the server has closed (EOF or reset)."""
    poller = select.poll()
    by_fd = {sock.fileno(): sock for sock in sockets}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    closed = 0
    for fd, _ in poller.poll(0):
        try:
            closed += by_fd[fd].recv(1, socket.MSG_PEEK) == b""
        except OSError:
            closed += 1
    return closed


def test_slowloris_does_not_starve_real_requests():
    attackers_count, rounds = 2000, 4
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < attackers_count + 200:
        pytest.skip(f"needs {attackers_count + 200} open files, hard limit is {hard}")
    with soft_file_limit(1024):  # Debian's default: what the services get
        edge = LoopbackEdge()
    attackers: list[socket.socket] = []
    try:
        with soft_file_limit(attackers_count + 200 if hard == resource.RLIM_INFINITY else hard):
            assert request(edge.pop.url, "/static/10k.bin").cache == "MISS"  # now it is cached
            for _ in range(rounds):
                for number in range(attackers_count // rounds):
                    sock = socket.create_connection(("127.0.0.1", edge.pop.port))
                    if number % 2:  # half send nothing, half half a request
                        sock.sendall(b"GET /static/10k.bin HTTP/1.1\r\nHost: pop\r\n")
                    attackers.append(sock)
                for sock in attackers[1::2]:  # ...and keep dribbling
                    if sock.fileno() >= 0:
                        try:
                            sock.sendall(b"X")
                        except OSError:
                            pass
                assert wait_until(lambda: cached_hit(edge.pop), 10), (
                    f"no answer with {len(attackers)} idle connections open"
                )
            # the PoP may hold 3/4 of 1,024 files in connections: the rest were shed
            limit = int(1024 * FD_SHARE)
            assert wait_until(lambda: closed_by_server(attackers) >= attackers_count - limit)
            shed = lambda: [e for e in edge.pop.logs() if e["event"] == "guard"]  # noqa: E731
            assert wait_until(lambda: shed() and shed()[-1]["totals"].get("shed", 0) > 0)
            # the rest time out: silent ones after 15 s, slow ones after 20 s
            assert wait_until(lambda: closed_by_server(attackers) == attackers_count, 40)
            assert cached_hit(edge.pop)
            for service in edge.services:
                assert service.log_path.stat().st_size < 1 << 20, "the log is flooded"
    finally:
        for sock in attackers:
            sock.close()
        edge.close()


# -- headers -------------------------------------------------------------------


def test_800_kb_of_headers_are_refused_before_the_origin(edge):
    fields = [b"X-Fill-%02d: %s\r\n" % (n, b"v" * 8100) for n in range(99)]  # + Host: 100
    before_origin, before_pop = metrics(edge.origin)["requests"], metrics(edge.pop)["requests"]
    refused = metrics(edge.pop)["guard"]["refused"]
    for url in (edge.pop.url, edge.origin.url):
        status, body = exchange(url, head(b"GET /page/a HTTP/1.1\r\n", b"Host: x\r\n", *fields))
        assert status == 431 and b"more than 32768" in body, (status, body)
    assert metrics(edge.origin)["requests"] == before_origin
    assert metrics(edge.pop)["requests"] == before_pop
    assert metrics(edge.pop)["guard"]["refused"] == refused + 1  # counted where it stopped
    fine = head(b"GET /page/a HTTP/1.1\r\n", b"Host: x\r\n", *fields[:3])  # 24 KB
    assert exchange(edge.pop.url, fine)[0] == 200


# -- malformed HTTP ------------------------------------------------------------

HOST = b"Host: 127.0.0.1\r\n"
POST = b"POST /api/echo HTTP/1.1\r\n" + HOST
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n"
END = b"0\r\n\r\n"  # the last chunk


def head(*lines: bytes, body: bytes = b"") -> bytes:
    return b"".join(lines) + b"\r\n" + body


MALFORMED = {
    # request smuggling: two lengths, or a Transfer-Encoding one hop reads and the next not
    "cl_te": head(POST, b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", body=b"0\r\n\r\nG"),
    "te_cl": head(CHUNKED, b"Content-Length: 3\r\n", body=b"8\r\nSMUGGLED\r\n0\r\n\r\n"),
    "te_te_two_headers": head(CHUNKED, b"Transfer-Encoding: x\r\n", body=b"0\r\n\r\n"),
    "te_unknown_coding": head(POST, b"Transfer-Encoding: xchunked\r\n", body=b"0\r\n\r\n"),
    "te_space_before_colon": head(POST, b"Transfer-Encoding : chunked\r\n", body=b"0\r\n\r\n"),
    "te_vertical_tab": head(POST, b"Transfer-Encoding:\x0bchunked\r\n", body=b"0\r\n\r\n"),
    "te_chunked_not_last": head(
        POST, b"Transfer-Encoding: chunked, identity\r\n", body=b"0\r\n\r\n"
    ),
    "te_obs_fold": head(POST, b"X-A: b\r\n Transfer-Encoding: chunked\r\n", body=b"0\r\n\r\n"),
    "te_in_http_1_0": head(
        b"POST /api/echo HTTP/1.0\r\n", HOST, b"Transfer-Encoding: chunked\r\n", body=b"0\r\n\r\n"
    ),
    # chunk sizes
    "chunk_size_not_hex": head(CHUNKED, body=b"zz\r\nabc\r\n0\r\n\r\n"),
    "chunk_size_negative": head(CHUNKED, body=b"-1\r\nabc\r\n0\r\n\r\n"),
    "chunk_size_0x_prefix": head(CHUNKED, body=b"0x3\r\nabc\r\n0\r\n\r\n"),
    "chunk_size_overflow": head(CHUNKED, body=b"fffffffffffffffffff\r\nabc\r\n0\r\n\r\n"),
    "chunk_size_trailing_space": head(CHUNKED, body=b"3 \r\nabc\r\n0\r\n\r\n"),
    "chunk_size_bare_lf": head(CHUNKED, body=b"3\nabc\r\n0\r\n\r\n"),
    "chunk_longer_than_size": head(CHUNKED, body=b"3\r\nabcdef\r\n0\r\n\r\n"),
    # Content-Length
    "content_length_negative": head(POST, b"Content-Length: -1\r\n", body=b"a"),
    "content_length_plus_sign": head(POST, b"Content-Length: +1\r\n", body=b"a"),
    "content_length_hex": head(POST, b"Content-Length: 0x1\r\n", body=b"a"),
    "content_length_duplicate": head(
        POST, b"Content-Length: 1\r\nContent-Length: 1\r\n", body=b"a"
    ),
    "content_length_conflicting": head(
        POST, b"Content-Length: 1\r\nContent-Length: 2\r\n", body=b"ab"
    ),
    "content_length_list": head(POST, b"Content-Length: 1, 2\r\n", body=b"ab"),
    "content_length_overflow": head(POST, b"Content-Length: 99999999999999999999999\r\n"),
    "content_length_over_body_limit": head(POST, b"Content-Length: 1073741824\r\n", body=b"a"),
    # sizes
    "header_line_too_long": head(b"GET / HTTP/1.1\r\n", HOST, b"X-Long: " + b"a" * 9000 + b"\r\n"),
    "request_line_too_long": head(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n", HOST),
    "too_many_headers": head(
        b"GET / HTTP/1.1\r\n", HOST, *(b"X-%d: v\r\n" % n for n in range(120))
    ),
    "headers_over_32_kb": head(
        b"GET / HTTP/1.1\r\n", HOST, *(b"X-%d: %s\r\n" % (n, b"v" * 8000) for n in range(5))
    ),
    # Host
    "host_control_byte": head(b"GET / HTTP/1.1\r\n", b"Host: 127.0.0.1\x01\r\n"),
    "host_space": head(b"GET / HTTP/1.1\r\n", b"Host: a b\r\n"),
    "host_userinfo": head(b"GET / HTTP/1.1\r\n", b"Host: user@127.0.0.1\r\n"),
    "host_port_not_a_number": head(b"GET / HTTP/1.1\r\n", b"Host: 127.0.0.1:http\r\n"),
    "host_missing": head(b"GET / HTTP/1.1\r\n"),
    "host_twice": head(b"GET / HTTP/1.1\r\n", HOST, HOST),
    # line endings and bytes where they do not belong
    "bare_lf_line_endings": b"GET / HTTP/1.1\nHost: 127.0.0.1\n\n",
    "bare_cr_in_header": head(b"GET / HTTP/1.1\r\n", HOST, b"X-A: a\rb\r\n"),
    "null_byte_in_path": head(b"GET /a\x00b HTTP/1.1\r\n", HOST),
    "delete_byte_in_path": head(b"GET /a\x7fb HTTP/1.1\r\n", HOST),
    "space_in_path": head(b"GET /a b HTTP/1.1\r\n", HOST),
    "null_byte_in_header_value": head(b"GET / HTTP/1.1\r\n", HOST, b"X-A: a\x00b\r\n"),
    "space_in_header_name": head(b"GET / HTTP/1.1\r\n", HOST, b"Bad Name: x\r\n"),
    "header_without_colon": head(b"GET / HTTP/1.1\r\n", HOST, b"NoColon\r\n"),
    "empty_header_name": head(b"GET / HTTP/1.1\r\n", HOST, b": x\r\n"),
    "method_with_bad_characters": head(b"G(ET / HTTP/1.1\r\n", HOST),
    # versions
    "http_0_9": b"GET /\r\n\r\n",
    "http_0_9_named": head(b"GET / HTTP/0.9\r\n", HOST),
    "http_2_0_in_http_1_framing": head(b"GET / HTTP/2.0\r\n", HOST),
    "http_9_9": head(b"GET / HTTP/9.9\r\n", HOST),
    "http_1_10": head(b"GET / HTTP/1.10\r\n", HOST),
    "http_1_1x": head(b"GET / HTTP/1.1x\r\n", HOST),
    "http_lowercase": head(b"GET / http/1.1\r\n", HOST),
    "http2_preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "tls_client_hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
}


@pytest.mark.parametrize("target", ["origin", "pop"])
@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_requests_are_refused_with_a_reason(edge, case, target):
    service = getattr(edge, target)
    before = metrics(edge.origin)["requests"], metrics(edge.pop)["requests"]
    status, body = exchange(service.url, MALFORMED[case])
    assert status in REFUSED and body.strip(), (status, body)
    assert (metrics(edge.origin)["requests"], metrics(edge.pop)["requests"]) == before


def test_a_flood_of_bad_requests_is_summarised_in_the_log(edge):
    seen = len(edge.origin.logs())
    for _ in range(200):
        assert exchange(edge.origin.url, MALFORMED["null_byte_in_path"])[0] == 400

    def new(event: str) -> list[dict]:
        return [line for line in edge.origin.logs()[seen:] if line["event"] == event]

    def suppressed() -> int:  # summed over the seconds the flood lasted (one line each)
        return sum(e["count"] for e in new("suppressed") if e["of"] == "aiohttp.server")

    assert wait_until(lambda: len(new("aiohttp.server")) + suppressed() >= 200)
    assert suppressed() > 0 and len(new("aiohttp.server")) < 100


# -- the origin's asset store --------------------------------------------------


def test_the_origin_keeps_generated_assets_under_a_bound(edge):
    etags = {}
    for megabytes in (64, 63, 62, 61):
        reply = request(edge.origin.url, f"/static/{megabytes}m.bin")
        assert reply.status == 200 and len(reply.body) == megabytes << 20
        assert metrics(edge.origin)["asset_bytes"] <= ASSET_STORE_BYTES
        etags[megabytes] = reply.headers["ETag"]
    assert metrics(edge.origin)["asset_bytes"] == (62 + 61) << 20  # the two used last
    again = request(edge.origin.url, "/static/64m.bin")  # made again: the same bytes
    assert again.headers["ETag"] == etags[64]
    assert metrics(edge.origin)["asset_bytes"] == (61 + 64) << 20
