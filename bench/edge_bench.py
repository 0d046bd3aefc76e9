"""Edge benchmarks: ratios measured side by side in one run, on loopback.

    .venv/bin/python bench/edge_bench.py

(a) Cold start. Deploying a handler to a running PoP (the isolate model: load
    code into a process that is already up) against starting a new PoP process
    until it answers its health check (the container model). The handler's cold
    start is reported twice: as the PoP measured it (loading the code) and as
    the notebook saw it (both deploy phases over the Unix control socket).

(b) Throughput. A cached 10 KB object served by nginx's proxy_cache and by
    the kit's PoP in front of the same kit origin: the PoP with no handler (its
    hit path), and with a pass-through handler (`env.origin.fetch(request)`,
    answered from the cache) running in its supervised worker process. Beside
    them, the PoP as it was before handlers moved to a worker
    (commit PRE_ISOLATION, unpacked from git history), with no handler and with
    the same handler run inside the PoP's own process: the price of isolation,
    and proof that the hit path without a handler did not get slower.
    Each server (a PoP with its worker) is pinned to core 0; wrk runs on core 1.
    All are up at once and measured in interleaved rounds (a warm-up, then the
    same duration each); the table shows each one's median, since one run on a
    shared 2-core machine varies by 10%.

Prints a table and exits 0. Needs nginx (/usr/sbin/nginx) and wrk for (b).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kit.control import deploy  # noqa: E402
from kit.net.procs import stop_process  # noqa: E402
from kit.services.launch import LocalService  # noqa: E402

NGINX = "/usr/sbin/nginx"
PRE_ISOLATION = "7fcf13d"  # the last commit whose PoP ran handlers in its own process
OBJECT = "/static/10k.bin"
DEPLOYS, PROCESS_STARTS = 30, 5
WARMUP_S, MEASURE_S, CONNECTIONS = 2, 5, 64
ROUNDS = 3  # each server measured this many times, interleaved; the median is shown
SERVER_CORE, LOAD_CORE = "0", "1"
PASS_THROUGH = """
async def fetch(request, env, ctx):
    return await env.origin.fetch(request)
"""
HANDLER = """
async def fetch(request, env, ctx):
    if request.geo.country == "DE":
        return Response.redirect("https://de.example.com", 302)
    return await env.origin.fetch(request)
"""

NGINX_CONF = """
worker_processes 1;
{user}
pid {tmp}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    proxy_cache_path {tmp}/cache levels=1:2 keys_zone=edge:10m max_size=64m use_temp_path=off;
    upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache edge;
            add_header x-cache $upstream_cache_status;
        }}
    }}
}}
"""


def pinned(core: str) -> list[str]:
    """`taskset -c CORE` if this machine has that core, else nothing."""
    return ["taskset", "-c", core] if int(core) < (os.cpu_count() or 1) else []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def kit_service(
    name: str, tmp: Path, *args: str, core: str | None = None, code: Path = REPO
) -> LocalService:
    """A kit service on 127.0.0.1 (pinned to ``core`` if given), started."""
    return LocalService(name, *args, workdir=tmp, prefix=pinned(core) if core else (), code=code)


def cold_start(tmp: Path, origin: LocalService) -> dict[str, float]:
    """Median ms: handler load at the PoP, deploy seen by the client, process start."""
    pop = kit_service("pop", tmp, "--pop", "bench", "--origin", origin.url)
    try:
        reported, seen = [], []
        for _ in range(DEPLOYS):
            started = time.perf_counter()
            (result,) = deploy(HANDLER, pop.control)
            seen.append((time.perf_counter() - started) * 1000)
            reported.append(result.cold_start_ms)
    finally:
        pop.stop()
    process = []
    for _ in range(PROCESS_STARTS):
        started = time.perf_counter()  # until it listens on its port and its socket
        fresh = kit_service("pop", tmp, "--pop", "bench", "--origin", origin.url)
        process.append((time.perf_counter() - started) * 1000)
        fresh.stop()
    return {
        "reported": statistics.median(reported),
        "seen": statistics.median(seen),
        "process": statistics.median(process),
    }


def wrk(url: str, seconds: int, headers: Sequence[str] = ()) -> float:
    """Requests per second wrk measured (one thread, pinned to the load core)."""
    command = pinned(LOAD_CORE) + ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", url]
    command += [option for header in headers for option in ("-H", header)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not found:
        raise RuntimeError(f"wrk printed no Requests/sec:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors[1]} error responses under load:\n{out}")
    return float(found[1])


def served_from_cache(url: str, headers: Sequence[str] = ()) -> bool:
    """Fetch twice; the second answer must say HIT (both servers send x-cache)."""
    options = [option for header in headers for option in ("-H", header)]
    for _ in range(2):
        out = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-D", "-", *options, url],
            capture_output=True,
            text=True,
        ).stdout
    return bool(re.search(r"(?im)^x-cache: HIT", out))


def throughput(url: str, headers: Sequence[str] = ()) -> float:
    """wrk's requests/s for a URL the server answers from its cache (after a warm-up)."""
    if not served_from_cache(url, headers):
        raise RuntimeError(f"{url} is not served from the cache")
    wrk(url, WARMUP_S, headers)
    return wrk(url, MEASURE_S, headers)


def start_nginx(tmp: Path, origin_port: int) -> tuple[subprocess.Popen, str]:
    home = tmp / "nginx"
    home.mkdir()
    port = free_port()
    user = "user root;" if os.geteuid() == 0 else ""
    conf = NGINX_CONF.format(tmp=home, origin_port=origin_port, port=port, user=user)
    (home / "nginx.conf").write_text(conf)
    log = home / "error.log"
    command = [NGINX, "-p", str(home), "-c", str(home / "nginx.conf"), "-e", str(log)]
    proc = subprocess.Popen(
        pinned(SERVER_CORE) + [*command, "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while subprocess.run(["curl", "-s", "-o", "/dev/null", url + "/_kit/health"]).returncode:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"nginx did not start:\n{log.read_text() if log.exists() else ''}")
        time.sleep(0.02)
    return proc, url


def stop(proc: subprocess.Popen) -> None:
    stop_process(proc, 10)  # SIGTERM: nginx's fast shutdown of master and worker


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value:>14}" for name, value in rows)


def start_pop(tmp: Path, origin: LocalService, handler: bool, code: Path = REPO) -> LocalService:
    """A PoP on the server core, with the pass-through handler deployed or none."""
    args = ("--pop", "bench", "--origin", origin.url)
    pop = kit_service("pop", tmp, *args, core=SERVER_CORE, code=code)
    if handler:
        deploy(PASS_THROUGH, pop.control)
    return pop


def pre_isolation_code(tmp: Path) -> Path | None:
    """The kit as of PRE_ISOLATION, unpacked from git history (None if not in this clone)."""
    home = tmp / "pre-isolation"
    home.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", PRE_ISOLATION, "kit"], capture_output=True
    )
    if archive.returncode:
        return None
    subprocess.run(["tar", "-x", "-C", str(home)], input=archive.stdout, check=True)
    return home


def hit_path_rows(tmp: Path, origin: LocalService) -> list[tuple[str, str]]:
    """Every server up at once, measured in ROUNDS interleaved rounds: medians."""
    servers: dict[str, LocalService] = {}
    nginx = None
    try:
        servers["plain"] = start_pop(tmp, origin, handler=False)
        servers["worker"] = start_pop(tmp, origin, handler=True)
        old = pre_isolation_code(tmp)
        if old is not None:
            servers["old plain"] = start_pop(tmp, origin, handler=False, code=old)
            servers["in-process"] = start_pop(tmp, origin, handler=True, code=old)
        nginx, nginx_url = start_nginx(tmp, int(origin.url.rpartition(":")[2]))
        urls = {name: pop.url + OBJECT for name, pop in servers.items()}
        urls["nginx"] = nginx_url + OBJECT
        samples: dict[str, list[float]] = {name: [] for name in urls}
        for round_number in range(ROUNDS):
            order = list(urls) if round_number % 2 == 0 else list(reversed(urls))
            for name in order:
                samples[name].append(throughput(urls[name]))
    finally:
        for pop in servers.values():
            pop.stop()
        if nginx is not None:
            stop(nginx)
    rps = {name: statistics.median(values) for name, values in samples.items()}
    rows = [
        ("(b) nginx proxy_cache, cached 10 KB, 1 core", f"{rps['nginx']:,.0f} req/s"),
        ("(b) kit PoP, no handler", f"{rps['plain']:,.0f} req/s"),
        ("(b) kit PoP, handler in its worker process", f"{rps['worker']:,.0f} req/s"),
        ("    nginx / kit PoP (no handler)", f"{rps['nginx'] / rps['plain']:.1f}x"),
        ("    no handler / handler in a worker", f"{rps['plain'] / rps['worker']:.1f}x"),
    ]
    if "old plain" not in rps:
        return [*rows, ("(b) before isolation", f"skipped: {PRE_ISOLATION} not in this clone")]
    return rows + [
        (
            f"(b) kit PoP before isolation ({PRE_ISOLATION}), no handler",
            f"{rps['old plain']:,.0f} req/s",
        ),
        ("(b) kit PoP before isolation, handler in-process", f"{rps['in-process']:,.0f} req/s"),
        ("    no handler: now / before", f"{rps['plain'] / rps['old plain']:.2f}x"),
        ("    handler: in its worker / in-process", f"{rps['worker'] / rps['in-process']:.2f}x"),
    ]


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="edgelab-bench-"))
    origin = kit_service("origin", tmp, core=SERVER_CORE)
    rows: list[tuple[str, str]] = []
    try:
        times = cold_start(tmp, origin)
        rows += [
            ("(a) handler deploy: load at the PoP", f"{times['reported']:.2f} ms"),
            ("(a) handler deploy: seen by the notebook", f"{times['seen']:.2f} ms"),
            ("(a) new PoP process until healthy", f"{times['process']:.0f} ms"),
            ("    process start / deploy (notebook)", f"{times['process'] / times['seen']:.0f}x"),
            ("    process start / load at the PoP", f"{times['process'] / times['reported']:.0f}x"),
        ]
        if not shutil.which("wrk") or not os.path.exists(NGINX):
            rows.append(("(b) skipped", "needs wrk and nginx (apt-get install wrk nginx-light)"))
        else:
            rows += hit_path_rows(tmp, origin)
    finally:
        origin.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    cores = f"servers on core {SERVER_CORE}, wrk on core {LOAD_CORE}"
    print(f"Edge Lab edge benchmark (loopback; medians of {DEPLOYS} deploys and ")
    print(
        f"{PROCESS_STARTS} process starts; median of {ROUNDS} interleaved rounds of "
        f"{MEASURE_S} s of wrk -c{CONNECTIONS} per server; {cores})\n"
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
