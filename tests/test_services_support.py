"""Helpers for the service tests: start real services on ephemeral ports, talk HTTP.

Not a test module itself; the test files import it.
"""

from __future__ import annotations

import http.client
import json
import tempfile
import time
from pathlib import Path

from kit import control
from kit.control import call
from kit.services.launch import LocalService

Service = LocalService  # the tests' name for it


class LoopbackEdge:
    """An origin and a PoP in front of it, with a geo table for 127.0.0.x clients."""

    GEO = [
        {"subnet": "127.0.0.2/32", "country": "DE", "city": "Berlin", "region": "frankfurt"},
        {"subnet": "127.0.0.3/32", "country": "JP", "city": "Tokyo", "region": "tokyo"},
    ]

    def __init__(self, *pop_args: str) -> None:
        self.workdir = tempfile.TemporaryDirectory(prefix="edgelab-test-")
        geo = Path(self.workdir.name) / "geo.json"
        geo.write_text(json.dumps(self.GEO))
        self.services: list[Service] = []
        try:
            self.origin = self.start("origin")
            self.pop = self.start(
                "pop", "--pop", "fra", "--origin", self.origin.url, "--geo", str(geo), *pop_args
            )
        except Exception:
            self.close()
            raise

    def start(self, name: str, *args: str) -> Service:
        service = Service(name, *args, workdir=self.workdir.name)
        self.services.append(service)
        return service

    def close(self) -> None:
        for service in self.services:
            service.stop()
        self.workdir.cleanup()


class Reply:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def cache(self) -> str | None:
        return self.headers.get("x-cache")


def request(
    base: str | Service,
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    source_ip: str = "127.0.0.1",
) -> Reply:
    """One HTTP request from a chosen client address (127.0.0.x picks the geo)."""
    base = base.url if isinstance(base, Service) else base
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(
        host, int(port), timeout=20, source_address=(source_ip, 0)
    )
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def post_json(base: str, path: str, data: object) -> Reply:
    return request(
        base, path, "POST", {"Content-Type": "application/json"}, json.dumps(data).encode()
    )


def control_raw(service: Service, method: str, path: str, body: bytes = b"") -> Reply:
    """A request with any bytes as its body, to a service's control socket."""
    connection = control.connection(service.control, timeout=20)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def alive(service: Service) -> bool:
    """The service answers its health check (on its control socket)."""
    return call(service.control, "GET", "/_kit/health")["status"] == "ok"


def metrics(service: Service) -> dict:
    return call(service.control, "GET", "/_kit/metrics")


def wait_until(condition, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll until condition() is true (tests wait on events, never assert on durations)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
