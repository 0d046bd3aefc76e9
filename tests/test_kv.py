"""The KV store (kit/services/kv.py) and env.kv: central writes, cached reads, last write wins.

Unit tests drive the store's last-write-wins rule; loopback tests run the central
store and two PoPs with a handler that reads and writes through `env.kv`.
"""

from __future__ import annotations

import random

import pytest
from test_services_support import Service, metrics, request, wait_until

from kit.control import deploy
from kit.services.kv import MAX_KEY_BYTES, Store, Version

# -- last write wins (unit) ---------------------------------------------------------------


@pytest.mark.unit
def test_the_latest_write_wins_whatever_order_writes_arrive_in():
    store = Store()
    assert store.write("k", b"new", Version(20.0, "pop-a"))
    assert not store.write("k", b"old", Version(10.0, "pop-b"))  # arrived late: dropped
    assert store.get("k")[0] == b"new"
    assert store.write("k", b"tie", Version(20.0, "pop-b"))  # a tie: the larger writer id
    assert not store.write("k", None, Version(15.0, "pop-c"))  # an older delete loses too
    assert store.write("k", None, Version(30.0, "pop-a"))
    assert store.get("k") is None and store.keys("") == []
    assert not store.write("k", b"zombie", Version(25.0, "pop-b"))  # the tombstone remembers
    assert store.write("k", b"back", Version(31.0, "pop-b"))
    assert store.keys("k") == ["k"] and store.bytes == len(b"back")


# -- the central store and env.kv at two PoPs (loopback) ------------------------------

HANDLER = """
async def fetch(request, env, ctx):
    key = request.path.removeprefix("/kv/")
    if request.method == "PUT":
        return Response.json({"kept": await env.kv.put(key, await request.read())})
    ttl = float(request.query.get("ttl", "60"))
    return Response.json({"value": await env.kv.get(key, cache_ttl_s=ttl)})
"""


@pytest.fixture(scope="module")
def kv_edge(tmp_path_factory):
    home = tmp_path_factory.mktemp("kv")
    services = [Service("kv", workdir=home), Service("origin", workdir=home)]
    store, origin = services
    try:
        for name in ("a", "b"):
            pop = Service(
                "pop", "--pop", name, "--origin", origin.url, "--kv", store.url, workdir=home
            )
            services.append(pop)
            deploy(HANDLER, pop.control)
        yield services[0], services[2], services[3]
    finally:
        for service in services:
            service.stop()


def get(pop, key: str, ttl: float) -> str | None:
    return request(pop, f"/kv/{key}?ttl={ttl}").json()["value"]


@pytest.mark.loopback
def test_a_write_is_seen_at_once_where_it_was_made_and_elsewhere_when_the_copy_expires(kv_edge):
    store, pop_a, pop_b = kv_edge
    key, ttl = f"theme-{random.randrange(10**6)}", 3.0
    assert get(pop_b, key, ttl) is None  # missing: and B keeps that answer for ttl
    assert request(pop_a, f"/kv/{key}", "PUT", body=b"dark").json()["kept"]
    assert get(pop_a, key, ttl) == "dark"  # the writer's PoP reads its own write
    assert get(pop_b, key, ttl) is None  # B's negative copy has not expired yet
    assert wait_until(lambda: get(pop_b, key, ttl) == "dark", timeout=ttl + 5)


@pytest.mark.loopback
def test_reads_within_the_ttl_are_served_by_the_pop_not_the_store(kv_edge):
    store, pop_a, _ = kv_edge
    key = f"flag-{random.randrange(10**6)}"
    request(pop_a, f"/kv/{key}", "PUT", body=b"on")
    before = metrics(store)["reads"]
    assert all(get(pop_a, key, 60) == "on" for _ in range(10))
    assert metrics(store)["reads"] - before == 1


@pytest.mark.loopback
@pytest.mark.parametrize(
    "method, path, headers, body, status",
    [
        ("PUT", "/kv/" + "k" * (MAX_KEY_BYTES + 1), {"x-kv-at": "1"}, b"v", 400),
        ("PUT", "/kv/no-time", {}, b"v", 400),
        ("PUT", "/kv/bad-time", {"x-kv-at": "nan"}, b"v", 400),
        ("PUT", "/kv/big", {"x-kv-at": "1"}, b"x" * ((1 << 20) + 1), 413),
        ("GET", "/kv/never-written", {}, None, 404),
    ],
)
def test_bad_writes_to_the_store_get_a_reason(kv_edge, method, path, headers, body, status):
    store = kv_edge[0]
    before = metrics(store)["writes"]
    reply = request(store, path, method, headers, body)
    assert reply.status == status and reply.json()["error"]
    assert metrics(store)["writes"] == before
