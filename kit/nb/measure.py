"""Measurements from world hosts, in milliseconds: HTTP timings and RTTs.

    t = http_timing(world, "user-tokyo", "http://10.255.0.1/")
    t.connect_ms, t.ttfb_ms, t.total_ms          # TCP connect, first byte, whole response

    fresh, reused = http_timing_reused(world, "user-tokyo", url)   # one curl, two requests

Everything runs inside the host with curl (``world.run``): the kernel lives in
the root namespace and cannot reach world addresses. curl's ``-w`` write-out
gives times in seconds since the start of each transfer; they become ms here.
``time_connect`` is when the TCP handshake finished (one RTT after the SYN),
``time_starttransfer`` when the first byte of the response arrived (TTFB).
When curl fetches a URL twice in one invocation, the second request reuses the
connection: its ``num_connects`` is 0 and its connect time is ~0, so the two
rows show what a handshake costs.

``measure_ttfb`` samples several hosts (in parallel, one shell loop per host,
a new connection each time) into a table for ``kit.nb.plots``; ``rtt_matrix``
puts configured and measured RTTs side by side.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from statistics import median
from typing import Any

import pandas as pd

WRITE_OUT = (
    r"%{http_code} %{time_connect} %{time_starttransfer} %{time_total} "
    r"%{size_download} %{num_connects}\n"
)


@dataclass(frozen=True)
class Timing:
    """One HTTP request's timings in ms, its status and size."""

    status: int
    connect_ms: float
    ttfb_ms: float
    total_ms: float
    bytes: int
    new_connection: bool


def parse_write_out(text: str) -> list[Timing]:
    """Parse lines of ``WRITE_OUT`` (pure, so it is unit-tested without a world)."""
    timings = []
    for line in text.strip().splitlines():
        code, connect, ttfb, total, size, connects = line.split()
        timings.append(
            Timing(
                int(code),
                1000 * float(connect),
                1000 * float(ttfb),
                1000 * float(total),
                int(float(size)),
                int(connects) > 0,
            )
        )
    return timings


def _curl(
    url: str, times: int = 1, headers: dict[str, str] | None = None, timeout: float = 10
) -> str:
    args = ["curl", "-s", "-m", str(timeout), "-w", WRITE_OUT]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    for _ in range(times):
        args += ["-o", "/dev/null", url]
    return shlex.join(args)


def http_timing(
    world: Any, host: str, url: str, headers: dict[str, str] | None = None, timeout: float = 10
) -> Timing:
    """One GET of ``url`` from ``host`` on a new connection."""
    return parse_write_out(world.run(host, _curl(url, 1, headers, timeout), timeout + 5))[0]


def http_timing_reused(
    world: Any, host: str, url: str, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[Timing, Timing]:
    """Two GETs of ``url`` in one curl: (fresh connection, reused connection)."""
    fresh, reused = parse_write_out(world.run(host, _curl(url, 2, headers, timeout), timeout + 5))
    return fresh, reused


def http_request(
    world: Any,
    host: str,
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: str | None = None,
    timeout: float = 10,
) -> dict[str, Any]:
    """One request from ``host`` with curl: ``{"status", "headers", "body"}``.

    Any method; ``body`` is sent as is; redirects are not followed; header names
    come back in lower case. ``status`` is 0 when no answer came (curl timed out
    or could not connect).
    """
    args = ["curl", "-s", "-i", "-m", str(timeout), "-X", method, "-H", "Expect:"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    if body is not None:
        args += ["--data-binary", body]
    raw = world.run(host, shlex.join([*args, url]), timeout + 5)
    head, _, text = raw.replace("\r\n", "\n").partition("\n\n")  # world.run gives text
    status_line, *header_lines = head.split("\n")
    found = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        found[name.strip().lower()] = value.strip()
    try:
        status = int(status_line.split()[1])
    except (IndexError, ValueError):
        status = 0
    return {"status": status, "headers": found, "body": text}


def http_get(
    world: Any, host: str, url: str, headers: dict[str, str] | None = None, timeout: float = 10
) -> dict[str, Any]:
    """GET ``url`` from ``host``: ``{"status": int, "headers": {name: value}, "body": str}``."""
    return http_request(world, host, url, headers=headers, timeout=timeout)


def measure_ttfb(
    world: Any, hosts: Iterable[str], url: str, count: int = 10, timeout: float = 10
) -> pd.DataFrame:
    """``count`` fresh-connection GETs from each host, all hosts at once.

    One row per request: host, sample, status, connect_ms, ttfb_ms, total_ms, bytes.
    """
    one = _curl(url, 1, None, timeout)
    loop = f"for i in $(seq {int(count)}); do {one}; done"

    def sample(host: str) -> list[dict[str, Any]]:
        timings = parse_write_out(world.run(host, loop, count * (timeout + 1) + 5))
        return [{"host": host, "sample": i, **asdict(t)} for i, t in enumerate(timings)]

    hosts = list(hosts)
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        rows = [row for rows in pool.map(sample, hosts) for row in rows]
    return pd.DataFrame(rows).drop(columns="new_connection")


def rtt_matrix(
    world: Any, sources: Iterable[str], targets: Iterable[str], count: int = 10
) -> pd.DataFrame:
    """Configured and measured (median of ``count`` pings) RTT for every source/target pair.

    One row per pair: source, target, configured_ms, measured_ms, lost (pings lost).
    """
    pairs = [(s, t) for s in sources for t in targets if s != t]
    measured = world.ping_many(pairs, count=count)
    rows = []
    for source, target in pairs:
        rtts = measured[(source, target)]
        rows.append(
            {
                "source": source,
                "target": target,
                "configured_ms": world.configured_rtt(source, target),
                "measured_ms": median(rtts) if rtts else float("nan"),
                "lost": count - len(rtts),
            }
        )
    return pd.DataFrame(rows)
