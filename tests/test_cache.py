"""The cache's RFC 9111 / RFC 5861 rules on the pure core, with a fake clock."""

from email.utils import formatdate

import pytest
from multidict import CIMultiDict

from kit.services.cache import (
    HttpCache,
    State,
    etag_matches,
    freshness_lifetime,
    parse_cache_control,
    storable,
)
from kit.services.encoding import compress, compressible, negotiate

NOW = 1_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def cache(clock):
    return HttpCache(max_bytes=1 << 20, max_object_bytes=1 << 16, clock=clock)


def headers(**fields: str) -> CIMultiDict:
    result = CIMultiDict({k.replace("_", "-"): v for k, v in fields.items()})
    result.setdefault("Date", formatdate(NOW, usegmt=True))
    return result


def store(cache, response, request=None, key="/a", body=b"body"):
    return cache.store(key, CIMultiDict(request or {}), 200, response, body, cache.clock())


def test_parse_cache_control():
    assert parse_cache_control('max-age=60, No-Cache, private="x"') == {
        "max-age": "60",
        "no-cache": None,
        "private": "x",
    }
    assert parse_cache_control(None) == {}


def test_lifetime_prefers_s_maxage_then_max_age_then_expires():
    both = parse_cache_control("max-age=10, s-maxage=20")
    assert freshness_lifetime(both, headers()) == 20
    assert freshness_lifetime(parse_cache_control("max-age=10"), headers()) == 10
    expires = headers(Expires=formatdate(NOW + 30, usegmt=True))
    assert freshness_lifetime({}, expires) == 30
    assert freshness_lifetime({}, headers(Expires="garbage")) == 0


def test_heuristic_freshness_is_ten_percent_of_last_modified_age():
    old = headers(Last_Modified=formatdate(NOW - 1000, usegmt=True))
    assert freshness_lifetime({}, old) == pytest.approx(100)


def test_what_may_be_stored():
    assert storable("GET", 200, {}, headers(Cache_Control="max-age=60"))
    assert not storable("POST", 200, {}, headers(Cache_Control="max-age=60"))
    assert not storable("GET", 200, {}, headers(Cache_Control="no-store"))
    assert not storable("GET", 200, {}, headers(Cache_Control="private, max-age=60"))
    assert not storable("GET", 200, {}, headers(Cache_Control="max-age=60", Vary="*"))
    assert not storable("GET", 500, {}, headers())  # not cacheable by default, no freshness
    auth = {"Authorization": "Bearer x"}
    assert not storable("GET", 200, auth, headers(Cache_Control="max-age=60"))
    assert storable("GET", 200, auth, headers(Cache_Control="s-maxage=60"))


def test_fresh_then_stale_and_age_grows(cache, clock):
    store(cache, headers(Cache_Control="max-age=60"))
    entry = cache.lookup("/a", {})
    assert entry.state(clock()) is State.FRESH
    clock.now += 59
    assert entry.age(clock()) == pytest.approx(59)
    assert entry.state(clock()) is State.FRESH
    clock.now += 2
    assert entry.state(clock()) is State.MUST_VALIDATE


def test_age_header_from_upstream_counts(cache, clock):
    store(cache, headers(Cache_Control="max-age=60", Age="50"))
    entry = cache.lookup("/a", {})
    assert entry.age(clock()) == pytest.approx(50)
    clock.now += 11
    assert entry.state(clock()) is State.MUST_VALIDATE


def test_no_store_and_private_are_not_kept(cache):
    assert store(cache, headers(Cache_Control="no-store")) is None
    assert store(cache, headers(Cache_Control="private, max-age=60")) is None
    assert cache.lookup("/a", {}) is None


def test_no_cache_is_kept_but_always_validated(cache, clock):
    entry = store(cache, headers(Cache_Control="no-cache", ETag='"v1"'))
    assert entry is not None
    assert entry.state(clock()) is State.MUST_VALIDATE
    assert entry.validators() == {"If-None-Match": '"v1"'}


def test_nothing_to_serve_or_validate_is_not_kept(cache):
    assert store(cache, headers()) is None  # no freshness, no validator


def test_vary_selects_the_variant(cache):
    vary = headers(Cache_Control="max-age=60", Vary="Accept-Language")
    store(cache, vary, {"Accept-Language": "en"}, body=b"hello")
    store(cache, vary, {"Accept-Language": "fr"}, body=b"bonjour")
    assert cache.lookup("/a", {"Accept-Language": "en"}).body == b"hello"
    assert cache.lookup("/a", CIMultiDict({"accept-language": "fr"})).body == b"bonjour"
    assert cache.lookup("/a", {"Accept-Language": "de"}) is None
    assert cache.lookup("/a", {}) is None


def test_vary_accept_encoding_is_normalised_by_the_pop(cache):
    store(
        cache,
        headers(Cache_Control="max-age=60", Vary="Accept-Encoding"),
        {"Accept-Encoding": "br"},
    )
    assert cache.lookup("/a", {"Accept-Encoding": "gzip"}) is not None


def test_304_refreshes_headers_and_freshness(cache, clock):
    entry = store(cache, headers(Cache_Control="max-age=10", ETag='"v1"'), body=b"same")
    clock.now += 20
    assert entry.state(clock()) is State.MUST_VALIDATE
    entry.refresh(
        headers(Cache_Control="max-age=30", ETag='"v1"', Date=formatdate(clock.now, usegmt=True)),
        clock.now,
        clock.now,
    )
    assert entry.state(clock()) is State.FRESH
    assert entry.lifetime == 30
    assert entry.body == b"same"
    assert dict(entry.headers)["Cache-Control"] == "max-age=30"


def test_304_keeps_the_body_headers_and_stores_no_hop_by_hop(cache, clock):
    entry = store(cache, headers(Cache_Control="max-age=10", ETag='"v1"', Content_Encoding="gzip"))
    clock.now += 20
    not_modified = headers(Cache_Control="max-age=30", Connection="keep-alive")
    entry.refresh(not_modified, clock.now, clock.now)
    stored = CIMultiDict(entry.headers)
    assert stored["Content-Encoding"] == "gzip" and stored["Cache-Control"] == "max-age=30"
    assert "Connection" not in stored


def test_stale_while_revalidate_window(cache, clock):
    entry = store(cache, headers(Cache_Control="max-age=10, stale-while-revalidate=20"))
    clock.now += 15
    assert entry.state(clock()) is State.STALE_WHILE_REVALIDATE
    clock.now += 20
    assert entry.state(clock()) is State.MUST_VALIDATE


def test_stale_if_error_window(cache, clock):
    entry = store(cache, headers(Cache_Control="max-age=10, stale-if-error=60"))
    clock.now += 30
    assert entry.state(clock()) is State.MUST_VALIDATE
    assert entry.usable_if_error(clock())
    clock.now += 60
    assert not entry.usable_if_error(clock())


def test_must_revalidate_forbids_stale(cache, clock):
    entry = store(
        cache,
        headers(
            Cache_Control="max-age=10, must-revalidate, stale-if-error=60, "
            "stale-while-revalidate=60"
        ),
    )
    clock.now += 15
    assert entry.state(clock()) is State.MUST_VALIDATE
    assert not entry.usable_if_error(clock())


def test_s_maxage_with_explicit_stale_directive_allows_stale(cache, clock):
    entry = store(cache, headers(Cache_Control="s-maxage=1, stale-while-revalidate=59"))
    clock.now += 5
    assert entry.state(clock()) is State.STALE_WHILE_REVALIDATE


def test_lru_eviction_by_bytes(clock):
    cache = HttpCache(max_bytes=3000, max_object_bytes=2000, clock=clock)
    fresh = headers(Cache_Control="max-age=60")
    for key in ("/1", "/2", "/3"):
        cache.store(key, {}, 200, fresh, b"x" * 1000, clock())
    assert cache.lookup("/1", {}) is None  # oldest went first
    assert cache.lookup("/3", {}) is not None
    assert cache.bytes <= 3000
    assert cache.store("/big", {}, 200, fresh, b"x" * 2001, clock()) is None


def test_the_byte_count_is_what_is_stored(clock):
    """A compressed copy made for an entry that was evicted meanwhile is not counted."""
    cache = HttpCache(max_bytes=3000, max_object_bytes=2000, clock=clock)
    fresh = headers(Cache_Control="max-age=60")
    first = cache.store("/1", {}, 200, fresh, b"x" * 1000, clock())
    cache.add_encoded(first, "gzip", b"z" * 100)
    for key in ("/2", "/3"):  # /1 is evicted, while a response from it is being sent
        cache.store(key, {}, 200, fresh, b"x" * 1000, clock())
    assert not first.stored
    cache.add_encoded(first, "br", b"b" * 100)
    stored = [entry for variants in cache.variants.values() for entry in variants]
    assert cache.bytes == sum(entry.size for entry in stored)
    cache.invalidate("/2")
    cache.purge("/")
    assert cache.bytes == 0


def test_invalidate_and_purge(cache):
    store(cache, headers(Cache_Control="max-age=60"), key="/api/1")
    store(cache, headers(Cache_Control="max-age=60"), key="/api/2")
    store(cache, headers(Cache_Control="max-age=60"), key="/page")
    cache.invalidate("/api/1")
    assert cache.lookup("/api/1", {}) is None
    assert cache.purge("/api") == 1
    assert len(cache) == 1


def test_set_cookie_is_never_stored(cache):
    entry = store(cache, headers(Cache_Control="max-age=60", Set_Cookie="session=secret"))
    assert all(name.lower() != "set-cookie" for name, _ in entry.headers)


def test_etag_comparison_is_weak():
    assert etag_matches('"a", W/"b"', '"b"')
    assert etag_matches("*", '"x"')
    assert not etag_matches('"a"', '"b"')


def test_negotiate_encoding():
    assert negotiate("gzip, deflate, br, zstd") == "br"
    assert negotiate("gzip, zstd") == "zstd"
    assert negotiate("gzip") == "gzip"
    assert negotiate("br;q=0, gzip;q=0.5") == "gzip"
    assert negotiate("identity") is None
    assert negotiate(None) is None
    assert negotiate("*") == "br"


def test_compressible_types():
    assert compressible("text/html; charset=utf-8", 10_000)
    assert compressible("application/json", None)
    assert not compressible("application/octet-stream", 10_000)
    assert not compressible("text/plain", 10)


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip"])
def test_compress_round_trip(encoding):
    import gzip

    import brotli
    import zstandard

    data = b"edge cache " * 1000
    packed = compress(data, encoding)
    assert len(packed) < len(data) / 10
    unpack = {"br": brotli.decompress, "gzip": gzip.decompress}
    unpack["zstd"] = lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b)
    assert unpack[encoding](packed) == data
