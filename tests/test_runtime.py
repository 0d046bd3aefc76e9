"""The edge runtime: objects, loading, matchers, and handlers deployed to a real PoP."""

import asyncio
import inspect
import linecache

import pytest
from test_services_support import LoopbackEdge, alive, metrics, request, wait_until

from kit.control import DeployError, call, deploy, handler_source, undeploy
from kit.runtime import Request, Response
from kit.runtime.loader import LoadError, load_handler
from kit.runtime.matcher import Matcher

GEO_REDIRECT = """
async def fetch(request, env, ctx):
    if request.geo.country == "DE":
        return Response.redirect("https://de.example.com", 302)
    return await env.origin.fetch(request)
"""


@pytest.fixture(scope="module")
def world():
    world = LoopbackEdge("--handler-timeout", "5")
    yield world
    world.close()


@pytest.fixture
def pop(world):
    yield world.pop
    undeploy(world.pop.control)


# -- objects and loading, no sockets ------------------------------------------


def test_response_constructors_and_readers():
    async def scenario():
        assert await Response.json({"a": 1}).json() == {"a": 1}
        assert Response.json({}).headers["Content-Type"] == "application/json"
        assert await Response.text("hi").text() == "hi"
        redirect = Response.redirect("https://x.example", 301)
        assert redirect.status == 301 and redirect.headers["Location"] == "https://x.example"

        async def parts():
            yield "a"
            yield b"b"

        streamed = Response.stream(parts())
        assert streamed.is_stream and await streamed.read() == b"ab"

    asyncio.run(scenario())
    with pytest.raises(ValueError):
        Response.redirect("/x", 200)


def test_request_url_and_replace():
    request = Request("http://pop.example/api/items/1?x=2", headers={"A": "b"})
    assert request.url.path == "/api/items/1" and request.query["x"] == "2"
    assert request.geo.country is None
    changed = request.replace(url=request.url.with_path("/v2/items/1"))
    assert changed.path == "/v2/items/1" and changed.headers["a"] == "b"
    assert request.path == "/api/items/1"


def test_matcher_patterns():
    api = Matcher(["/api/:path*"])
    assert api.match("/api") == {}
    assert api.match("/api/a/b") == {"path": "a/b"}
    assert api.match("/apis") is None
    blog = Matcher("/blog/:slug")
    assert blog.match("/blog/hello") == {"slug": "hello"}
    assert blog.match("/blog/a/b") is None
    assert Matcher("/docs/:rest+").match("/docs") is None
    assert Matcher("/shop/:id?").match("/shop") == {}


def test_load_error_carries_line_number():
    with pytest.raises(LoadError) as syntax:
        load_handler("async def fetch(request, env, ctx):\n    return (\n\nx = ]\n")
    assert syntax.value.line is not None and "SyntaxError" in syntax.value.reason
    with pytest.raises(LoadError) as at_load:
        load_handler("import math\n\nLIMIT = 1 / 0\n\nasync def fetch(r, e, c): ...\n")
    assert at_load.value.line == 3 and "ZeroDivisionError" in at_load.value.reason
    with pytest.raises(LoadError, match="async def"):
        load_handler("def fetch(request, env, ctx):\n    return None\n")
    with pytest.raises(LoadError, match="neither"):
        load_handler("x = 1\n")


def test_handler_source_from_a_function():
    async def geo_redirect(request, env, ctx):
        return Response.text("hi")

    source = handler_source(geo_redirect)
    assert source.startswith("async def geo_redirect")
    assert load_handler(source).kind == "fetch"


def test_handler_source_from_a_class_and_function_defined_in_a_notebook_cell():
    """Jupyter compiles a cell under a file name of its own and keeps its text in linecache;
    `inspect.getsource` finds no file for a class of __main__, so deploy reads the cell."""
    cell = (
        "import json\n\n"
        "class Counter:\n"
        "    def __init__(self, state, env):\n"
        "        self.state = state\n\n"
        "    async def fetch(self, request):\n"
        "        return Response.text('1')\n\n\n"
        "async def fetch(request, env, ctx):\n"
        "    return await env.actors.get('Counter', 'a').fetch(request)\n"
    )
    name = "/tmp/ipykernel_0/cell-1.py"  # a name no file has, as a cell's
    linecache.cache[name] = (len(cell), None, cell.splitlines(True), name)
    space = {"__name__": "__main__", "Response": Response}
    try:
        exec(compile(cell, name, "exec"), space)
        with pytest.raises((OSError, TypeError)):  # what deploy() met before (TypeError in
            inspect.getsource(space["Counter"])  # a kernel: its __main__ has no file)
        source = handler_source([space["Counter"], space["fetch"]])
    finally:
        del linecache.cache[name]
    assert source.startswith("class Counter:") and "async def fetch(request" in source
    assert load_handler(source).kind == "fetch"
    with pytest.raises(TypeError, match="the handler comes last"):
        handler_source([space["fetch"], space["Counter"]])


# -- deployed to a real PoP ----------------------------------------------------


def test_cloudflare_geo_redirect(pop):
    (result,) = deploy(GEO_REDIRECT, pop.control)
    assert result.kind == "fetch" and result.cold_start_ms >= 0
    berlin = request(pop, "/page/home", source_ip="127.0.0.2")
    assert berlin.status == 302 and berlin.headers["Location"] == "https://de.example.com"
    tokyo = request(pop, "/page/home", source_ip="127.0.0.3")
    assert tokyo.status == 200 and b"<h1>home</h1>" in tokyo.body
    assert tokyo.headers["x-edge-pop"] == "fra"


def test_geo_fields_and_params_reach_the_handler(pop):
    source = """
async def fetch(request, env, ctx):
    g = request.geo
    return Response.json({"geo": [g.country, g.city, g.region, g.pop],
                          "id": request.params.get("id"), "config": env.config})

config = {"matcher": ["/item/:id"]}
"""
    deploy(source, pop.control, config={"greeting": "hallo"})
    data = request(pop, "/item/7", source_ip="127.0.0.3").json()
    assert data == {
        "geo": ["JP", "Tokyo", "tokyo", "fra"],
        "id": "7",
        "config": {"greeting": "hallo"},
    }
    assert request(pop, "/item/7", source_ip="127.0.0.9").json()["geo"][0] is None


def test_deploy_a_function_object(pop):
    async def fetch(request, env, ctx):
        return Response.text(f"hello from {env.pop}")

    deploy(fetch, [pop.control])
    assert request(pop, "/anything").body == b"hello from fra"


def test_failed_deploy_keeps_the_previous_handler(pop):
    deploy("async def fetch(request, env, ctx):\n    return Response.text('v1')\n", pop.control)
    broken = "async def fetch(request, env, ctx):\n    retrun Response.text('v2')\n"
    with pytest.raises(DeployError) as failure:
        deploy(broken, pop.control)
    assert failure.value.line == 2 and "line 2" in str(failure.value)
    assert "SyntaxError" in str(failure.value)
    raises_at_load = "CONFIG = {}['missing']\n\nasync def fetch(request, env, ctx): ...\n"
    with pytest.raises(DeployError, match="KeyError") as at_load:
        deploy(raises_at_load, pop.control)
    assert at_load.value.line == 1
    assert request(pop, "/").body == b"v1"


def test_deploy_is_all_or_nothing_across_pops(pop):
    deploy("async def fetch(request, env, ctx):\n    return Response.text('old')\n", pop.control)
    new = "async def fetch(request, env, ctx):\n    return Response.text('new')\n"
    with pytest.raises(DeployError, match="cannot reach"):
        deploy(new, {"fra": pop.control, "gone": "http://127.0.0.1:9"})
    assert request(pop, "/").body == b"old"


def test_raising_handler_gives_500_with_reason_and_pop_lives(world, pop):
    source = "async def fetch(request, env, ctx):\n    return 1 / 0\n"
    deploy(source, pop.control)
    before = metrics(world.pop)["handler_errors"]
    reply = request(pop, "/")
    assert reply.status == 500
    assert b"ZeroDivisionError" in reply.body and b"line 2" in reply.body
    assert metrics(world.pop)["handler_errors"] == before + 1
    assert alive(world.pop)
    assert any(line.get("event") == "handler_error" for line in world.pop.logs())


def test_handler_returning_the_wrong_type_gives_500(pop):
    deploy("async def fetch(request, env, ctx):\n    return 'oops'\n", pop.control)
    reply = request(pop, "/")
    assert reply.status == 500 and b"not a Response" in reply.body


def test_slow_handler_gives_504(pop):
    source = "import asyncio\n\nasync def fetch(request, env, ctx):\n    await asyncio.sleep(30)\n"
    deploy(source, pop.control, timeout_s=0.2)
    reply = request(pop, "/")
    assert reply.status == 504 and b"time limit" in reply.body
    assert alive(pop)


def test_middleware_runs_only_where_the_matcher_says(world, pop):
    source = """
async def middleware(request, env, ctx, next):
    if request.headers.get("Authorization") != "Bearer ok":
        return Response.json({"error": "unauthorised"}, status=401)
    response = await next()
    response.headers["x-checked"] = "yes"
    return response

config = {"matcher": ["/api/:path*"]}
"""
    (result,) = deploy(source, pop.control)
    assert result.kind == "middleware"
    assert request(pop, "/api/items/1").status == 401
    allowed = request(pop, "/api/items/1", headers={"Authorization": "Bearer ok"})
    assert allowed.status == 200 and allowed.headers["x-checked"] == "yes"
    page = request(pop, "/page/free")
    assert page.status == 200 and "x-checked" not in page.headers


def test_middleware_matcher_given_to_deploy(pop):
    async def tag(request, env, ctx, next):
        response = await next(request.replace(url=request.url.with_path("/api/items/rewritten")))
        response.headers["x-tag"] = "1"
        return response

    deploy(tag, pop.control, matcher=["/old/:path*"])
    rewritten = request(pop, "/old/thing")
    assert rewritten.json()["id"] == "rewritten" and rewritten.headers["x-tag"] == "1"
    assert "x-tag" not in request(pop, "/page/x").headers


def test_a_matcher_given_to_deploy_leaves_the_handlers_own_config(pop):
    source = """
config = {"matcher": ["/mine"], "label": "kept"}

async def fetch(request, env, ctx):
    return Response.text(config["label"])
"""
    deploy(source, pop.control, matcher=["/given/:rest*"])
    assert request(pop, "/given/x").body == b"kept"
    assert b"kept" not in request(pop, "/mine").body  # the given matcher replaced this one


def test_env_cache_and_streaming_and_wait_until(world, pop):
    source = """
import asyncio

DONE = []

async def fetch(request, env, ctx):
    if request.path == "/done":
        return Response.json(DONE)
    if request.path == "/stream":
        async def parts():
            for i in range(3):
                yield f"part {i}\\n"
        return Response.stream(parts())
    cached = await env.cache.match("/memo")
    if cached:
        return cached
    fresh = Response.text("memo", headers={"Cache-Control": "max-age=60"})
    await env.cache.put("/memo", fresh)

    async def later():
        DONE.append("ran")
    ctx.wait_until(later())
    return Response.text("memo")
"""
    deploy(source, pop.control)
    assert request(pop, "/stream").body == b"part 0\npart 1\npart 2\n"
    assert request(pop, "/memo").body == b"memo"
    assert request(pop, "/memo").headers.get("x-cache") == "HIT"
    assert wait_until(lambda: request(pop, "/done").json() == ["ran"])


def test_handler_origin_fetch_uses_the_cache(world, pop):
    rule = {"match": "/api/items/viaenv*", "headers": {"Cache-Control": "max-age=60"}}
    call(world.origin.control, "POST", "/_kit/config", {"rules": [rule]})
    deploy(
        "async def fetch(request, env, ctx):\n"
        "    return await env.origin.fetch('/api/items/viaenv')\n",
        pop.control,
    )
    before = metrics(world.pop)["origin_fetches"]
    assert [request(pop, "/x").cache for _ in range(3)] == ["MISS", "HIT", "HIT"]
    assert metrics(world.pop)["origin_fetches"] - before == 1


def test_undeploy_returns_to_plain_proxy(pop):
    deploy("async def fetch(request, env, ctx):\n    return Response.text('edge')\n", pop.control)
    undeploy(pop.control)
    assert b"<h1>x</h1>" in request(pop, "/page/x").body
