"""The edge on a world: services on PoP hosts, controlled over Unix sockets.

The loopback tests check the services' `--unix` option and the control client;
the world tests start two origins and the PoPs on the shared world, deploy a handler
over the sockets, and send users' requests over the emulated network.
"""

import base64
import json
import socket
from pathlib import Path

import pytest
from test_services_support import LoopbackEdge, Service, request, wait_until

from kit.control import ControlError, DeployError, call, check_target, deploy, undeploy
from kit.edge import start_edge
from kit.net import World, WorldError
from kit.net.procs import ServiceError

GEO_REDIRECT = """
async def fetch(request, env, ctx):
    if request.geo.country == "DE":
        return Response.redirect("https://de.example.com", 302)
    return await env.origin.fetch(request)
"""


# -- loopback: the --unix option and the control client --------------------------


def test_a_service_serves_tcp_and_its_unix_socket_and_removes_it(tmp_path):
    path = tmp_path / "origin.sock"
    origin = Service("origin", "--unix", str(path), workdir=str(tmp_path))
    try:
        target = f"unix:{path}"
        assert call(target, "GET", "/_kit/health")["service"] == "origin"
        assert request(origin.url, "/_kit/health").status == 404  # control: socket only
        request(origin.url, "/page/a")
        assert call(target, "GET", "/_kit/metrics")["requests"] == 1
        call(target, "POST", "/_kit/metrics/reset")
        assert call(target, "GET", "/_kit/metrics")["requests"] == 0
        assert call(target, "POST", "/_kit/config", {"version": "v2"})["version"] == "v2"
        with pytest.raises(ControlError, match="unknown config keys"):
            call(target, "POST", "/_kit/config", {"nonsense": 1})
        listening = next(line for line in origin.logs() if line["event"] == "listening")
        assert listening["unix"] == str(path)
    finally:
        origin.stop()
    assert not path.exists()
    with pytest.raises(ControlError, match="cannot reach"):
        call(f"unix:{path}", "GET", "/_kit/health")


def test_a_socket_file_left_by_a_killed_service_is_replaced(tmp_path):
    path = tmp_path / "left.sock"
    with socket.socket(socket.AF_UNIX) as left:
        left.bind(str(path))  # a socket file nobody listens on
    origin = Service("origin", "--unix", str(path), workdir=str(tmp_path))
    try:
        assert call(f"unix:{path}", "GET", "/_kit/health")["status"] == "ok"
    finally:
        origin.stop()


def test_deploy_over_a_unix_socket(tmp_path):
    path = tmp_path / "pop.sock"
    world = LoopbackEdge("--unix", str(path))
    try:
        target = f"unix:{path}"
        (result,) = deploy(GEO_REDIRECT, {"fra": target})
        assert result.url == target and result.version == 1
        berlin = request(world.pop.url, "/page/home", source_ip="127.0.0.2")
        assert berlin.status == 302
        with pytest.raises(DeployError, match="line 2"):
            deploy("async def fetch(request, env, ctx):\n    retrun 1\n", target)
        assert request(world.pop.url, "/page/home", source_ip="127.0.0.2").status == 302
        undeploy(target)
        assert request(world.pop.url, "/page/home", source_ip="127.0.0.2").status == 200
    finally:
        world.close()


def test_targets_are_checked():
    assert check_target("http://10.0.0.1:8080/") == "http://10.0.0.1:8080"
    assert check_target("unix:/tmp/x.sock") == "unix:/tmp/x.sock"
    for bad in ("https://x.example", "10.0.0.1:80", "unix:", "http://h/_kit/deploy"):
        with pytest.raises(ValueError, match="target"):
            check_target(bad)


# -- on the world -------------------------------------------------------------------


def curl(world, host: str, url: str) -> tuple[int, dict[str, str], bytes]:
    """One request from a world host: status, headers (lower-case names), body."""
    raw = base64.b64decode(world.run(host, f"curl -s -i {url} | base64 -w0"))
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_start_edge_needs_a_running_world():
    with pytest.raises(WorldError, match="not running"):
        start_edge(World())


def test_a_service_that_fails_to_start_shows_its_log(world):
    running_before = {id(svc) for svc in world.services if svc.running}
    with pytest.raises(ServiceError, match="Its log ends") as failure:
        start_edge(world, ["pop-tokyo"], port=70000)  # no such port
    assert "exited with status" in str(failure.value)  # it died, and says so
    assert "0-65535" in str(failure.value)  # its log says why (the origin's or the PoP's)
    assert not [svc for svc in world.services if svc.running and id(svc) not in running_before]
    assert not list(Path(world.record.scratch).glob("*.sock"))


def test_unknown_names_are_refused(world):
    with pytest.raises(WorldError, match="no node 'pop-mars'"):
        start_edge(world, ["pop-mars"])
    with pytest.raises(WorldError, match="no node 'origin-mars'"):
        start_edge(world, ["pop-tokyo"], origins=("origin", "origin-mars"))
    with pytest.raises(WorldError, match="at least one origin"):
        start_edge(world, ["pop-tokyo"], origins=())
    with pytest.raises(WorldError, match="more than once: origin"):
        start_edge(world, ["pop-tokyo"], origins=("origin", "origin"))


@pytest.fixture(scope="module")
def edge(world):
    edge = start_edge(world, origins=("origin", "origin-eu"))
    deploy(GEO_REDIRECT, edge.pops)
    yield edge
    edge.stop()


def test_every_pop_and_origin_answer_over_their_sockets(world, edge):
    assert set(edge.pops) == {p.name for p in world.spec.of_kind("pop")}
    for name, target in edge.pops.items():
        assert target == f"unix:{world.record.scratch}/{name}.sock"
        assert call(target, "GET", "/_kit/health")["pop"] == name
    assert edge.origins == ["origin", "origin-eu"] and edge.origin == "origin"
    for name in edge.origins:
        assert edge.targets[name] == f"unix:{world.record.scratch}/{name}.sock"
        assert edge.metrics(name)["service"] == "origin" and name in edge.services
        assert call(edge.targets[name], "GET", "/_kit/health")["origin"] == name
    assert edge.pop_url("pop-tokyo") == f"http://{world.ip('pop-tokyo')}"
    with pytest.raises(WorldError, match="no 'pop-mars'"):
        edge.metrics("pop-mars")


def test_each_origin_has_its_url_config_and_name(world, edge):
    assert edge.origin_url == edge.origin_url_of("origin") == f"http://{world.ip('origin')}"
    eu = edge.origin_url_of("origin-eu")
    assert eu == f"http://{world.ip('origin-eu')}"
    with pytest.raises(WorldError, match="no origin 'pop-tokyo'"):
        edge.origin_url_of("pop-tokyo")
    try:
        assert edge.origin_config({"version": "eu2"}, name="origin-eu")["version"] == "eu2"
        assert edge.origin_config()["version"] == "v1"  # the first origin is untouched
        _, headers, body = curl(world, "user-berlin", f"{eu}/page/home")
        assert headers["x-origin"] == "origin-eu" and b"version eu2" in body
    finally:
        edge.origin_config({"version": "v1"}, name="origin-eu")
    status, headers, _ = curl(world, "user-tokyo", f"{edge.pop_url('pop-tokyo')}/page/home")
    assert status == 200 and headers["x-origin"] == "origin"  # the PoPs' env.origin


def test_a_handler_reaches_the_second_origin_with_env_fetch(world, edge):
    source = """
async def fetch(request, env, ctx):
    return await env.fetch(request.replace(url=env.config["eu"] + request.url.path_qs))
"""
    try:
        deploy(source, edge.pops, config={"eu": edge.origin_url_of("origin-eu")})
        edge.reset_metrics()
        url = f"{edge.pop_url('pop-frankfurt')}/api/items/7"
        status, headers, body = curl(world, "user-berlin", url)
        assert status == 200 and headers["x-origin"] == "origin-eu" and b'"id": "7"' in body
        assert edge.metrics("origin-eu")["requests"] == 1
        assert edge.metrics("origin")["requests"] == 0
        assert edge.metrics("pop-frankfurt")["fetches"] == 1
    finally:
        deploy(GEO_REDIRECT, edge.pops)


def test_geo_redirect_in_berlin_and_proxy_in_tokyo(world, edge):
    status, headers, _ = curl(world, "user-berlin", f"{edge.pop_url('pop-frankfurt')}/page/home")
    assert status == 302 and headers["location"] == "https://de.example.com"
    assert headers["x-edge-pop"] == "pop-frankfurt"
    status, headers, body = curl(world, "user-tokyo", f"{edge.pop_url('pop-tokyo')}/page/home")
    assert status == 200 and b"<h1>home</h1>" in body
    assert headers["x-edge-pop"] == "pop-tokyo"


def test_anycast_takes_a_user_to_the_nearest_pop(world, edge):
    _, headers, _ = curl(world, "user-singapore", f"{edge.anycast_url}/page/home")
    assert headers["x-edge-pop"] == "pop-singapore"


def test_the_second_request_is_a_hit_and_spares_the_origin(world, edge):
    edge.purge()
    edge.reset_metrics()
    url = f"{edge.pop_url('pop-tokyo')}/static/10k.bin"
    status, headers, body = curl(world, "user-tokyo", url)
    assert status == 200 and len(body) == 10240 and headers["x-cache"] == "MISS"
    assert edge.metrics("origin")["requests"] == 1
    assert edge.metrics("pop-tokyo")["origin_fetches"] == 1
    _, headers, again = curl(world, "user-tokyo", url)
    assert headers["x-cache"] == "HIT" and again == body
    assert edge.metrics("origin")["requests"] == 1
    pop = edge.metrics("pop-tokyo")
    assert pop["origin_fetches"] == 1 and pop["cache"]["hit"] == 1 and pop["requests"] == 2
    assert edge.purge("pop-tokyo", prefix="/static/") == 1
    assert curl(world, "user-tokyo", url)[1]["x-cache"] == "MISS"


def test_origin_config_changes_what_users_get(world, edge):
    try:
        assert edge.origin_config({"version": "v2"})["version"] == "v2"
        edge.purge()
        _, _, body = curl(world, "user-tokyo", f"{edge.pop_url('pop-tokyo')}/page/home")
        assert b"version v2" in body
    finally:
        edge.origin_config({"version": "v1"})


def test_a_broken_deploy_keeps_the_previous_handler(world, edge):
    broken = GEO_REDIRECT.replace("return Response.redirect", "retrun Response.redirect")
    serving = call(edge.pops["pop-frankfurt"], "GET", "/_kit/deploy")["handler"]["version"]
    with pytest.raises(DeployError) as failure:
        deploy(broken, edge.pops)
    assert failure.value.line == 4 and "SyntaxError" in str(failure.value)
    assert set(failure.value.failures) == set(edge.pops)
    status, _, _ = curl(world, "user-berlin", f"{edge.pop_url('pop-frankfurt')}/page/home")
    assert status == 302
    active = call(edge.pops["pop-frankfurt"], "GET", "/_kit/deploy")
    assert active["handler"]["version"] == serving


def test_handler_errors_land_in_the_pop_log(world, edge):
    try:
        deploy("async def fetch(request, env, ctx):\n    return 1 / 0\n", edge.pops)
        status, _, body = curl(world, "user-tokyo", f"{edge.pop_url('pop-tokyo')}/x")
        assert status == 500 and b"ZeroDivisionError" in body
        assert wait_until(lambda: "ZeroDivisionError" in edge.log("pop-tokyo"))
    finally:
        deploy(GEO_REDIRECT, edge.pops)


def test_a_user_on_the_network_cannot_deploy_or_reconfigure(world, edge):
    """From a user host, the control plane is not there: no code runs, nothing changes."""
    marker = Path(world.record.scratch) / "deployed-by-a-user"
    code = f"open({str(marker)!r}, 'w').write('root')\nasync def fetch(r, e, c):\n    pass\n"
    body = json.dumps({"source": code}).replace("'", "'\\''")
    pop = edge.pop_url("pop-frankfurt")
    for url in (f"{pop}/_kit/deploy", f"{edge.origin_url}/_kit/config"):
        status = world.run(
            "user-berlin", f"curl -s -o /dev/null -w '%{{http_code}}' -d '{body}' {url}"
        )
        assert status == "404", url
    # the old trick: a path that names another host, through the PoP
    target = f"//{edge.origin_url.removeprefix('http://')}/_kit/config"
    world.run("user-berlin", f"curl -s --path-as-is -d '{{\"think_ms\": 900}}' {pop}{target}")
    assert not marker.exists()
    assert edge.origin_config()["think_ms"] == 0
    # the same request on the root-only control socket does run: the payload was fine
    socket_path = edge.pops["pop-frankfurt"].removeprefix("unix:")
    try:
        world.run(
            "origin", f"curl -s --unix-socket {socket_path} -d '{body}' http://pop/_kit/deploy"
        )
        assert marker.exists()
    finally:
        deploy(GEO_REDIRECT, edge.pops)


def test_stop_leaves_no_processes_or_sockets(world, edge):
    services = list(edge.services.values())
    edge.stop()
    assert all(svc.proc.poll() is not None for svc in services)
    assert not [svc for svc in world.services if svc in services]
    assert not list(Path(world.record.scratch).glob("*.sock"))
    assert world.run("pop-tokyo", "ss -Hltn 'sport = :80'").strip() == ""
    assert world.run("origin", "ss -Hltn 'sport = :80'").strip() == ""
    assert world.run("origin-eu", "ss -Hltn 'sport = :80'").strip() == ""
    assert not (Path(world.record.scratch) / "geo.json").exists()
    edge.stop()  # twice is fine
