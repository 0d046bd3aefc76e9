"""`env.cache` and `env.origin.fetch(..., cache_key=)`: a handler's own keys in the PoP's cache.

A real origin and PoP on loopback (`LoopbackEdge`), handlers deployed to the PoP.
What is tested is what chapter 04 relies on, and the Workers Cache API's shape:

- a key of the handler's making shares one stored page between requests that
  differ in what the key leaves out (a cookie), and keeps apart what it holds;
- the cache honours `Vary` (a `Vary: Cookie` page is found only with that cookie);
- `Set-Cookie` is never stored, so no visitor's cookie is replayed to another;
- `match`/`put`/`delete` with a URL or a Request as the key; `put` of a response
  that may not be stored says so; `put` with a POST raises; `delete` says
  whether there was anything to delete.
"""

import pytest
from test_services_support import LoopbackEdge, metrics, request

from kit.control import call, deploy, undeploy

pytestmark = pytest.mark.loopback

KEYED = """
async def fetch(request, env, ctx):
    headers = request.headers.copy()
    headers.popall("Cookie", None)
    key = request.url.raw_path_qs + "#" + request.headers.get("x-variant", "-")
    return await env.origin.fetch(request.replace(headers=headers), cache_key=key)
"""

CACHE_API = """
async def fetch(request, env, ctx):
    op, key = request.query["op"], request.query["key"]
    if op == "put":
        control = request.query.get("cc", "max-age=60")
        cookie = {"Set-Cookie": "uid=someone; Path=/"} if "cookie" in request.query else {}
        stored = await env.cache.put(key, Response("stored " + key, 200,
                                                   {"Cache-Control": control, **cookie}))
        return Response.json({"stored": stored})
    if op == "match":
        found = await env.cache.match(Request(key) if "as_request" in request.query else key)
        if found is None:
            return Response.json({"found": None})
        return Response.json({"found": await found.text(),
                              "set_cookie": found.headers.get("Set-Cookie")})
    if op == "delete":
        return Response.json({"deleted": await env.cache.delete(key)})
    if op == "post":
        try:
            await env.cache.put(Request(key, method="POST"), Response("x"))
        except ValueError as error:
            return Response.json({"error": str(error)})
        return Response.json({"error": None})
"""


@pytest.fixture(scope="module")
def world():
    world = LoopbackEdge()
    yield world
    world.close()


@pytest.fixture
def pop(world):
    yield world.pop
    undeploy(world.pop.control)
    call(world.origin.control, "POST", "/_kit/config", {"rules": []})


def ask(pop, **query):
    path = "/cache?" + "&".join(f"{k}={v}" for k, v in query.items())
    reply = request(pop, path)
    assert reply.status == 200, reply.body
    return reply.json()


def test_a_key_of_the_handlers_making_shares_a_page_across_cookies(world, pop):
    deploy(KEYED, pop.control)
    before = metrics(world.origin)["requests"]
    greetings = []
    for uid in ("ana-00000001", "ben-00000002", "eva-00000003"):
        reply = request(pop, "/p/shared", headers={"Cookie": f"uid={uid}", "x-variant": "a"})
        assert reply.status == 200
        greetings.append(b"Hello, guest" in reply.body)
    assert greetings == [True, True, True]  # the cookie never reached the origin
    assert metrics(world.origin)["requests"] - before == 1  # one variant, one fetch
    other = request(pop, "/p/shared", headers={"x-variant": "b"})
    assert other.cache == "MISS"
    assert metrics(world.origin)["requests"] - before == 2  # another variant, its own entry


def test_the_cache_honours_vary_cookie(world, pop):
    call(
        world.origin.control,
        "POST",
        "/_kit/config",
        {"rules": [{"match": "/p/*", "headers": {"Vary": "Cookie"}}]},
    )
    replies = [
        request(pop, "/p/varied", headers={"Cookie": f"uid={uid}"})
        for uid in ("ana-00000001", "ben-00000002", "ana-00000001")
    ]
    assert [r.cache for r in replies] == ["MISS", "MISS", "HIT"]
    assert b"Hello, ana-00000001" in replies[2].body and b"Hello, ben" in replies[1].body


def test_match_put_delete_with_urls_and_requests(pop):
    deploy(CACHE_API, pop.control)
    assert ask(pop, op="match", key="/made/up") == {"found": None}
    assert ask(pop, op="put", key="/made/up") == {"stored": True}
    found = ask(pop, op="match", key="/made/up", as_request=1)
    assert found == {"found": "stored /made/up", "set_cookie": None}
    assert ask(pop, op="delete", key="/made/up") == {"deleted": True}
    assert ask(pop, op="match", key="/made/up") == {"found": None}
    assert ask(pop, op="delete", key="/made/up") == {"deleted": False}


def test_put_keeps_no_cookie_and_refuses_what_may_not_be_stored(pop):
    deploy(CACHE_API, pop.control)
    assert ask(pop, op="put", key="/with/cookie", cookie=1) == {"stored": True}
    assert ask(pop, op="match", key="/with/cookie")["set_cookie"] is None
    assert ask(pop, op="put", key="/private", cc="private") == {"stored": False}
    assert ask(pop, op="match", key="/private") == {"found": None}
    error = ask(pop, op="post", key="/posted")["error"]
    assert error and "only GET" in error


def test_a_handler_key_is_the_path_and_query_whatever_the_host(pop):
    deploy(CACHE_API, pop.control)
    assert ask(pop, op="put", key="http://a.example/same?x=1") == {"stored": True}
    found = ask(pop, op="match", key="http://b.example/same?x=1")
    assert found["found"] == "stored http://a.example/same?x=1"
    assert ask(pop, op="match", key="/same?x=2") == {"found": None}
