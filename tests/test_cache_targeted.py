"""Targeted cache control (RFC 9213), purge tags and the RUM collector, on pure code."""

import math

import numpy as np
import pytest
from multidict import CIMultiDict
from test_cache import NOW, headers
from test_cache import cache as _cache  # noqa: F401 — the shared fixtures, by name below
from test_cache import clock as _clock  # noqa: F401

from kit.services.cache import State, cache_directives, storable, tags_of
from kit.services.rum import (
    MAX_BODY,
    Collector,
    Rejected,
    parse_beacon,
    sketch_from_export,
)

pytestmark = pytest.mark.unit
cache, clock = _cache, _clock  # pytest finds a fixture by its name in this module


def store(cache, path="/a", **fields):
    return cache.store(path, CIMultiDict(), 200, headers(**fields), b"body", NOW, NOW)


def test_cdn_cache_control_wins_over_cache_control(cache, clock):
    entry = store(cache, Cache_Control="no-cache", CDN_Cache_Control="max-age=600")
    assert entry.lifetime == 600 and not entry.always_validate
    clock.now += 599
    assert cache.lookup("/a", {}).state(clock.now) is State.FRESH


def test_surrogate_control_wins_and_is_kept_apart(cache):
    entry = store(cache, Cache_Control="max-age=5", Surrogate_Control="max-age=300")
    assert entry.lifetime == 300
    assert "surrogate-control" not in {k.lower() for k, _ in entry.headers}
    assert entry.targeted == [("Surrogate-Control", "max-age=300")]


def test_cdn_cache_control_before_surrogate_control():
    found = cache_directives(
        headers(Surrogate_Control="max-age=1", CDN_Cache_Control="max-age=2, stale-if-error=9")
    )
    assert found == {"max-age": "2", "stale-if-error": "9"}


def test_esi_capability_alone_is_not_a_cache_policy():
    found = cache_directives(
        headers(Surrogate_Control='content="ESI/1.0"', Cache_Control="max-age=7")
    )
    assert found == {"max-age": "7"}


def test_targeted_private_and_no_store_are_obeyed():
    assert not storable("GET", 200, {}, headers(CDN_Cache_Control="private"))
    assert not storable(
        "GET", 200, {}, headers(Cache_Control="max-age=60", CDN_Cache_Control="no-store")
    )
    # RFC 9213: the targeted field replaces Cache-Control for this cache, private included
    assert storable(
        "GET", 200, {}, headers(Cache_Control="private", CDN_Cache_Control="max-age=60")
    )


def test_targeted_stale_directives(cache, clock):
    entry = store(
        cache, CDN_Cache_Control="max-age=10, stale-while-revalidate=20, stale-if-error=100"
    )
    clock.now += 15
    assert entry.state(clock.now) is State.STALE_WHILE_REVALIDATE
    clock.now += 60
    assert entry.state(clock.now) is State.MUST_VALIDATE and entry.usable_if_error(clock.now)


def test_a_304_keeps_the_targeted_policy(cache, clock):
    entry = store(cache, ETag='"x"', Cache_Control="max-age=0", Surrogate_Control="max-age=50")
    clock.now += 60
    entry.refresh(headers(ETag='"x"'), clock.now, clock.now)
    assert entry.lifetime == 50
    entry.refresh(headers(ETag='"x"', Surrogate_Control="max-age=9"), clock.now, clock.now)
    assert entry.lifetime == 9


def test_tags_from_both_fields():
    found = tags_of(headers(Surrogate_Key="a  b", Cache_Tag="c, d,,"))
    assert found == {"a", "b", "c", "d"}


def test_purge_by_tag_and_by_url(cache):
    store(cache, "/x", Cache_Control="max-age=60", Surrogate_Key="blue red")
    store(cache, "/y", Cache_Control="max-age=60", Cache_Tag="red")
    store(cache, "/z", Cache_Control="max-age=60")
    assert cache.purge_tag("green") == 0
    assert cache.purge_tag("red") == 2
    assert cache.lookup("/x", {}) is None and cache.lookup("/z", {}) is not None
    assert cache.purge_url("/z") == 1 and len(cache) == 0 and cache.bytes == 0


@pytest.mark.parametrize(
    "body, status",
    [
        (b'{"load_ms": -1}', 400),
        (b'{"load_ms": NaN}', 400),
        (b'{"load_ms": Infinity}', 400),
        (b'{"load_ms": 1e308}', 400),
        (b'{"load_ms": "120"}', 400),
        (b'{"load_ms": true}', 400),
        (b'{"other": 3}', 400),
        (b"[1, 2]", 400),
        (b"\xff\xfe", 400),
        (b"x" * (MAX_BODY + 1), 413),
    ],
)
def test_absurd_beacons_are_refused(body, status):
    with pytest.raises(Rejected) as refused:
        parse_beacon(body)
    assert refused.value.status == status
    collector = Collector()
    assert collector.receive(body, "vienna")[0] == status
    assert collector.accepted == 0 and not collector.sketches


def test_a_flood_is_refused_past_the_rate_and_served_again_later():
    now = [0.0]
    collector = Collector(clock=lambda: now[0], rate=100)
    answers = [collector.receive(b'{"load_ms": 5}', "vienna")[0] for _ in range(250)]
    assert answers.count(204) == 100 and answers.count(429) == 150
    now[0] += 1
    assert collector.receive(b'{"load_ms": 5}', "vienna")[0] == 204


def test_exported_sketches_merge_to_the_true_quantiles():
    rng = np.random.default_rng(6)
    fast, slow = rng.lognormal(3, 0.4, 9000), rng.lognormal(7, 0.3, 1000)
    pops = [Collector(), Collector()]
    for value in fast:
        pops[0].record("vienna", {"load_ms": float(value)})
    for value in slow:
        pops[1].record("vienna", {"load_ms": float(value)})
    merged = None
    for pop in pops:
        exported = pop.export()
        sketch = sketch_from_export(
            exported["regions"]["vienna"]["load_ms"], exported["relative_accuracy"]
        )
        merged = sketch if merged is None else (merged.merge(sketch) or merged)
    everything = np.concatenate([fast, slow])
    for q in (0.5, 0.95, 0.99):
        true = float(np.quantile(everything, q, method="lower"))
        assert math.isclose(merged.get_quantile_value(q), true, rel_tol=0.02)
