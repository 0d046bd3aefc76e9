"""Processes on world hosts: start with a health check, read the log, restart, stop.

A ``Service`` is one long-running program on one host, typically
``python -m kit.services.NAME``. It is started with the interpreter's absolute
path (host shells inherit the notebook kernel's PATH, which may not be the
venv's), its output goes to a log file in the world's scratch folder (readable
from a notebook with ``service.log()``), and it counts as started only when its
health URL answers: an ``http://`` URL is asked from inside the host, a
``unix:/path.sock`` control socket is asked ``GET /_kit/health`` from here (the
services of ``kit.services`` serve it only there, root-only), and a
``tcp://ADDRESS:PORT`` (a service that speaks no HTTP, such as an MQTT broker)
counts as healthy once a connection to it from inside the host is accepted. A service that
exits or stays unhealthy raises ``ServiceError`` carrying the end of its log,
so the learner sees the reason.

``start()`` launches and waits. To start several services at once, ``launch()``
each, then ``wait_healthy(services)``: they boot side by side, so the wait is
about as long as the slowest one rather than the sum.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kit import control


def stop_process(
    proc: subprocess.Popen, timeout: float = 3.0, ask: Callable[[], None] | None = None
) -> None:
    """Ask a process to stop (SIGTERM unless ``ask`` says how), then SIGKILL it if it
    has not gone within ``timeout`` seconds. The one way the kit ends a process."""
    if proc.poll() is not None:
        return
    (ask or proc.terminate)()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class ServiceError(RuntimeError):
    """A service that did not start, or died; the message ends with its log."""


TCP = "tcp://"
# Connect to sys.argv[1]:sys.argv[2] within a second (exit 1 if refused); exiting hangs up.
_CONNECT = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1)"


def http_ok(world: Any, host: str, url: str) -> bool:
    """True when ``url`` answers 2xx: from inside ``host``'s namespace, or for
    ``unix:/path.sock`` (a control socket) its ``/_kit/health``; for ``tcp://ADDRESS:PORT``,
    when a connection from inside ``host`` is accepted."""
    if url.startswith(control.UNIX):
        try:
            return control.request(url, "GET", control.protocol.HEALTH, timeout=1)[0] < 300
        except control.ControlError:
            return False
    if url.startswith(TCP):
        address, _, port = url.removeprefix(TCP).rpartition(":")
        argv = [sys.executable, "-c", _CONNECT, address, port]
    else:
        argv = ["curl", "-sf", "-o", "/dev/null", "-m", "1", url]
    p = world.popen(host, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p.wait() == 0


class Service:
    """One supervised process on a world host (see the module docstring)."""

    def __init__(
        self,
        world: Any,
        host: str,
        name: str,
        argv: list[str],
        health_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.world, self.host, self.name = world, host, name
        self.argv, self.health_url, self.env = argv, health_url, env or {}
        self.log_path = Path(world.record.scratch) / f"{host}.{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> Service:
        """Start the process and wait until its health URL answers."""
        self.launch()
        wait_healthy([self], timeout)
        return self

    def launch(self) -> Service:
        """Start the process and return at once (see ``wait_healthy``)."""
        with open(self.log_path, "ab") as log:
            self.proc = self.world.popen(
                self.host,
                self.argv,
                own_session=True,
                record=f"{self.name} on {self.host}",
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(Path(__file__).resolve().parents[2]),
                env=self.env,
            )
        return self

    def healthy(self) -> bool:
        """True when the health URL answers (or there is none); ServiceError if it exited."""
        if self.proc.poll() is not None:
            raise ServiceError(
                f"{self.name} on {self.host} exited with status {self.proc.returncode} "
                f"while starting. Its log ends:\n{self.log(tail=20)}"
            )
        return not self.health_url or http_ok(self.world, self.host, self.health_url)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self, tail: int | None = None) -> str:
        """The service's output so far (its last ``tail`` lines if given)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-tail:]) if tail else text

    def stop(self, timeout: float = 3.0) -> None:
        """SIGTERM, then SIGKILL if it does not go in time."""
        if self.proc is not None:
            stop_process(self.proc, timeout)

    def restart(self, timeout: float = 15.0) -> Service:
        self.stop()
        return self.start(timeout)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Service {self.name} on {self.host}: {state}>"


def wait_healthy(services: list[Service], timeout: float = 15.0) -> None:
    """Wait until every launched service is healthy; on failure stop them all and raise."""
    deadline = time.monotonic() + timeout
    waiting = list(services)
    try:
        while waiting:
            waiting = [svc for svc in waiting if not svc.healthy()]
            if waiting and time.monotonic() > deadline:
                svc = waiting[0]
                raise ServiceError(
                    f"{svc.name} on {svc.host} did not answer {svc.health_url} within "
                    f"{timeout:.0f} s. Its log ends:\n{svc.log(tail=20)}"
                )
            if waiting:
                time.sleep(0.05)
    except ServiceError:
        for svc in services:
            svc.stop()
        raise
