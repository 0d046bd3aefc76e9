"""The PoP's CDN features on loopback: targeted cache control, purge by URL and tag,
request collapsing, Vary with compression, and the RUM collector under bad input."""

import json
import math
from concurrent.futures import ThreadPoolExecutor

import brotli
import pytest
import zstandard
from test_services_support import LoopbackEdge, metrics, request

from kit.control import call, protocol
from kit.services.rum import sketch_from_export

pytestmark = pytest.mark.loopback


@pytest.fixture(scope="module")
def edge():
    edge = LoopbackEdge()
    yield edge
    edge.close()


def rules(edge, *rules, version="v1", think_ms=0):
    config = {"rules": list(rules), "version": version, "think_ms": think_ms}
    call(edge.origin.control, "POST", protocol.CONFIG, config)
    call(edge.pop.control, "DELETE", protocol.CACHE)


def test_surrogate_control_decides_and_never_reaches_the_client(edge):
    rules(
        edge,
        {
            "match": "/page/*",
            "headers": {
                "Cache-Control": "no-store",
                "Surrogate-Control": "max-age=60",
                "Surrogate-Key": "articles page-t1",
            },
        },
    )
    first, second = (request(edge.pop, "/page/t1") for _ in range(2))
    assert (first.cache, second.cache) == ("MISS", "HIT")
    for reply in (first, second):
        assert reply.headers["Cache-Control"] == "no-store"  # the browser's own policy
        assert "Surrogate-Control" not in reply.headers and "Surrogate-Key" not in reply.headers


def test_cdn_cache_control_decides(edge):
    rules(edge, {"match": "/api/items/*", "headers": {"CDN-Cache-Control": "max-age=60"}})
    assert [request(edge.pop, "/api/items/7").cache for _ in range(2)] == ["MISS", "HIT"]


def test_purge_by_tag_and_url_on_the_control_plane(edge):
    tagged = {"Cache-Control": "max-age=60", "Cache-Tag": "shoes, sale"}
    rules(
        edge,
        {"match": "/page/shoe-*", "headers": tagged},
        {"match": "/page/*", "headers": {"Cache-Control": "max-age=60"}},
    )
    for path in ("/page/shoe-1", "/page/shoe-2", "/page/hat", "/page/hat?x=1"):
        request(edge.pop, path)
    purged = call(edge.pop.control, "DELETE", f"{protocol.CACHE}?tag=sale")
    assert purged["purged"] == 2
    assert request(edge.pop, "/page/shoe-1").cache == "MISS"
    assert request(edge.pop, "/page/hat").cache == "HIT"
    assert call(edge.pop.control, "DELETE", f"{protocol.CACHE}?url=%2Fpage%2Fhat")["purged"] == 1
    assert request(edge.pop, "/page/hat").cache == "MISS"
    assert request(edge.pop, "/page/hat?x=1").cache == "HIT"


def test_a_burst_of_misses_makes_one_origin_request(edge):
    rules(edge, {"match": "/page/*", "think_ms": 300})
    before = metrics(edge.origin)["requests"]
    with ThreadPoolExecutor(20) as pool:
        replies = list(pool.map(lambda _: request(edge.pop, "/page/burst"), range(20)))
    assert all(r.status == 200 for r in replies)
    assert metrics(edge.origin)["requests"] - before == 1
    assert sorted(r.cache for r in replies).count("MISS") == 1
    assert metrics(edge.pop)["collapsed"] >= 19


def test_uncacheable_answers_are_not_shared_by_collapsing(edge):
    rules(edge, {"match": "/p/*", "think_ms": 200, "headers": {"Cache-Control": "private"}})
    users = [f"user{i:02d}xyz" for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        replies = list(
            pool.map(lambda u: request(edge.pop, "/p/me", headers={"Cookie": f"uid={u}"}), users)
        )
    for user, reply in zip(users, replies, strict=True):
        assert f"Hello, {user}" in reply.body.decode()


@pytest.mark.parametrize(
    "accept, encoding, decode",
    [
        ("br", "br", brotli.decompress),
        ("zstd", "zstd", lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b)),
        ("gzip, deflate", "gzip", None),
        ("identity", None, None),
    ],
)
def test_compression_is_negotiated_with_vary(edge, accept, encoding, decode):
    rules(edge)
    plain = request(edge.pop, "/static/20k.txt", headers={"Accept-Encoding": "identity"})
    reply = request(edge.pop, "/static/20k.txt", headers={"Accept-Encoding": accept})
    assert reply.headers.get("Content-Encoding") == encoding
    assert "Accept-Encoding" in reply.headers.get("Vary", "")
    if decode:
        assert decode(reply.body) == plain.body and len(reply.body) < len(plain.body) / 2


def beacon(edge, body: bytes, ip="127.0.0.2"):
    return request(edge.pop, "/cdn-cgi/rum", "POST", body=body, source_ip=ip)


def test_beacons_are_kept_per_region_of_the_sender(edge):
    call(edge.pop.control, "DELETE", protocol.RUM)
    for value in (10, 20, 30):
        assert (
            beacon(edge, json.dumps({"load_ms": value, "region": "tokyo"}).encode()).status == 204
        )
    assert beacon(edge, b'{"ttfb_ms": 5}', ip="127.0.0.3").status == 204
    exported = call(edge.pop.control, "GET", protocol.RUM)
    assert set(exported["regions"]) == {"frankfurt", "tokyo"}  # the address decides, not the body
    sketch = sketch_from_export(
        exported["regions"]["frankfurt"]["load_ms"], exported["relative_accuracy"]
    )
    assert sketch.count == 3 and math.isclose(sketch.get_quantile_value(0.5), 20, rel_tol=0.02)


def test_absurd_beacons_get_a_clear_answer_and_the_pop_keeps_serving(edge):
    call(edge.pop.control, "DELETE", protocol.RUM)
    bad = [b'{"load_ms": -5}', b'{"load_ms": NaN}', b'{"load_ms": 1e308}', b'{"load_ms": "x"}']
    for body in bad:
        reply = beacon(edge, body)
        assert reply.status == 400 and b"load_ms" in reply.body
    assert beacon(edge, b"[" * 3000).status == 400
    assert beacon(edge, b"x" * 100_000).status == 413
    assert request(edge.pop, "/cdn-cgi/rum").status == 405
    exported = call(edge.pop.control, "GET", protocol.RUM)
    assert exported["accepted"] == 0 and sum(exported["rejected"].values()) == 6
    assert request(edge.pop, "/page/after").status == 200


def test_a_beacon_flood_is_refused_with_429_and_the_pop_keeps_serving(edge):
    call(edge.pop.control, "DELETE", protocol.RUM)
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: beacon(edge, b'{"load_ms": 3}').status, range(2600)))
    assert set(statuses) <= {204, 429} and statuses.count(429) > 0
    assert request(edge.pop, "/page/during").status == 200
    exported = call(edge.pop.control, "GET", protocol.RUM)
    assert exported["rejected"].get("flood") == statuses.count(429)
    assert exported["accepted"] == statuses.count(204)


def test_without_collapsing_every_miss_reaches_the_origin():
    edge = LoopbackEdge("--no-collapse")
    try:
        rules(edge, {"match": "/page/*", "think_ms": 300})
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda _: request(edge.pop, "/page/burst"), range(8)))
        assert all(r.status == 200 for r in replies)
        assert metrics(edge.origin)["requests"] == 8
    finally:
        edge.close()
