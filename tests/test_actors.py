"""Actors (kit/runtime/actors.py, kit/services/pop_actors.py): one instance, one place, in order.

The storage and the input gate are tested in a plain event loop; placement,
forwarding, the peer secret and partitions on the default world, whose PoPs
are continents apart.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from kit.control import deploy
from kit.edge import start_edge
from kit.kv import PORT as KV_PORT
from kit.kv import start_kv
from kit.nb.measure import http_request
from kit.runtime.actors import Home, Storage
from kit.runtime.bindings import Env
from kit.runtime.http import Request, Response

# -- storage and the input gate ------------------------------------------------------


def test_storage_keeps_json_values_and_writes_a_dict_in_one_transaction(tmp_path):
    async def scenario() -> None:
        storage = Storage(tmp_path / "one.sqlite")
        assert await storage.get("missing") is None
        await storage.put("a", {"n": 1})
        await storage.put({"b": [1, 2], "c": "three"})
        assert await storage.get("a") == {"n": 1}
        await storage.delete("a")
        assert await storage.list() == {"b": [1, 2], "c": "three"}
        assert await storage.list(prefix="c") == {"c": "three"}
        with pytest.raises(ValueError, match="JSON"):
            await storage.put({"d": 1, "e": object()})  # refused whole: d is not written
        assert await storage.get("d") is None
        with pytest.raises(ValueError, match="key"):
            await storage.put("", 1)
        with pytest.raises(ValueError, match="at most"):
            await storage.put("big", "x" * (200 << 10))

    asyncio.run(scenario())
    assert Storage(tmp_path / "one.sqlite")._get("c") == "three"  # on disk, for the next instance


SLOW_COUNTER = """
class Counter:
    def __init__(self, state, env):
        self.storage = state.storage

    async def fetch(self, request):
        n = await self.storage.get("n") or 0
        await asyncio.sleep(0.001)  # anything awaited between the read and the write
        await self.storage.put("n", n + 1)
        return Response.json({"n": n + 1})
"""


def _counter_class() -> type:
    namespace = {"asyncio": asyncio, "Response": Response}
    exec(SLOW_COUNTER, namespace)
    return namespace["Counter"]


def test_the_input_gate_runs_one_request_of_an_object_at_a_time(tmp_path):
    namespace = {"Counter": _counter_class()}

    async def scenario() -> list[int]:
        home = Home(tmp_path, namespace, Env())
        answers = await asyncio.gather(
            *(home.serve("Counter", "c", Request("/add", "POST")) for _ in range(40))
        )
        return sorted([json.loads(await a.read())["n"] for a in answers])

    assert asyncio.run(scenario()) == list(range(1, 41))


def test_without_the_gate_the_same_counter_loses_updates(tmp_path):
    """The control for the test above: the gate is what makes the difference."""
    from kit.runtime.actors import ActorState

    counter = _counter_class()(ActorState("c", Storage(tmp_path / "c.sqlite")), Env())

    async def scenario() -> int:
        await asyncio.gather(*(counter.fetch(Request("/add", "POST")) for _ in range(40)))
        return await counter.storage.get("n")

    assert asyncio.run(scenario()) < 40


def test_an_unknown_actor_class_is_named(tmp_path):
    async def scenario() -> None:
        await Home(tmp_path, {"Other": object}, Env()).serve("Other", "x", Request("/"))

    with pytest.raises(LookupError, match="no actor class 'Other'"):
        asyncio.run(scenario())


# -- on the world --------------------------------------------------------------------

HANDLER = """
class Counter:
    def __init__(self, state, env):
        self.storage, self.pop = state.storage, env.pop

    async def fetch(self, request):
        n = await self.storage.get("n") or 0
        if request.method == "POST":
            n += 1
            await self.storage.put("n", n)
        return Response.json({"n": n, "home": self.pop})

async def fetch(request, env, ctx):
    _, kind, name = request.path.split("/", 2)
    counter = env.actors.get(kind, name, location=request.query.get("at"))
    try:
        return await counter.fetch(request)
    except ActorError as error:
        return Response.text(f"{error}\\n", 503)
"""


@pytest.fixture(scope="module")
def edge(world):
    kv = start_kv(world)
    edge = start_edge(world, kv=kv)
    deploy(HANDLER, edge.pops)
    yield edge
    edge.stop()
    kv.stop()


def ask(world, user: str, edge, path: str, method: str = "GET", pop: str | None = None) -> dict:
    base = edge.pop_url(pop) if pop else edge.anycast_url
    answer = http_request(world, user, base + path, method=method, timeout=15)
    assert answer["status"] == 200, answer
    return json.loads(answer["body"])


def fresh() -> str:
    return uuid.uuid4().hex[:12]


def test_an_actor_lives_at_its_first_callers_pop_and_every_pop_reaches_it(world, edge):
    name = fresh()
    first = ask(world, "user-tokyo", edge, f"/Counter/{name}", "POST")
    assert first == {"n": 1, "home": "pop-tokyo"}
    assert ask(world, "user-berlin", edge, f"/Counter/{name}", "POST") == {
        "n": 2,
        "home": "pop-tokyo",
    }
    placed = ask(world, "user-saopaulo", edge, f"/Counter/{fresh()}?at=pop-frankfurt", "POST")
    assert placed["home"] == "pop-frankfurt"


def test_concurrent_increments_from_every_city_are_all_counted(world, edge):
    name, each = fresh(), 15
    users = ["user-tokyo", "user-berlin", "user-newyork", "user-singapore", "user-saopaulo"]
    url = f"{edge.anycast_url}/Counter/{name}"
    burst = f"seq {each} | xargs -P {each} -I{{}} curl -s -o /dev/null -X POST -m 20 {url}"
    with ThreadPoolExecutor(len(users)) as pool:  # every city's burst at once, racing
        list(pool.map(lambda user: world.run(user, burst, 60), users))
    assert ask(world, "user-london", edge, f"/Counter/{name}")["n"] == each * len(users)


def test_the_storage_outlives_the_instance(world, edge):
    name = fresh()
    for _ in range(3):
        ask(world, "user-berlin", edge, f"/Counter/{name}?at=pop-frankfurt", "POST")
    edge.evict("pop-frankfurt")  # the worker, and the instance in it, are gone
    assert ask(world, "user-tokyo", edge, f"/Counter/{name}")["n"] == 3


HOMES = [("user-berlin", "pop-frankfurt"), ("user-tokyo", "pop-tokyo")]


def test_a_partitioned_home_gives_callers_an_error_naming_it(world, edge):
    name = fresh()
    ask(world, "user-tokyo", edge, f"/Counter/{name}?at=pop-tokyo", "POST")
    ask(world, "user-berlin", edge, f"/Counter/{name}", "POST")  # Frankfurt knows the home
    world.partition(["tokyo"])
    try:
        url = f"{edge.pop_url('pop-frankfurt')}/Counter/{name}"
        cut = http_request(world, "user-berlin", url, method="POST", timeout=15)
        assert cut["status"] == 503 and "pop-tokyo" in cut["body"], cut
        # On the home's side of the cut the actor goes on: one truth, not two.
        assert ask(world, "user-tokyo", edge, f"/Counter/{name}", "POST", "pop-tokyo")["n"] == 3
    finally:
        world.heal()
    # One instance for both sides after the heal. The request Frankfurt gave up on may
    # still arrive, even between these reads (TCP goes on sending what it had queued): an
    # error is not "not done". So the count is 3 or 4, and never goes back.
    seen = [ask(world, u, edge, f"/Counter/{name}", pop=p) for u, p in HOMES]
    assert all(answer["home"] == "pop-tokyo" for answer in seen), seen
    counts = [answer["n"] for answer in seen]
    assert set(counts) <= {3, 4} and counts == sorted(counts), counts


@pytest.mark.parametrize("secret", [None, "guessed"])
def test_a_request_posing_as_a_pop_is_refused(world, edge, secret):
    headers = {"x-edge-actor": "Counter/anything"}
    if secret:
        headers["x-edge-peer-secret"] = secret
    url = f"{edge.pop_url('pop-frankfurt')}/Counter/anything"
    answer = http_request(world, "user-berlin", url, method="POST", headers=headers)
    assert answer["status"] == 403


@pytest.mark.parametrize("secret", [None, "guessed"])
def test_only_pops_can_place_an_actor(world, edge, secret):
    """A user claiming an actor first, for a PoP across the world, is refused; the
    PoPs' own claim then places it at its first caller."""
    name = fresh()
    headers = {"Content-Type": "application/json"}
    if secret:
        headers["x-edge-peer-secret"] = secret
    claim = json.dumps({"actor": f"Counter/{name}", "pop": "pop-saopaulo"})
    url = f"http://{world.ip('origin')}:{KV_PORT}/placement"
    answer = http_request(world, "user-berlin", url, method="POST", headers=headers, body=claim)
    assert answer["status"] == 403 and "PoPs only" in answer["body"]
    assert ask(world, "user-berlin", edge, f"/Counter/{name}")["home"] == "pop-frankfurt"


def test_a_missing_class_or_a_bad_location_gets_a_reason(world, edge):
    url = f"{edge.anycast_url}/Nothing/{fresh()}"
    missing = http_request(world, "user-berlin", url)
    assert missing["status"] == 500 and "no actor class 'Nothing'" in missing["body"]
    nowhere = http_request(world, "user-berlin", f"{edge.anycast_url}/Counter/x?at=pop-mars")
    assert nowhere["status"] == 500 and "pop-mars" in nowhere["body"]
