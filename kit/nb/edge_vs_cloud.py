"""Chapter 01's measurements, plots and checks: kept out of the notebook's cells.

    plot_ttfb_per_user(ttfb, users, nearest)      # bars per user: origin vs nearest PoP
    check_edge_handler(world, edge, nearest, "/whoami")
    check_ttfb_model(model, world, edge, nearest)
    cold_start_samples(world, edge, pairs)         # first request after an eviction vs warm
    process_start_ms(world) / container_start_ms() # a new server process, a new namespace

The checks generate their inputs afresh on every run (random paths, query
strings, headers and bodies; users from cities the chapter's prose never names;
random round-trip and server times) so that only the property passes, and when
they fail they say which mistake the answer looks like.
"""

from __future__ import annotations

import json
import random
import shlex
import shutil
import string
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from kit.nb.checks import check_world, expect, expect_close, expect_equal
from kit.nb.measure import http_request, http_timing, http_timing_reused

UNNAMED_USERS = ("user-vienna", "user-zurich")  # cities the chapter's prose never names


def _word(rng: random.Random, n: int = 6) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(n))


# -- 1 · TTFB per user ------------------------------------------------------------


def plot_ttfb_per_user(ttfb: pd.DataFrame, users: list[str], nearest: Mapping[str, str]) -> Figure:
    """Median TTFB (p5–p95 whiskers) per user: to the origin and to the nearest PoP."""
    fig, ax = plt.subplots(figsize=(13, 4.2), layout="constrained")
    x = np.arange(len(users))
    for i, (target, colour) in enumerate([("origin", "tab:red"), ("nearest PoP", "tab:orange")]):
        groups = ttfb[ttfb["target"] == target].groupby("host")["ttfb_ms"]
        mid = groups.median().reindex(users)
        low, high = groups.quantile(0.05).reindex(users), groups.quantile(0.95).reindex(users)
        bars = ax.bar(
            x + (i - 0.5) * 0.4,
            mid,
            0.4,
            yerr=[mid - low, high - mid],
            capsize=3,
            color=colour,
            label=f"to the {target}",
        )
        ax.bar_label(bars, fmt="%.0f", fontsize=8, padding=2)
    ax.set_xticks(x, [f"{u.removeprefix('user-')}\n({nearest[u]})" for u in users], fontsize=8)
    ax.set_ylabel("TTFB (ms, median, p5–p95)")
    ax.set_title("Time to first byte, fresh connection, per user")
    ax.legend()
    return fig


# -- 2 · the TTFB model --------------------------------------------------------------

TLS_VERSIONS = (None, "1.3", "1.2")


def _right(rtt: float, server: float, reused: bool, tls: str | None) -> float:
    handshakes = 0 if reused else 1 + {None: 0, "1.3": 1, "1.2": 2}[tls]
    return (handshakes + 1) * rtt + server


# What a wrong model gives, so a failure can say which mistake it looks like.
_MISTAKES: dict[str, Callable[[float, float, bool, str | None], float]] = {
    "counts one round trip for a fresh connection (it forgets TCP's handshake)": (
        lambda r, s, u, t: _right(r, s, u, t) - (0 if u else r)
    ),
    "leaves out TLS (its handshake round trips come before the request)": (
        lambda r, s, u, t: _right(r, s, u, None)
    ),
    "has TLS 1.2 and TLS 1.3 swapped (1.3 saved a round trip)": (
        lambda r, s, u, t: _right(r, s, u, {"1.2": "1.3", "1.3": "1.2"}.get(t, t))  # type: ignore[arg-type]
    ),
    "counts the server time twice": lambda r, s, u, t: _right(r, s, u, t) + s,
    "makes a reused connection pay the handshakes again (it is already open)": (
        lambda r, s, u, t: _right(r, s, False, t)
    ),
    "makes a reused connection pay TLS's handshake again (the keys are agreed already)": (
        lambda r, s, u, t: _right(r, s, u, t) + (_right(r, 0, False, t) - 2 * r if u else 0)
    ),
    "leaves out the server time": lambda r, s, u, t: _right(r, s, u, t) - s,
}


def _describe(rtt: float, server: float, reused: bool, tls: str | None) -> str:
    connection = "reused connection" if reused else "fresh connection"
    return f"ttfb_model({rtt:g}, {server:g}, reused={reused}, tls={tls!r}) [{connection}]"


def _diagnose(answers: list[tuple[tuple[float, float, bool, str | None], float]]) -> str:
    """Name the mistake whose formula gives every one of these answers, if one does."""
    for mistake, wrong in _MISTAKES.items():
        if all(abs(wrong(*case) - got) < 0.01 for case, got in answers):
            return f"your model {mistake}; hint('01-ttfb-model') helps"
    return "count the times the client waits for the server: hint('01-ttfb-model')"


def synthetic_cases(
    rng: random.Random, n_rtts: int = 3
) -> list[tuple[float, float, bool, str | None]]:
    """Random RTTs and server times, every connection state and TLS version."""
    cases = []
    for _ in range(n_rtts):
        rtt, server = round(rng.uniform(3, 250), 1), round(rng.uniform(1, 90), 1)
        cases += [(rtt, server, reused, tls) for tls in TLS_VERSIONS for reused in (False, True)]
    return cases


def measure_for_model(
    world: Any,
    edge: Any,
    nearest: Mapping[str, str],
    users: Iterable[str],
    path: str,
    rounds: int = 5,
) -> pd.DataFrame:
    """Fresh and reused TTFB (the fastest of ``rounds``) from each user to the origin and its PoP.

    The origin gets a random server time per user (``?think=MS``); the PoP serves
    ``path`` from its cache (server time ≈ 0). One row per user, server, connection.
    The fastest, not the median: the model has no queues, and a busy machine (a
    class's server, a test run) only ever adds time to a sample, never takes it away.
    """
    rng = random.Random()
    rows = []
    for user in users:
        think = round(rng.uniform(10, 60))
        for server, url, server_ms in [
            ("origin", f"{edge.origin_url}{path}?think={think}", float(think)),
            (nearest[user], edge.pop_url(nearest[user]) + path, 0.0),
        ]:
            samples = [http_timing_reused(world, user, url) for _ in range(rounds)]
            for i, connection in enumerate(("fresh", "reused")):
                rows.append(
                    {
                        "user": user,
                        "server": server,
                        "connection": connection,
                        "rtt_ms": world.configured_rtt(user, server),
                        "server_ms": server_ms,
                        "ttfb_ms": min(s[i].ttfb_ms for s in samples),
                    }
                )
    return pd.DataFrame(rows)


def check_ttfb_model(
    model: Callable[..., float], measured: pd.DataFrame, seed: int | None = None
) -> pd.DataFrame:
    """Check ``model`` on random cases, then hold it against ``measured``; return measured
    + predictions. Once the random cases pass the model is right, so a measurement far
    from it is the world's doing: that part is a world check (⚠, and the run goes on)."""
    rng = random.Random(seed)
    answers = [
        (case, float(model(*case[:2], reused=case[2], tls=case[3])))
        for case in synthetic_cases(rng)
    ]
    for case, got in answers:
        expect_close(got, _right(*case), 0.01, _describe(*case), hint=_diagnose(answers))
    table = measured.copy()
    table["predicted_ms"] = [
        float(model(r.rtt_ms, r.server_ms, reused=r.connection == "reused", tls=None))
        for r in table.itertuples()
    ]
    with check_world("this world's fresh and reused connections take what your model says"):
        for r in table.itertuples():
            tolerance = 8 + 0.08 * r.predicted_ms  # a busy machine adds a few ms
            expect_close(
                r.ttfb_ms,
                r.predicted_ms,
                tolerance,
                f"measured TTFB {r.user} → {r.server}, {r.connection} connection, plain HTTP (ms)",
            )
    return table


def plot_model_vs_measured(table: pd.DataFrame) -> Figure:
    """Predicted (hatched) vs measured (filled) TTFB per path and connection."""
    fig, ax = plt.subplots(figsize=(13, 4), layout="constrained")
    names = list(
        dict.fromkeys(
            f"{u.removeprefix('user-')} → {s}"
            for u, s in zip(table.user, table.server, strict=True)
        )
    )
    table = table.assign(
        path=[
            f"{u.removeprefix('user-')} → {s}"
            for u, s in zip(table.user, table.server, strict=True)
        ]
    )
    x = np.arange(len(names))
    for i, connection in enumerate(["fresh", "reused"]):
        part = table[table["connection"] == connection].set_index("path").reindex(names)
        colour = "tab:blue" if connection == "fresh" else "tab:green"
        for j, (column, style) in enumerate([("predicted_ms", "model"), ("ttfb_ms", "measured")]):
            filled = style == "measured"
            bars = ax.bar(
                x + (2 * i + j - 1.5) * 0.2,
                part[column],
                0.2,
                color=colour if filled else "white",
                edgecolor=colour,
                hatch="" if filled else "//",
                label=f"{connection}, {style}",
            )
            ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    ax.set_xticks(x, names, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("TTFB (ms, log scale)")
    ax.set_title("Your model vs the world (plain HTTP, fastest of 5)")
    ax.legend(ncol=2, fontsize=8)
    return fig


# -- 3 · an edge handler that answers from the request -------------------------------


LANGUAGES = ("de-AT", "fr-CH", "it-CH", "en-GB", "ja", "pt-BR", "de", "rm", "hu", "sl")


def random_accept_language(rng: random.Random) -> tuple[str, str]:
    """An Accept-Language header whose preferred tag (highest q) is never listed first."""
    tags = rng.sample(LANGUAGES, 3)
    qs = sorted(rng.sample([0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], 3), reverse=True)
    parts = [f"{tag};q={q}" for tag, q in zip(tags, qs, strict=True)]
    if rng.random() < 0.5:
        parts[0] = tags[0]  # no q: q=1, still the highest
    order = [1, 0, 2] if rng.random() < 0.5 else [1, 2, 0]
    return ", ".join(parts[i] for i in order), tags[0]


def random_requests(rng: random.Random, prefix: str) -> list[dict[str, Any]]:
    """GET, POST and PUT requests with random paths, query strings, headers and bodies.

    The GET has no Accept-Language (its preferred language is None); the others do.
    """
    requests = []
    for method in ("GET", "POST", "PUT"):
        path = f"{prefix}/{_word(rng)}/{_word(rng, 4)}"
        query = {_word(rng, 5): _word(rng, rng.randint(1, 8)) for _ in range(rng.randint(2, 3))}
        header = f"X-Lab-{_word(rng, 4).capitalize()}"
        body = _word(rng, rng.randint(5, 60)) if method != "GET" else None
        headers, lang = {header: _word(rng, 10)}, None
        if method != "GET":
            headers["Accept-Language"], lang = random_accept_language(rng)
        requests.append(
            {
                "method": method,
                "path": path,
                "query": query,
                "headers": headers,
                "body": body,
                "lang": lang,
            }
        )
    return requests


def check_edge_handler(
    world: Any,
    edge: Any,
    nearest: Mapping[str, str],
    prefix: str,
    users: Iterable[str] | None = None,
    seed: int | None = None,
) -> None:
    """Send random requests from each user through anycast; check the JSON and the origin.

    Default users: the two unnamed cities, and one user picked at random whose
    nearest PoP is another one (so a PoP's name cannot be hard-coded either).
    """
    rng = random.Random(seed)
    if users is None:
        others = sorted(u for u in nearest if nearest[u] not in {nearest[n] for n in UNNAMED_USERS})
        users = [*UNNAMED_USERS, *([rng.choice(others)] if others else [])]
    origin_before = edge.metrics("origin")["requests"]
    for user in users:
        node = world.spec.nodes[user]
        for req in random_requests(rng, prefix):
            query = "&".join(f"{k}={v}" for k, v in req["query"].items())
            url = f"{edge.anycast_url}{req['path']}?{query}"
            what = f"{req['method']} {req['path']}?{query} from {user}"
            response = http_request(
                world, user, url, method=req["method"], headers=req["headers"], body=req["body"]
            )
            expect(
                "x-origin" not in response["headers"],
                f"{what}: who answered",
                "the PoP itself",
                f"the origin (x-origin: {response['headers'].get('x-origin')})",
                hint="answer at the edge, from the request alone: no env.origin.fetch",
            )
            expect(
                response["status"] == 200,
                f"{what}: status",
                200,
                f"{response['status']}: {response['body'].strip()[:200]!r}",
                hint="a 5xx body says what went wrong in your handler; "
                f"print(edge.log({nearest[user]!r})) shows the traceback. "
                + (
                    "Does it answer other methods than GET (this was a POST/PUT)?"
                    if req["method"] != "GET"
                    else ""
                ),
            )
            expect_equal(
                response["headers"].get("x-edge-pop"), nearest[user], f"{what}: header x-edge-pop"
            )
            try:
                data = json.loads(response["body"])
            except ValueError:
                data = None
            expect(
                isinstance(data, dict),
                f"{what}: body",
                "a JSON object (Response.json({...}))",
                repr(response["body"][:200]),
            )
            header, value = next(iter(req["headers"].items()))
            expected = {
                "pop": nearest[user],
                "city": node.city,
                "country": node.country,
                "method": req["method"],
                "path": req["path"],
                "query": req["query"],
                "body_bytes": len(req["body"] or ""),
                "lang": req["lang"],
            }
            for key, right in expected.items():
                expect_equal(
                    data.get(key),
                    right,
                    f"{what}: field {key!r} of the JSON",
                    hint=f"computed from this request ({req['headers']}): hint('01-whoami')",
                )
            echoed = {k.lower(): v for k, v in (data.get("headers") or {}).items()}
            expect_equal(
                echoed.get(header.lower()),
                value,
                f"{what}: field 'headers' must contain the request's {header}",
                hint="every request header whose name starts with x-",
            )
    expect_equal(
        edge.metrics("origin")["requests"] - origin_before,
        0,
        "requests the origin received during this check",
        hint="answer at the edge, from the request alone: no env.origin.fetch",
    )


# -- 4 · cold starts --------------------------------------------------------------------


def cold_start_samples(
    world: Any,
    edge: Any,
    pairs: Iterable[tuple[str, str]],
    path: str,
    evictions: int = 3,
    warm: int = 5,
) -> pd.DataFrame:
    """For each (user, pop): evict the handler, time the first request, then warm ones.

    Every request is on a fresh connection, so the handshake is the same in both;
    one row per request: user, pop, kind ("first after eviction" or "warm"), ttfb_ms.
    """
    rows = []
    for user, pop in pairs:
        url = edge.pop_url(pop) + path
        for _ in range(evictions):
            edge.evict(pop)
            rows.append(
                {
                    "user": user,
                    "pop": pop,
                    "kind": "first after eviction",
                    "ttfb_ms": http_timing(world, user, url).ttfb_ms,
                }
            )
            for _ in range(warm):
                rows.append(
                    {
                        "user": user,
                        "pop": pop,
                        "kind": "warm",
                        "ttfb_ms": http_timing(world, user, url).ttfb_ms,
                    }
                )
    return pd.DataFrame(rows)


def process_start_ms(world: Any, host: str = "origin", port: int = 8001) -> float:
    """A new origin process on ``host``: from start until its first answer (ms)."""
    started = time.perf_counter()
    server = world.start_service(
        host,
        ["python", "-m", "kit.services.origin", "--port", str(port)],
        name=f"origin-{port}",
        health_url=f"http://127.0.0.1:{port}/",
    )
    elapsed = 1000 * (time.perf_counter() - started)
    server.stop()
    return elapsed


CONTAINER_SCRIPT = """
ip link set lo up
{python} -m kit.services.origin --port 8080 >/dev/null 2>&1 &
until curl -s -o /dev/null http://127.0.0.1:8080/; do sleep 0.005; done
"""


def container_start_ms() -> tuple[float | None, str]:
    """Start the origin in new namespaces (net, pid, mount, uts, ipc) until it answers.

    That is what a container runtime sets up, minus the image's file system and its
    cgroup. Returns (ms, what was done) or (None, why it could not be measured).
    """
    if not shutil.which("unshare"):
        return None, "no `unshare` on this machine"
    script = CONTAINER_SCRIPT.format(python=shlex.quote(sys.executable))
    command = [
        "unshare",
        "--net",
        "--pid",
        "--fork",
        "--mount",
        "--uts",
        "--ipc",
        "--mount-proc",
        "sh",
        "-c",
        script,
    ]
    started = time.perf_counter()
    try:
        subprocess.run(command, check=True, timeout=30, capture_output=True)
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"unshare failed here: {error}"
    # the origin was PID 2 of the new PID namespace: it died with the namespace's init
    return 1000 * (time.perf_counter() - started), "new net/pid/mount/uts/ipc namespaces + process"


def plot_starts(starts: Mapping[str, float]) -> Figure:
    """Horizontal bars, log scale: how long each way of starting code took (ms)."""
    series = pd.Series(starts)
    fig, ax = plt.subplots(figsize=(9, 0.5 + 0.55 * len(series)), layout="constrained")
    colours = ["tab:orange", "tab:olive", "tab:red", "tab:purple"][: len(series)]
    bars = ax.barh(series.index, series.clip(lower=0.01), color=colours, log=True)
    ax.bar_label(bars, labels=[f"{v:,.2f} ms" for v in series], padding=3, fontsize=8)
    ax.set_xlabel("ms (median, log scale)")
    ax.set_title("Starting code: a handler's cold start vs a new process vs new namespaces")
    ax.invert_yaxis()
    ax.set_xlim(right=series.max() * 20)
    return fig
