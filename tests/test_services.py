"""The origin and the PoP as real processes: caching, compression, limits, metrics."""

import gzip
import hashlib
import json

import brotli
import pytest
import zstandard
from test_services_support import (
    LoopbackEdge,
    alive,
    control_raw,
    metrics,
    request,
    wait_until,
)

from kit.control import call, deploy, undeploy


@pytest.fixture(scope="module")
def world():
    world = LoopbackEdge()
    yield world
    world.close()


def set_rules(world, *rules, version="v1"):
    call(world.origin.control, "POST", "/_kit/config", {"rules": list(rules), "version": version})


def test_health_and_metrics_shape(world):
    for service, name in ((world.origin, "origin"), (world.pop, "pop")):
        health = call(service.control, "GET", "/_kit/health")
        assert health["status"] == "ok" and health["service"] == name
        snapshot = metrics(service)
        for key in ("requests", "bytes_in", "bytes_out", "cache", "latency_ms"):
            assert key in snapshot
        assert set(snapshot["cache"]) >= {"hit", "miss", "stale"}


def test_the_origin_names_itself_on_every_response(world):
    eu = world.start("origin", "--name", "origin-eu")
    try:
        page = request(eu.url, "/page/home")
        assert page.status == 200 and page.headers["x-origin"] == "origin-eu"
        etag = {"If-None-Match": page.headers["ETag"]}
        not_modified = request(eu.url, "/page/home", headers=etag)
        assert not_modified.status == 304 and not_modified.headers["x-origin"] == "origin-eu"
        missing = request(eu.url, "/nothing")
        assert missing.status == 404 and missing.headers["x-origin"] == "origin-eu"
        assert call(eu.control, "GET", "/_kit/health")["origin"] == "origin-eu"
    finally:
        eu.stop()
    through_pop = request(world.pop.url, "/page/named")  # default name, kept by the PoP
    assert through_pop.headers["x-origin"] == "origin"
    cached = request(world.pop.url, "/page/named")
    assert cached.cache == "HIT" and cached.headers["x-origin"] == "origin"


def test_hit_after_miss_with_age_and_pop_header(world):
    set_rules(world, {"match": "/api/items/hit*", "headers": {"Cache-Control": "max-age=60"}})
    before = metrics(world.pop)
    first = request(world.pop.url, "/api/items/hit1")
    second = request(world.pop.url, "/api/items/hit1")
    assert (first.cache, second.cache) == ("MISS", "HIT")
    assert second.headers["x-edge-pop"] == "fra"
    assert int(second.headers["Age"]) >= 0
    assert first.body == second.body
    after = metrics(world.pop)
    assert after["origin_fetches"] - before["origin_fetches"] == 1
    assert after["cache"]["hit"] - before["cache"]["hit"] == 1


def test_no_store_always_goes_to_origin(world):
    set_rules(world)  # the API's default is Cache-Control: no-store
    before = metrics(world.origin)["requests"]
    replies = [request(world.pop.url, "/api/items/nostore") for _ in range(3)]
    assert [r.cache for r in replies] == ["MISS"] * 3
    assert metrics(world.origin)["requests"] - before == 3


def test_vary_keeps_one_copy_per_header_value(world):
    rule = {"Cache-Control": "max-age=60", "Vary": "Accept-Language"}
    set_rules(world, {"match": "/api/items/vary*", "headers": rule})
    seen = [
        request(world.pop.url, "/api/items/vary1", headers={"Accept-Language": lang}).cache
        for lang in ("en", "fr", "en", "fr")
    ]
    assert seen == ["MISS", "MISS", "HIT", "HIT"]


def test_etag_revalidation_gets_304_from_origin(world):
    set_rules(world, {"match": "/api/items/etag*", "headers": {"Cache-Control": "no-cache"}})
    before = metrics(world.origin)["not_modified"]
    first = request(world.pop.url, "/api/items/etag1")
    second = request(world.pop.url, "/api/items/etag1")
    assert (first.cache, second.cache) == ("MISS", "REVALIDATED")
    assert second.body == first.body
    assert metrics(world.origin)["not_modified"] - before == 1


def test_client_if_none_match_gets_304_from_the_pop(world):
    set_rules(world, {"match": "/api/items/inm*", "headers": {"Cache-Control": "max-age=60"}})
    etag = request(world.pop.url, "/api/items/inm1").headers["ETag"]
    reply = request(world.pop.url, "/api/items/inm1", headers={"If-None-Match": etag})
    assert reply.status == 304 and reply.body == b""


def test_stale_while_revalidate_serves_stale_then_refreshes(world):
    rule = {"Cache-Control": "max-age=1, stale-while-revalidate=60"}
    set_rules(world, {"match": "/api/items/swr*", "headers": rule})
    first = request(world.pop.url, "/api/items/swr1")
    assert first.cache == "MISS" and first.json()["version"] == "v1"
    set_rules(world, {"match": "/api/items/swr*", "headers": rule}, version="v2")
    assert wait_until(lambda: request(world.pop.url, "/api/items/swr1").cache == "STALE")
    # The stale answer started a background refresh: soon a fresh v2 copy is served.
    assert wait_until(lambda: request(world.pop.url, "/api/items/swr1").json()["version"] == "v2")


def test_stale_if_error_on_origin_5xx(world):
    rule = {
        "match": "/api/items/sie*",
        "headers": {"Cache-Control": "max-age=1, stale-if-error=60"},
    }
    set_rules(world, rule)
    assert request(world.pop.url, "/api/items/sie1").cache == "MISS"
    set_rules(world, {"match": "/api/items/sie*", "status": 503})
    # Once the copy is stale the origin's 503 is hidden behind it.
    assert wait_until(lambda: request(world.pop.url, "/api/items/sie1").cache == "STALE")
    assert request(world.pop.url, "/api/items/sie1").json()["id"] == "sie1"
    assert request(world.pop.url, "/api/items/sie-uncached").status == 503


def test_stale_if_error_when_origin_is_down():
    world = LoopbackEdge()
    try:
        rule = {"match": "/page/*", "headers": {"Cache-Control": "max-age=1, stale-if-error=60"}}
        set_rules(world, rule)
        first = request(world.pop.url, "/page/down")
        assert first.cache == "MISS"
        world.origin.stop()
        assert wait_until(lambda: request(world.pop.url, "/page/down").cache == "STALE")
        assert request(world.pop.url, "/page/down").body == first.body
        gone = request(world.pop.url, "/page/never-cached")
        assert gone.status == 502 and b"origin unreachable" in gone.body
        assert alive(world.pop)
    finally:
        world.close()


@pytest.mark.parametrize(
    "encoding, unpack",
    [
        ("br", brotli.decompress),
        ("zstd", lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b)),
        ("gzip", gzip.decompress),
    ],
)
def test_compression_is_negotiated(world, encoding, unpack):
    plain = request(world.origin.url, "/static/10k.txt").body
    reply = request(world.pop.url, "/static/10k.txt", headers={"Accept-Encoding": encoding})
    assert reply.headers["Content-Encoding"] == encoding
    assert "Accept-Encoding" in reply.headers["Vary"]
    assert len(reply.body) < len(plain) and unpack(reply.body) == plain


def test_no_compression_without_accept_encoding_or_for_binary(world):
    plain = request(world.pop.url, "/static/10k.txt", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and len(plain.body) == 10240
    binary = request(world.pop.url, "/static/10k.bin", headers={"Accept-Encoding": "br"})
    assert "Content-Encoding" not in binary.headers and len(binary.body) == 10240


def test_large_bodies_stream_through_and_are_cached(world):
    direct = request(world.origin.url, "/static/1m.bin").body
    first = request(world.pop.url, "/static/1m.bin")
    second = request(world.pop.url, "/static/1m.bin")
    assert len(direct) == 1 << 20
    assert hashlib.sha256(first.body).digest() == hashlib.sha256(direct).digest()
    assert (first.cache, second.cache) == ("MISS", "HIT") and second.body == direct


def test_post_bypasses_the_cache_and_reaches_origin(world):
    reply = request(world.pop.url, "/api/echo", "POST", body=b'{"x": 1}')
    assert reply.status == 200 and reply.cache == "BYPASS"
    assert reply.json()["method"] == "POST"
    assert reply.json()["headers"]["Via"] == "1.1 fra"


def test_origin_think_time_override_is_validated(world):
    assert request(world.origin.url, "/api/items/t?think=1").status == 200
    bad = request(world.origin.url, "/api/items/t?think=soon")
    assert bad.status == 400 and b"think" in bad.body


def test_malformed_and_oversized_requests_get_4xx(world):
    for service in (world.origin, world.pop):
        huge = request(service.url, "/api/echo", "POST", body=b"x" * (2 << 20))
        assert huge.status == 413, service.url
        long_header = request(service.url, "/", headers={"X-Big": "y" * 20000})
        assert 400 <= long_header.status < 500
    bad_size = request(world.origin.url, "/static/lots.bin")
    assert bad_size.status == 400 and b"size" in bad_size.body
    bad_json = control_raw(world.pop, "POST", "/_kit/deploy", b"{not json")
    assert bad_json.status == 400
    nonsense = control_raw(
        world.origin, "POST", "/_kit/config", json.dumps({"nonsense": 1}).encode()
    )
    assert nonsense.status == 400
    assert alive(world.pop)


def test_purge_and_logs(world):
    set_rules(world, {"match": "/api/items/purge*", "headers": {"Cache-Control": "max-age=60"}})
    request(world.pop.url, "/api/items/purge1")
    assert request(world.pop.url, "/api/items/purge1").cache == "HIT"
    reply = call(world.pop.control, "DELETE", "/_kit/cache?prefix=/api/items/purge")
    assert reply["purged"] == 1
    assert request(world.pop.url, "/api/items/purge1").cache == "MISS"
    assert any(line["event"] == "listening" for line in world.pop.logs())


def test_a_deployed_handler_runs_before_the_cache_where_it_matches(world):
    set_rules(world, {"match": "/api/items/first*", "headers": {"Cache-Control": "max-age=60"}})
    for path in ("/api/items/first1", "/api/items/first2"):
        assert [request(world.pop.url, path).cache for _ in range(2)] == ["MISS", "HIT"]
    source = """
async def middleware(request, env, ctx, next):
    response = await next()
    response.headers["x-handled"] = "yes"
    return response

config = {"matcher": ["/api/items/first1"]}
"""
    deploy(source, world.pop.control)
    try:
        handled = request(world.pop.url, "/api/items/first1")  # cached, but the handler fits
        assert handled.cache == "HIT" and handled.headers["x-handled"] == "yes"
        plain = request(world.pop.url, "/api/items/first2")  # the matcher does not fit
        assert plain.cache == "HIT" and "x-handled" not in plain.headers
    finally:
        undeploy(world.pop.control)
