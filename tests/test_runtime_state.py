"""`env.state`: values a handler keeps at its PoP between requests.

The store itself (`LocalState`: expiry, bounds, JSON only) is tested as an
object; the binding end to end on a loopback PoP: a value outlives the request
that put it and the worker that served it, and a new deployment starts empty.
"""

import pytest
from test_services_support import LoopbackEdge, request

from kit.control import deploy, undeploy
from kit.services import pop_handlers
from kit.services.pop_handlers import LocalState

COUNTER = """
async def fetch(request, env, ctx):
    key = "n:" + request.path
    seen = (await env.state.get(key) or 0) + 1
    await env.state.put(key, seen)
    if request.path == "/bad":
        await env.state.put("x", {1, 2})
    return Response.json({"seen": seen, "other": await env.state.get("missing")})
"""


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.unit
def test_local_state_keeps_json_values_until_they_expire():
    clock = Clock()
    state = LocalState(clock)
    state.put("a", {"tokens": 1.5, "at": 3})
    state.put("b", [1, 2], ttl_s=10)
    assert state.get("a") == b'{"tokens": 1.5, "at": 3}'
    clock.now += 9.9
    assert state.get("b") == b"[1, 2]"
    clock.now += 0.1
    assert state.get("b") is None and state.get("nothing") is None
    state.delete("a")
    assert state.get("a") is None
    for bad in ({1, 2}, float("nan")):
        with pytest.raises(ValueError):
            state.put("c", bad)
    with pytest.raises(ValueError):
        state.put("c", 1, ttl_s=0)
    with pytest.raises(ValueError):
        state.put("c", "x" * (pop_handlers.STATE_VALUE_BYTES + 1))


@pytest.mark.unit
def test_local_state_is_bounded_least_recently_used_out(monkeypatch):
    monkeypatch.setattr(pop_handlers, "STATE_KEYS", 3)
    state = LocalState()
    for key in "abc":
        state.put(key, key)
    state.get("a")  # used: b is now the oldest
    state.put("d", "d")
    assert [k for k in "abcd" if state.get(k) is not None] == ["a", "c", "d"]


@pytest.fixture(scope="module")
def world():
    world = LoopbackEdge()
    yield world
    world.close()


@pytest.mark.loopback
def test_a_value_outlives_its_request_and_a_new_deployment_starts_empty(world):
    pop = world.pop
    try:
        deploy(COUNTER, pop.control)
        seen = [request(pop, "/x").json() for _ in range(3)]
        assert [s["seen"] for s in seen] == [1, 2, 3]
        assert seen[0]["other"] is None
        assert request(pop, "/y").json()["seen"] == 1  # keys apart
        bad = request(pop, "/bad")
        assert bad.status == 500 and b"JSON" in bad.body  # a set is not JSON: the handler's error
        deploy(COUNTER, pop.control)
        assert request(pop, "/x").json()["seen"] == 1  # a new version starts empty
    finally:
        undeploy(pop.control)
