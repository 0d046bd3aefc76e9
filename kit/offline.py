"""Chapter 10's app on a world: its server at the origin, a service worker's proxy on devices.

    from kit.offline import start_offline

    app = start_offline(world, devices=("user-berlin", "user-tokyo"))
    app.fetch("user-berlin", "/app/logo.svg")  # Fetched: status, source, strategy, ms, body
    app.page("user-berlin")                    # the page and its assets: time to interactive
    app.offline("user-berlin")                 # cut the device's access link (and online())
    app.lie_fi("user-berlin")                  # the link stays up and carries nothing
    app.set_routes("user-berlin", [{"match": "/app/", "strategy": "NetworkOnly"}])
    app.push_update("user-tokyo", "doc", update)   # a Yjs update to the server's document
    app.start_program("user-tokyo", source)    # Python on the device (SYNC_URL in its env)
    faults.play(world, app.disconnects("user-tokyo", seed=3, duration=20))
    app.server_counts()                        # applied, replayed, per key, bytes in
    app.stop()

The glue between two services and a world, as `kit.db` is for the database:

- **The sync service** (`kit.services.sync`, whose docstring is the API) on
  `origin` in Ashburn, port 7300: the notes API with idempotency keys, the CRDT
  documents and the app's shell. Its SQLite file lives in the world's scratch folder.
- **A proxy per device** (`kit.services.swproxy`: Workbox's strategies) on each
  device's host, listening on that host's 127.0.0.1:7301, forwarding to the sync
  service across the emulated network. Its cache (SQLite) is in scratch too.

Requests are made from the device's host by a small standard-library client
(`CLIENT`, run with this interpreter), which times each one from sending it to
the last byte of its answer: through the proxy by default (`app.proxy_url`, the
page's view), or straight to the server with `direct=True` (`app.sync_url`, what
a background sync queue on the device talks to). A client process costs tens of
milliseconds to start; that is not in the times.

Offline is the network failing, never a flag: `offline(device)` cuts the device's
access link (`world.cut_link`), so its interface goes down and it has no route;
`lie_fi(device)` sets the link's loss to 100 %, so requests hang. `online(device)`
undoes either. Everything started is one of the world's services: `world.stop()`
stops it, a killed kernel takes it along, and `app.stop()` stops it earlier and
removes its files. One app per world: starting another stops the previous one.
"""

from __future__ import annotations

import base64
import json
import random
import subprocess
import sys
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit.control import call, protocol
from kit.net.faults import FaultEvent
from kit.net.procs import Service, ServiceError, wait_healthy
from kit.net.world import World, WorldError
from kit.services import swproxy, sync

SYNC_HOST = "origin"
DEFAULT_ROUTES: tuple[dict[str, Any], ...] = ()  # no routes: a page without a service worker

# Runs on a device's host: reads {"base", "requests": [...], "page": bool} on stdin, makes
# the requests (a page: the first, then every href in it at once, as a browser would) and
# prints one result per request. Standard library only, so it starts fast.
CLIENT = r"""
import base64, http.client, json, re, sys, time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit
job = json.load(sys.stdin)
where = urlsplit(job["base"])
KEEP = ("x-sw-from", "x-sw-strategy", "x-sw-error", "x-sw-cached-at", "x-idempotent-replay",
        "retry-after", "content-type")
def one(spec):
    body = base64.b64decode(spec["body"]) if spec.get("body") else None
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=job["timeout"])
    try:
        conn.request(spec.get("method", "GET"), spec["path"], body=body,
                     headers=spec.get("headers", {}))
        response = conn.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException) as error:
        return {"path": spec["path"], "status": 0, "error": f"{type(error).__name__}: {error}",
                "ms": (time.perf_counter() - t0) * 1000, "headers": {}, "body": ""}
    finally:
        conn.close()
    headers = {k.lower(): v for k, v in response.getheaders() if k.lower() in KEEP}
    return {"path": spec["path"], "status": response.status, "headers": headers,
            "ms": (time.perf_counter() - t0) * 1000, "body": base64.b64encode(data).decode()}
t0 = time.perf_counter()
with ThreadPoolExecutor(6) as pool:  # a browser opens at most 6 connections to a host
    if job["page"]:
        first = one(job["requests"][0])
        html = base64.b64decode(first["body"]).decode(errors="replace")
        links = [{"path": p} for p in re.findall(r'href="(/[^"]*)"', html)]
        results = [first, *pool.map(one, links)]
    elif job["parallel"]:
        results = list(pool.map(one, job["requests"]))
    else:
        results = [one(spec) for spec in job["requests"]]
print(json.dumps({"results": results, "ms": (time.perf_counter() - t0) * 1000}))
"""

_apps: weakref.WeakSet[OfflineApp] = weakref.WeakSet()


@dataclass
class Fetched:
    """One request's answer as the device saw it."""

    path: str
    status: int  # 0: no answer at all (`error` says why)
    ms: float  # from sending the request to the last byte of the answer
    headers: dict[str, str]
    body: bytes
    error: str | None = None

    @property
    def source(self) -> str | None:
        """Where the proxy got the answer: cache, network, stale-while-revalidate."""
        return self.headers.get("x-sw-from")

    @property
    def strategy(self) -> str | None:
        return self.headers.get("x-sw-strategy")

    @property
    def no_response(self) -> bool:
        """The strategy had no answer (Workbox's `no-response`)."""
        return self.headers.get("x-sw-error") == "no-response"

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Page:
    """A page and its assets, fetched as a browser would (the page, then its links at once)."""

    ms: float  # time to interactive: until the last asset arrived
    parts: list[Fetched] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(part.status == 200 for part in self.parts)

    @property
    def sources(self) -> dict[str, str | None]:
        return {part.path: part.source for part in self.parts}


class OfflineApp:
    """The running sync service and device proxies (see the module docstring)."""

    def __init__(self, world: World, services: dict[str, Service], devices: list[str]) -> None:
        self.world, self.services, self.devices = world, services, devices
        self.scratch = Path(world.record.scratch)
        self.sync_target = f"unix:{self.scratch / f'{SYNC_HOST}.sync.sock'}"
        self.proxy_targets = {d: f"unix:{self.scratch / f'{d}.swproxy.sock'}" for d in devices}
        self._loss: dict[str, float] = {}  # a device's loss before lie_fi
        self.programs: list[Service] = []  # start_program's

    # -- where things are ---------------------------------------------------------------

    @property
    def sync_url(self) -> str:
        """The sync service, as world hosts reach it."""
        return f"http://{self.world.ip(SYNC_HOST)}:{sync.PORT}"

    @property
    def proxy_url(self) -> str:
        """A device's proxy, as that device reaches it (its own loopback)."""
        return f"http://127.0.0.1:{swproxy.PORT}"

    # -- requests from a device ---------------------------------------------------------

    def fetch(
        self,
        device: str,
        path: str,
        method: str = "GET",
        *,
        json_body: Any = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        direct: bool = False,
        timeout: float = 30.0,
    ) -> Fetched:
        """One request from `device`: through its proxy, or `direct` to the sync service."""
        spec = request_spec(path, method, json_body, body, headers)
        return self.requests(device, [spec], direct=direct, timeout=timeout)[0]

    def requests(
        self,
        device: str,
        specs: Iterable[dict[str, Any]],
        *,
        direct: bool = False,
        parallel: bool = False,
        timeout: float = 30.0,
    ) -> list[Fetched]:
        """Several requests from `device` (`request_spec` makes each), one after another
        or all at once (`parallel`, six connections at a time)."""
        job = {"requests": list(specs), "page": False, "parallel": parallel}
        return self._run(device, job, direct, timeout)["results"]

    def page(self, device: str, path: str = "/app/", timeout: float = 30.0) -> Page:
        """Load a page through the device's proxy: the page, then every asset it links, at
        once. `ms` is the time until the last one arrived (time to interactive)."""
        answer = self._run(device, {"requests": [{"path": path}], "page": True}, False, timeout)
        return Page(answer["ms"], answer["results"])

    def _run(self, device: str, job: dict[str, Any], direct: bool, timeout: float) -> dict:
        self._device(device)
        job = {"parallel": False, **job, "base": self.sync_url if direct else self.proxy_url}
        job["timeout"] = timeout
        process = self.world.popen(
            device,
            [sys.executable, "-c", CLIENT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            limit = timeout * (len(job["requests"]) + 1) + 30
            out, err = process.communicate(json.dumps(job), timeout=limit)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise WorldError(f"the client on {device} ran past its time") from None
        if process.returncode:
            raise WorldError(f"the client on {device} failed: {err.strip()[-2000:]}")
        answer = json.loads(out)
        answer["results"] = [
            Fetched(
                r["path"],
                r["status"],
                r["ms"],
                r["headers"],
                base64.b64decode(r["body"]),
                r.get("error"),
            )
            for r in answer["results"]
        ]
        return answer

    def push_update(self, device: str, name: str, update: bytes) -> Fetched:
        """Send a Yjs update made on `device` to the server's document `name`."""
        kind = {"Content-Type": "application/octet-stream"}
        return self.fetch(device, f"/docs/{name}", "POST", body=update, headers=kind, direct=True)

    def pull_missing(self, device: str, name: str, state: bytes) -> Fetched:
        """Ask the server for what `device` lacks of document `name`, given the device's
        state vector (`Doc.get_state()`); the answer's body is a Yjs update."""
        kind = {"Content-Type": "application/octet-stream"}
        path = f"/docs/{name}/sync"
        return self.fetch(device, path, "POST", body=state, headers=kind, direct=True)

    def server_state(self, device: str, name: str) -> Fetched:
        """Ask the server for its state vector of document `name` (Yjs's sync step 1 from
        its side): the body is what `Doc.get_update(state)` takes."""
        return self.fetch(device, f"/docs/{name}/state", direct=True)

    # -- programs on a device -------------------------------------------------------------

    def start_program(self, device: str, source: str, name: str = "program") -> Service:
        """Run Python `source` as a process on `device` (a background sync queue, say).

        It finds where things are in its environment: `SYNC_URL` (the sync service),
        `PROXY_URL` (the device's proxy) and `STORE` (a file path on the device, for a
        SQLite outbox). Its output is `service.log()`; `service.proc.wait()` waits for
        it. It is one of the world's services, stopped by `app.stop()` or `world.stop()`.
        """
        script = self.scratch / f"{self._device(device)}.{name}.py"
        script.write_text(source)
        env = {
            "SYNC_URL": self.sync_url,
            "PROXY_URL": self.proxy_url,
            "STORE": str(self.scratch / f"{device}.{name}.store.sqlite"),
        }
        service = self.world.launch_service(device, ["python", str(script)], name=name, env=env)
        self.programs.append(service)
        return service

    def disconnects(
        self,
        device: str,
        seed: int,
        duration: float,
        count: int = 3,
        length: tuple[float, float] = (0.5, 2.0),
    ) -> list[FaultEvent]:
        """`count` cuts of the device's access link within `duration` s, each `length` s
        long, drawn from `seed`, never overlapping and all restored by the end: a schedule
        for `kit.net.faults.play(world, ...)`."""
        link = self.world.link(self._device(device))
        rng = random.Random(seed)
        lengths = [rng.uniform(*length) for _ in range(count)]
        slack = duration - sum(lengths) - 0.5 * count
        if slack < 0:
            raise ValueError(f"{count} cuts of up to {length[1]} s do not fit in {duration} s")
        starts = sorted(rng.uniform(0, slack) for _ in range(count))
        events = []
        for i, (start, down) in enumerate(zip(starts, lengths, strict=True)):
            at = start + sum(lengths[:i]) + 0.5 * i  # after the cuts before it
            events += [
                FaultEvent(at, "cut_link", (link.a, link.b)),
                FaultEvent(at + down, "restore_link", (link.a, link.b)),
            ]
        return events

    # -- the network --------------------------------------------------------------------

    def offline(self, device: str) -> None:
        """Cut the device's access link: its interface goes down, it has no route."""
        self.world.cut_link(self._device(device))

    def online(self, device: str) -> None:
        """Restore the device's access link (after `offline` or `lie_fi`)."""
        self._device(device)
        if device in self._loss:
            self.world.set_link(device, loss_pct=self._loss.pop(device))
        if self._is_cut(device):
            self.world.restore_link(device)

    def lie_fi(self, device: str) -> None:
        """The device's link stays up and loses every packet: requests hang."""
        self._loss.setdefault(device, self.world.link(self._device(device)).params.loss_pct)
        self.world.set_link(device, loss_pct=100)

    def _is_cut(self, device: str) -> bool:
        link = self.world.link(device)
        return frozenset((link.a, link.b)) in self.world.cut

    # -- the proxies --------------------------------------------------------------------

    def routes(self, device: str) -> list[dict[str, Any]]:
        return call(self.proxy_targets[self._device(device)], "GET", protocol.CONFIG)["routes"]

    def set_routes(self, device: str, routes: Iterable[dict[str, Any]]) -> None:
        """Replace a device's routes: `[{"match": "/app/", "strategy": "CacheFirst"}, ...]`
        (first match wins; `network_timeout_s` for NetworkFirst and NetworkOnly)."""
        call(self.proxy_targets[self._device(device)], "POST", protocol.CONFIG, {"routes": routes})

    def clear_cache(self, device: str) -> None:
        call(self.proxy_targets[self._device(device)], "DELETE", protocol.CACHE)

    def cache_size(self, device: str) -> dict[str, int]:
        return call(self.proxy_targets[self._device(device)], "GET", protocol.CACHE)

    def proxy_counts(self, device: str) -> dict[str, Any]:
        """A proxy's metrics: from_cache, from_network, from_swr, no_response, stored, ..."""
        return call(self.proxy_targets[self._device(device)], "GET", protocol.METRICS)

    def settle(self, device: str, timeout: float = 30.0) -> None:
        """Wait until no fetch a strategy started (in the background) is still running."""
        deadline = time.monotonic() + timeout
        while self.proxy_counts(device)["in_flight"]:
            if time.monotonic() > deadline:
                raise ServiceError(f"the proxy on {device} still has fetches after {timeout} s")
            time.sleep(0.02)

    # -- the server ---------------------------------------------------------------------

    def server_counts(self) -> dict[str, Any]:
        """applied, replayed, conflicts, mismatches, keyless, answers_lost, notes, bytes_in,
        and per_key: how many times the mutation of each key was applied."""
        return call(self.sync_target, "GET", sync.COUNTS)

    def applied_log(self) -> list[list[Any]]:
        """Every mutation applied, in order: [seq, method, note id, key or None, text]."""
        rows: list[list[Any]] = []
        while True:
            since = rows[-1][0] if rows else 0
            page = call(self.sync_target, "GET", f"{sync.LOG}?since={since}")["log"]
            if not page:
                return rows
            rows += page

    def server_config(self, changes: dict[str, Any] | None = None) -> dict[str, Any]:
        """The sync service's config (version, think_ms, rules), changed by `changes`."""
        if changes is None:
            return call(self.sync_target, "GET", protocol.CONFIG)
        return call(self.sync_target, "POST", protocol.CONFIG, changes)

    def forget(self) -> None:
        """The server forgets notes, keys, its log and documents, and zeroes its counts."""
        call(self.sync_target, "DELETE", sync.FORGET)

    # -- lifecycle ----------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the services and remove their sockets and databases."""
        for device in list(self._loss):
            self.online(device)
        for service in [*self.programs, *self.services.values()]:
            self.world.stop_service(service)
        for host in (SYNC_HOST, *self.devices):
            patterns = (f"{host}.sync.*", f"{host}.swproxy.sock", f"{host}.swcache.*")
            programs = (f"{host}.{p.name}.py" for p in self.programs)
            stores = (f"{host}.{p.name}.store.*" for p in self.programs)
            for pattern in (*patterns, *programs, *stores):
                for path in self.scratch.glob(pattern):
                    if not path.name.endswith(".log"):
                        path.unlink(missing_ok=True)
        _apps.discard(self)

    def _device(self, device: str) -> str:
        if device not in self.devices:
            raise ValueError(f"no proxy on {device!r}; devices: {', '.join(self.devices)}")
        return device

    def __repr__(self) -> str:
        return f"<OfflineApp sync on {SYNC_HOST}, devices {', '.join(self.devices)}>"


def request_spec(
    path: str,
    method: str = "GET",
    json_body: Any = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One request for `OfflineApp.requests`: a JSON body (sent as application/json) or raw
    bytes, and headers (an idempotency key: `{"Idempotency-Key": '"k-1"'}`)."""
    headers = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers.setdefault("Content-Type", "application/json")
    spec: dict[str, Any] = {"path": path, "method": method, "headers": headers}
    if body:
        spec["body"] = base64.b64encode(body).decode()
    return spec


def start_offline(
    world: World,
    devices: Iterable[str] = ("user-berlin",),
    routes: Iterable[dict[str, Any]] = DEFAULT_ROUTES,
    timeout: float = 30.0,
) -> OfflineApp:
    """Start the sync service on `origin` and a proxy with `routes` on each device (none by
    default: every request goes to the network, as from a page with no service worker)."""
    for old in [a for a in _apps if a.world is world]:
        old.stop()
    devices = list(devices)
    scratch = Path(world.record.scratch)
    services: dict[str, Service] = {}
    try:
        socket = scratch / f"{SYNC_HOST}.sync.sock"
        argv = ["python", "-m", "kit.services.sync", "--host", "0.0.0.0", "--port", str(sync.PORT)]
        argv += ["--db", str(scratch / f"{SYNC_HOST}.sync.sqlite"), "--log-sample", "0"]
        argv += ["--unix", str(socket)]
        services[SYNC_HOST] = world.launch_service(
            SYNC_HOST, argv, name="sync", health_url=f"unix:{socket}"
        )
        upstream = f"http://{world.ip(SYNC_HOST)}:{sync.PORT}"
        for device in devices:
            socket = scratch / f"{device}.swproxy.sock"
            argv = ["python", "-m", "kit.services.swproxy", "--upstream", upstream]
            argv += ["--host", "127.0.0.1", "--port", str(swproxy.PORT), "--log-sample", "0"]
            argv += ["--cache", str(scratch / f"{device}.swcache.sqlite"), "--unix", str(socket)]
            argv += ["--routes", json.dumps(list(routes))]
            services[device] = world.launch_service(
                device, argv, name="swproxy", health_url=f"unix:{socket}"
            )
        wait_healthy(list(services.values()), timeout)
    except BaseException:
        for service in services.values():
            world.stop_service(service)
        raise
    app = OfflineApp(world, services, devices)
    _apps.add(app)
    return app
