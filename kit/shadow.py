"""Device shadows on the factory: the service in the cloud, a device that reconciles with it.

    shadow = start_shadow(site, rule_source)     # kit.services.shadow on the cloud host
    device = start_device(site, "press-1", {"rpm": 1200})   # on iot-core
    shadow.update("press-1", {"state": {"desired": {"rpm": 900}}})   # (status, body)
    shadow.get("press-1"); shadow.history(); device_events(site)

The glue between `kit.services.shadow` and a factory (`kit.iot`), as `kit.iot` is
for the brokers:

- **The service** runs on the factory's cloud host (`site.cloud`), with the update
  rule it is given (a Python source defining `update_shadow(doc, request)`). The
  notebook reaches it over its control socket and plays the app in the cloud:
  `update` returns the status and body, 409 included.
- **The device** is a small program on `iot-core`, the core device, reached over
  the uplink. It keeps its settings in a JSON file (the machine's real state, which
  an operator on the shop floor may change: `set_local`) and, every 0.2 s, reads
  its shadow: it applies the delta to its settings (the cloud's desired value wins
  for the keys it names), and when what it reports differs from its settings it
  reports them with the version it read. A 409 means the document changed since
  it was read: it reads again at once. While the uplink is down its requests fail
  and it goes on with the settings it has: the machine keeps running. Each step is
  a JSON line in its events file (`device_events`).

Both are the factory's: `site.stop()` and `world.stop()` stop them, and their files
(the rule, the socket, the settings, the events) live in the world's scratch
folder under names that `site.stop()` removes.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kit.control.client import request as control_request
from kit.iot import CORE, Factory
from kit.net.procs import Service, wait_healthy
from kit.services.shadow import HISTORY

SHADOW_PORT = 7300
POLL_S = 0.2


class Shadow:
    """The running shadow service, seen from the notebook (the app in the cloud)."""

    def __init__(self, site: Factory, service: Service, socket: Path) -> None:
        self.site, self.service, self.target = site, service, f"unix:{socket}"

    def update(self, thing: str, request: dict, client: str = "app") -> tuple[int, Any]:
        """POST an update request; the service's status and body (409 is an answer)."""
        path = f"/things/{thing}/shadow?client={quote(client)}"
        return control_request(self.target, "POST", path, request)

    def get(self, thing: str) -> dict | None:
        status, body = control_request(self.target, "GET", f"/things/{thing}/shadow")
        return body if status == 200 else None

    def history(self) -> list[dict]:
        return control_request(self.target, "GET", HISTORY)[1]

    def __repr__(self) -> str:
        return f"<Shadow service on {self.site.cloud}>"


def start_shadow(site: Factory, rule: str | None, timeout: float = 30.0) -> Shadow | None:
    """Start the shadow service on the cloud host with `rule` (the source of
    `update_shadow`); None while the rule is not written."""
    if rule is None:
        return None
    scratch = site.scratch
    rule_file = scratch / f"{CORE}.shadow-rule.py"
    rule_file.write_text(rule)
    socket = scratch / f"{CORE}.shadow.sock"
    socket.unlink(missing_ok=True)
    argv = ["python", "-m", "kit.services.shadow", "--rule", str(rule_file)]
    argv += ["--host", "0.0.0.0", "--port", str(SHADOW_PORT), "--unix", str(socket)]
    argv += ["--log-sample", "0"]
    world = site.world
    service = world.launch_service(site.cloud, argv, name="shadow", health_url=f"unix:{socket}")
    site.functions.append(service)  # stopped with the factory
    wait_healthy([service], timeout)
    return Shadow(site, service, socket)


def _files(site: Factory) -> tuple[Path, Path]:
    base = site.spool_path()  # iot-core.spool.sqlite: its siblings go with the factory
    return Path(f"{base}.device.json"), Path(f"{base}.device-events.jsonl")


def start_device(site: Factory, thing: str, settings: dict[str, Any]) -> Service:
    """Start the device's program on iot-core with these settings (see the docstring)."""
    state, events = _files(site)
    state.write_text(json.dumps(settings))
    events.unlink(missing_ok=True)
    url = f"http://{site.world.ip(site.cloud)}:{SHADOW_PORT}/things/{thing}/shadow"
    root = Path(__file__).resolve().parents[1]
    source = (
        f"import sys\nsys.path.insert(0, {str(root)!r})\n"
        "from kit.shadow import device_main\n"
        f"device_main({url!r}, {str(state)!r}, {str(events)!r})\n"
    )
    return site.start_function(source, name="device")


def set_local(site: Factory, changes: dict[str, Any]) -> None:
    """An operator on the shop floor changes the machine's settings (no network needed)."""
    state, _ = _files(site)
    settings = json.loads(state.read_text())
    settings.update(changes)
    tmp = state.with_suffix(".tmp")
    tmp.write_text(json.dumps(settings))
    os.replace(tmp, state)


def device_events(site: Factory) -> list[dict]:
    """The device's steps so far: reads, applied deltas, reports and their answers."""
    _, events = _files(site)
    if not events.exists():
        return []
    return [json.loads(line) for line in events.read_text().splitlines() if line.strip()]


def wait_reconciled(
    shadow: Shadow, thing: str, want: dict[str, Any], timeout: float = 20.0
) -> float | None:
    """Seconds until the document reports `want` with no delta; None if it did not."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        doc = shadow.get(thing) or {"state": {}}
        reported = doc["state"].get("reported", {})
        if "delta" not in doc["state"] and all(reported.get(k) == v for k, v in want.items()):
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


# -- the program on the core device ---------------------------------------------------


def _http(url: str, body: dict | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json", "x-client": "device"}
    req = urllib.request.Request(url, data, headers, method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=1.0) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def device_main(url: str, state_file: str, events_file: str) -> None:
    """Reconcile with the shadow forever (see the module docstring)."""

    def note(event: str, **fields: Any) -> None:
        with open(events_file, "a") as file:
            file.write(json.dumps({"t": time.time(), "event": event, **fields}) + "\n")

    online = None
    while True:
        try:
            status, doc = _http(url)
            if status == 404:
                doc = {"state": {}, "version": 0}
            settings = json.loads(Path(state_file).read_text())
            delta = doc["state"].get("delta", {})
            if delta:
                settings.update(delta)  # the cloud's desired value wins for the keys it names
                tmp = f"{state_file}.tmp"
                Path(tmp).write_text(json.dumps(settings))
                os.replace(tmp, state_file)
                note("applied", delta=delta, version=doc["version"])
            if doc["state"].get("reported") != settings:
                request = {"state": {"reported": settings}, "version": doc["version"]}
                status, body = _http(url, request)
                note("reported", settings=settings, version=doc["version"], status=status)
                if status == 409:
                    continue  # the document changed since it was read: read it again
            if online is not True:
                note("online")
            online = True
        except (OSError, ValueError) as error:
            if online is not False:
                note("offline", error=str(error)[:100])
            online = False
        time.sleep(POLL_S)
