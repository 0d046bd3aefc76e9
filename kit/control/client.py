"""Calling a service's control endpoints (`protocol.py`) from a notebook.

    call("unix:/tmp/edgelab-x/pop-tokyo.sock", "GET", protocol.METRICS)
    call("http://127.0.0.1:8080", "POST", protocol.METRICS_RESET)

A target is where a service listens: an `http://host:port` URL, or
`unix:/path/to.sock` for the Unix socket every world service also serves
(`--unix`). A world host is a network namespace the notebook cannot reach over
IP; a socket path it can. The request and answer are JSON either way.

Blocking standard-library HTTP on purpose: a notebook cell already runs inside
an event loop, and a plain call is the easiest thing to use there.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import urlsplit

UNIX = "unix:"


class ControlError(RuntimeError):
    """A control call that failed: the service is unreachable or refused the request."""


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a Unix domain socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def check_target(target: str) -> str:
    """The target without a trailing slash; ValueError if it is neither form."""
    target = target.rstrip("/")
    if target.startswith(UNIX):
        if not target.removeprefix(UNIX):
            raise ValueError(f"target {target!r}: unix: needs a socket path")
        return target
    url = urlsplit(target)
    if url.scheme != "http" or not url.hostname or url.path:
        raise ValueError(f"target {target!r}: use http://HOST[:PORT] or unix:/path/to.sock")
    return target


def connection(target: str, timeout: float = 30.0) -> http.client.HTTPConnection:
    """An HTTP connection to a target (`unix:/path` or `http://host:port`)."""
    target = check_target(target)
    if target.startswith(UNIX):
        return UnixHTTPConnection(target.removeprefix(UNIX), timeout)
    url = urlsplit(target)
    return http.client.HTTPConnection(url.hostname, url.port or 80, timeout=timeout)


def request(
    target: str, method: str, path: str, payload: Any = None, *, timeout: float = 30.0
) -> tuple[int, Any]:
    """Send JSON (or nothing), return (status, decoded JSON answer).

    Raises ControlError if the service cannot be reached or does not answer JSON.
    """
    body = json.dumps(payload).encode() if payload is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn = connection(target, timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        status, raw = response.status, response.read()
    except (OSError, http.client.HTTPException) as error:
        raise ControlError(f"cannot reach {target}: {error}") from error
    finally:
        conn.close()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        raise ControlError(f"{method} {path} on {target}: HTTP {status}, not JSON") from None


def call(target: str, method: str, path: str, payload: Any = None, *, timeout: float = 30.0) -> Any:
    """Like `request`, but any 4xx/5xx raises ControlError with the service's reason."""
    status, data = request(target, method, path, payload, timeout=timeout)
    if status >= 400:
        reason = data.get("error") if isinstance(data, dict) else data
        raise ControlError(f"{method} {path} on {target}: HTTP {status}: {reason}")
    return data
