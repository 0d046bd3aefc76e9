"""A PoP that neither a hostile user nor a learner's handler can break.

Each test is one attack or one mistake, tried against a real origin and PoP on
loopback: a handler that loops, blocks, exits or eats memory; one that fetches
its own PoP; a deploy that breaks at import or half-way; a user who asks the PoP
to proxy to another server or to run code through its port. The PoP must answer
each with a clear status and reason, and go on serving everything else.
"""

import os
import socket
import socketserver
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from test_services_support import (
    LoopbackEdge,
    Service,
    alive,
    metrics,
    request,
    wait_until,
)

from kit.control import DeployError, call, deploy, undeploy
from kit.services.launch import REPO

LIMIT_S = 2

MISBEHAVING = """
async def fetch(request, env, ctx):
    if request.path == "/spin":
        while True: pass
    if request.path == "/block":
        import time
        time.sleep(60)
    if request.path == "/exit":
        import sys
        sys.exit(3)
    if request.path == "/crash":
        import os
        os._exit(4)
    if request.path == "/hog":
        hoard = bytearray(1 << 30)
    if request.path == "/self":
        return await env.fetch(str(request.url))
    return Response.text("fine")

config = {"matcher": ["/spin", "/block", "/exit", "/crash", "/hog", "/self", "/ok"]}
"""


@pytest.fixture(scope="module")
def edge():
    edge = LoopbackEdge("--handler-timeout", str(LIMIT_S))
    yield edge
    edge.close()


@pytest.fixture
def pop(edge):
    deploy(MISBEHAVING, edge.pop.control)
    yield edge.pop
    undeploy(edge.pop.control)


def in_background(pop, path):
    """Send a request from a thread; returns (thread, list that gets the reply)."""
    replies = []
    thread = threading.Thread(target=lambda: replies.append(request(pop, path)))
    thread.start()
    return thread, replies


# -- handlers that never yield ------------------------------------------------------


@pytest.mark.parametrize(
    "path, line", [("/spin", "line 4: while True: pass"), ("/block", "line 7: time.sleep(60)")]
)
def test_a_handler_that_never_yields_gets_a_504_naming_its_line(pop, path, line):
    request(pop, "/static/10k.txt")  # cached before the handler gets stuck
    stuck, replies = in_background(pop, path)
    served_meanwhile = 0
    while stuck.is_alive() and served_meanwhile < 50:
        assert request(pop, "/static/10k.txt").cache == "HIT"  # cached content
        assert request(pop, "/api/items/7").status == 200  # a path with no handler
        served_meanwhile += 1
    stuck.join()
    assert served_meanwhile >= 3, "the PoP must keep serving while the handler is stuck"
    (reply,) = replies
    assert reply.status == 504
    assert f"time limit of {LIMIT_S} s".encode() in reply.body
    assert b"without ever yielding" in reply.body and line.encode() in reply.body
    assert request(pop, "/ok").body == b"fine"  # a new worker serves the handler
    assert alive(pop)


def test_sys_exit_is_a_handler_error_not_the_end_of_the_pop(pop):
    reply = request(pop, "/exit")
    assert reply.status == 500 and b"sys.exit(3)" in reply.body and b"line 10" in reply.body
    assert request(pop, "/ok").body == b"fine"


def test_os_exit_kills_only_the_worker_and_the_next_request_gets_a_new_one(pop):
    before = metrics(pop)["handler_restarts"]
    reply = request(pop, "/crash")
    assert reply.status == 500 and b"exited with status 4" in reply.body
    assert request(pop, "/ok").body == b"fine"
    assert metrics(pop)["handler_restarts"] == before + 1


def test_a_handler_that_allocates_without_bound_gets_a_memory_error(pop):
    reply = request(pop, "/hog")
    assert reply.status == 500 and b"MemoryError" in reply.body and b"line 15" in reply.body
    assert request(pop, "/ok").body == b"fine"


def test_a_handler_that_fetches_its_own_pop_is_a_508_loop_not_an_avalanche(pop):
    before = metrics(pop)["requests"]
    reply = request(pop, "/self")
    assert reply.status == 508 and b"loop detected" in reply.body
    assert b"CDN-Loop: edgelab-fra" in reply.body
    # the learner's request and one echo (a busy machine may count the second late)
    assert wait_until(lambda: metrics(pop)["requests"] - before >= 2)
    assert metrics(pop)["requests"] - before == 2
    assert metrics(pop)["loops"] >= 1


# -- deploys ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "module, reason",
    [
        ("import sys\nsys.exit(2)\n", "sys.exit(2)"),
        ("import os\nos._exit(0)\n", "exited with status 0 while loading"),
        ("ready = False\nwhile not ready:\n    pass\n", "ran past its limit"),
    ],
    ids=["sys.exit", "os._exit", "loop"],
)
def test_a_handler_that_exits_or_hangs_at_import_is_refused_and_the_old_one_serves(
    pop, module, reason
):
    with pytest.raises(DeployError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        deploy(module + "\nasync def fetch(request, env, ctx):\n    return None\n", pop.control)
    assert request(pop, "/ok").body == b"fine"


def test_a_handler_sees_the_handler_api_and_not_the_notebook_tools(edge):
    source = """
async def fetch(request, env, ctx):
    seen = [n for n in ("Response", "Request", "Geo", "FetchError", "deploy", "undeploy")
            if n in globals()]
    return Response.json(seen)
"""
    deploy(source, edge.pop.control)
    try:
        assert request(edge.pop, "/x").json() == ["Response", "Request", "Geo", "FetchError"]
    finally:
        undeploy(edge.pop.control)


class FailsToSwitch(BaseHTTPRequestHandler):
    """A PoP's control socket that stages a handler but cannot switch to it."""

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        staged = self.path == "/_kit/deploy"
        body = b'{"ok": true, "token": "t1", "cold_start_ms": 1}' if staged else b'{"error": "x"}'
        self.send_response(200 if staged else 500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        sock, _ = super().get_request()
        return sock, ("local", 0)


def test_a_switch_that_fails_on_one_pop_is_rolled_back_on_the_others(edge, tmp_path):
    old = "async def fetch(request, env, ctx):\n    return Response.text('old')\n"
    new = "async def fetch(request, env, ctx):\n    return Response.text('new')\n"
    deploy(old, edge.pop.control)
    path = str(tmp_path / "broken.sock")
    broken = UnixHTTPServer(path, FailsToSwitch)
    threading.Thread(target=broken.serve_forever, daemon=True).start()
    try:
        with pytest.raises(DeployError, match="rolled back"):
            deploy(new, {"fra": edge.pop.control, "broken": f"unix:{path}"})
        assert request(edge.pop, "/x").body == b"old"
    finally:
        broken.shutdown()
        undeploy(edge.pop.control)


def test_staged_handlers_belong_to_their_deploy(edge):
    stage = {"source": "async def fetch(request, env, ctx):\n    return Response.text('a')\n"}
    first = call(edge.pop.control, "POST", "/_kit/deploy", {**stage, "activate": False})
    second = call(edge.pop.control, "POST", "/_kit/deploy", {**stage, "activate": False})
    call(edge.pop.control, "DELETE", f"/_kit/deploy/staged/{first['token']}")
    activated = call(edge.pop.control, "POST", "/_kit/deploy/activate", second)
    assert activated["ok"] and request(edge.pop, "/x").body == b"a"
    undeploy(edge.pop.control)


def test_staged_handlers_expire(tmp_path):
    edge = LoopbackEdge("--staged-ttl", "0.5")
    try:
        source = "async def fetch(request, env, ctx):\n    return Response.text('a')\n"
        payload = {"source": source, "activate": False}
        staged = call(edge.pop.control, "POST", "/_kit/deploy", payload)

        def expired():
            status, _ = control_status(edge.pop, "/_kit/deploy/activate", staged)
            return status == 404

        assert wait_until(expired, timeout=10)
    finally:
        edge.close()


def control_status(service, path, payload):
    from kit.control import request as control_request

    return control_request(service.control, "POST", path, {"token": payload["token"]})


# -- hostile users on the data plane -------------------------------------------------


def test_the_control_plane_is_not_on_the_users_port(edge):
    source = "import os\nos.system('touch /tmp/pwned')\n"
    for method, path in [
        ("POST", "/_kit/deploy"),
        ("POST", "/_kit/deploy/activate"),
        ("DELETE", "/_kit/deploy"),
        ("POST", "/_kit/metrics/reset"),
        ("GET", "/_kit/metrics"),
        ("GET", "/_kit/health"),
        ("DELETE", "/_kit/cache"),
    ]:
        for service in (edge.pop, edge.origin):
            reply = request(service, path, method, body=source.encode())
            assert reply.status == 404, (service.url, method, path)
    reply = request(edge.origin, "/_kit/config", "POST", body=b'{"think_ms": 5000}')
    assert reply.status == 404
    assert call(edge.origin.control, "GET", "/_kit/config")["think_ms"] == 0


def test_the_control_socket_is_root_only(edge):
    path = edge.pop.control.removeprefix("unix:")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    os.chmod(Path(path).parent, 0o755)  # as a world's scratch folder: only the socket guards
    connect = f"import socket; socket.socket(socket.AF_UNIX).connect({path!r})"
    as_nobody = subprocess.run(
        ["/usr/bin/python3", "-c", connect],  # not the venv's: it may live under /root
        user="nobody",
        capture_output=True,
        text=True,
    )
    assert as_nobody.returncode != 0 and "PermissionError" in as_nobody.stderr


def test_services_listen_on_loopback_unless_told(tmp_path):
    log = tmp_path / "origin.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kit.services.origin", "--port", "0"],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        assert wait_until(lambda: '"listening"' in log.read_text(), timeout=20)
        assert '"host": "127.0.0.1"' in log.read_text()
    finally:
        proc.terminate()
        proc.wait()


def raw_get(service, target: str) -> bytes:
    """Send a request line exactly as given (http.client would not send `//host/x`)."""
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def test_the_pop_is_not_an_open_proxy(edge, tmp_path):
    victim = Service("origin", "--name", "victim", workdir=str(tmp_path))
    try:
        for target in (
            f"//127.0.0.1:{victim.port}/api/echo",
            f"http://127.0.0.1:{victim.port}/api/echo",
            f"//127.0.0.1:{victim.port}/_kit/config",
        ):
            reply = raw_get(edge.pop, target)
            assert b"x-origin: victim" not in reply.lower(), target
        assert metrics(victim)["requests"] == 0
    finally:
        victim.stop()


def test_nothing_is_left_running_after_the_pop_stops(tmp_path):
    edge = LoopbackEdge()
    deploy(MISBEHAVING, edge.pop.control)
    pop_pid = edge.pop.process.pid
    workers = [
        int(pid)
        for pid in subprocess.run(
            ["pgrep", "-P", str(pop_pid)], capture_output=True, text=True
        ).stdout.split()
    ]
    assert workers, "the PoP runs its handler in a worker process"
    edge.close()
    assert wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers))


def test_an_evicted_handler_is_loaded_again_by_the_next_request(edge):
    source = "import time\nLOADED = time.time()\n\nasync def fetch(request, env, ctx):\n"
    source += "    return Response.text(str(LOADED))\n"
    deploy(source, edge.pop.control)
    try:
        first = request(edge.pop, "/x").body
        assert request(edge.pop, "/x").body == first  # warm: the same loaded module
        evicted = call(edge.pop.control, "POST", "/_kit/deploy/evict")
        assert evicted["ok"]
        assert request(edge.pop, "/x").body != first  # loaded again: a cold start
    finally:
        undeploy(edge.pop.control)
