"""Locust's own web UI for a load on a world, in a JupyterLab tab.

    ui = locust_ui(world, "user-london", edge.anycast_url, users=50)
    ui           # in a notebook: a link that opens Locust's charts in a Lab tab
    ui.stop()    # (the world's stop stops it too)

`run_load` and `step_load` run Locust headless and bring its numbers back as
tables. Sometimes the live view is what teaches: the charts move as users are
added, failures appear as they happen. This starts Locust with its web UI on a
world host and makes that UI reachable from the learner's browser, through
JupyterLab, under the server's own address and login.

How it gets there. Locust listens on the world host's loopback, where only that
host can reach it: the world's addresses exist only inside its namespaces, and
the JupyterLab server runs outside. A relay on the same host (`relay.py`)
listens on a Unix socket, a file, which the server can open although it is
outside the world, and passes each connection on to Locust. The server's
jupyter-server-proxy has a server named `locust` at that socket (`lab.sh` and
`tests/browser_lab.py` configure it), so `BASE_URL/locust/` in the browser is
Locust's UI. Locust writes its pages with absolute asset paths (`/assets/...`),
the known problem behind a sub-path: it is started with `--web-base-path` set
to the path the browser sees, and the proxy passes paths on unchanged
(`absolute_url`).

One UI at a time on a machine (one socket path, `UI_SOCKET`, or the
`EDGELAB_LOCUST_UI` environment variable): starting another stops the first.
The UI's Locust is bounded like every run (`check_bounds`), and runs at most
`MAX_RUN_TIME_S`.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import weakref
from pathlib import Path
from typing import Any

from kit.load.runner import GET_PATHS, MAX_RUN_TIME_S, LoadError, check_bounds
from kit.net.procs import Service, wait_healthy

UI_SOCKET = "/run/edgelab/locust-ui.sock"
PORT = 8089
PROXY_NAME = "locust"  # the jupyter-server-proxy server: BASE_URL/locust/

_running: weakref.WeakSet[LocustUI] = weakref.WeakSet()


def ui_socket() -> Path:
    return Path(os.environ.get("EDGELAB_LOCUST_UI", UI_SOCKET))


def base_url() -> str:
    """The Jupyter server's base URL as the kernel knows it (JupyterHub sets it)."""
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    return prefix if prefix.endswith("/") else prefix + "/"


class LocustUI:
    """A Locust with its web UI on a world host, reachable at `path` (module docstring)."""

    def __init__(self, world: Any, host: str, path: str, services: list[Service]) -> None:
        self.world, self.host, self.path, self.services = world, host, path, services

    @property
    def running(self) -> bool:
        return all(service.running for service in self.services)

    def stop(self) -> None:
        for service in reversed(self.services):
            self.world.stop_service(service)
        ui_socket().unlink(missing_ok=True)

    def _repr_html_(self) -> str:
        return (
            f'<a href="{self.path}" target="_blank">Locust on {self.host}: open its UI</a> '
            f"(<code>{self.path}</code>)"
        )

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<LocustUI on {self.host} at {self.path}: {state}>"


def locust_ui(
    world: Any,
    host: str,
    target: str,
    *,
    users: int = 20,
    spawn_rate: float = 5,
    locustfile: str | Path = GET_PATHS,
    autostart: bool = True,
    timeout: float = 30,
) -> LocustUI:
    """Start Locust with its web UI on `host`, loading `target`; see the module docstring."""
    check_bounds(users, spawn_rate, MAX_RUN_TIME_S)
    for old in list(_running):
        old.stop()
    path = f"{base_url()}{PROXY_NAME}"
    locust = [sys.executable, "-m", "locust", "-f", str(locustfile), "--host", target]
    locust += ["--web-host", "127.0.0.1", "--web-port", str(PORT), "--web-base-path", path]
    locust += ["--users", str(users), "--spawn-rate", str(spawn_rate)]
    locust += ["--run-time", f"{MAX_RUN_TIME_S}s", "--loglevel", "WARNING"]
    locust += ["--autostart"] if autostart else []
    health = f"http://127.0.0.1:{PORT}{path}/"
    started = world.launch_service(host, locust, name="locust-ui", health_url=health)
    wait_healthy([started], timeout)
    sock = ui_socket()
    sock.parent.mkdir(parents=True, exist_ok=True)
    relay = [sys.executable, "-m", "kit.load.relay", "--unix", str(sock)]
    relay += ["--to", f"127.0.0.1:{PORT}"]
    relayed = world.launch_service(host, relay, name="locust-ui-relay")
    ui = LocustUI(world, host, f"{path}/", [started, relayed])
    deadline = time.monotonic() + timeout
    while not _answers(sock):
        if time.monotonic() > deadline or not ui.running:
            ui.stop()
            raise LoadError(f"the relay to Locust's UI did not open {sock}")
        time.sleep(0.1)
    _running.add(ui)
    return ui


def jupyter_proxy_config(sock: Path | None = None) -> dict[str, Any]:
    """The Jupyter server's config for the proxy: `BASE_URL/locust/` is the UI's socket.

    A tile in JupyterLab's launcher opens it in a Lab tab; `LocustUI`'s link opens
    it in a browser tab. The command is empty: `locust_ui` starts Locust, not the server.
    """
    server = {"command": [], "unix_socket": str(sock or ui_socket()), "absolute_url": True}
    server["new_browser_tab"] = False
    server["launcher_entry"] = {"enabled": True, "title": "Locust (load test UI)"}
    return {"ServerProxy": {"servers": {PROXY_NAME: server}}}


def _answers(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as probe:
            probe.settimeout(1)
            probe.connect(str(path))
        return True
    except OSError:
        return False
