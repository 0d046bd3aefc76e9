"""Run Locust from world hosts, bounded, and bring back the results as tables.

    result = run_load(world, "user-tokyo", "http://10.255.0.1", paths=["/", "/static/10k.bin"],
                      users=20, run_time_s=10)
    result.summary()            # requests, failures, req/s, p50/p95/p99 per source

    result = run_loads(world, ["user-tokyo", "user-berlin"], "http://10.255.0.1")  # at once

Design
------
Locust always runs as a subprocess: ``import locust`` monkey-patches the process
with gevent, which hangs a Jupyter kernel. Each run is
``python -m locust --headless --csv ...`` started inside a world host's network
namespace (through Mininet's ``popen``, so the world records the process and
reaps it), with its working directory and CSV files in a temporary folder that
is removed once the tables are read (``kit.load.results``).

Every run is bounded: users, spawn rate and run time are always set and checked
against ``MAX_USERS`` and ``MAX_RUN_TIME_S``; if Locust has not finished
``GRACE_S`` seconds after its run time, it gets SIGTERM, then SIGKILL, and the
run fails with ``LoadError`` carrying the end of Locust's log. Several runs
started together (``run_loads``) run concurrently, one Locust per host, each
with its own progress line.

Without a world (``world=None``) Locust runs on this machine; the target must
then be on loopback (127.0.0.1), so a load test never leaves the machine.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from kit.load.progress import ProgressLine
from kit.load.results import read_failures, read_history, read_stats

LOCUSTFILES = Path(__file__).resolve().parent / "locustfiles"
GET_PATHS = LOCUSTFILES / "get_paths.py"
MAX_USERS = 1000
MAX_RUN_TIME_S = 600
GRACE_S = 30  # Locust's start-up and shut-down on top of its run time
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class LoadError(RuntimeError):
    """A load test that could not run or did not finish; the message ends with its log."""


@dataclass
class LoadResult:
    """The tables of one or more load runs; ``source`` names where each row's load came from."""

    stats: pd.DataFrame
    history: pd.DataFrame
    failures: pd.DataFrame
    logs: dict[str, str] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """One row per source: requests, failures, failure %, req/s and p50/p95/p99 (ms)."""
        total = self.stats[self.stats["name"] == "Aggregated"].set_index("source")
        table = total[["requests", "failures", "rps", "p50", "p95", "p99", "max_ms"]].copy()
        table.insert(2, "failure_pct", 100 * table["failures"] / table["requests"].clip(lower=1))
        return table

    def _repr_html_(self) -> str:
        return self.summary().round(1)._repr_html_()


def check_bounds(users: int, spawn_rate: float, run_time_s: float) -> None:
    """Raise ``LoadError`` unless the run is bounded and sensible."""
    if not 1 <= users <= MAX_USERS:
        raise LoadError(f"users={users}: use between 1 and {MAX_USERS}")
    if spawn_rate <= 0:
        raise LoadError(f"spawn_rate={spawn_rate}: users started per second must be > 0")
    if not 0 < run_time_s <= MAX_RUN_TIME_S:
        raise LoadError(f"run_time_s={run_time_s}: use between 1 and {MAX_RUN_TIME_S} seconds")


def locust_command(
    locustfile: str | Path,
    target: str,
    users: int,
    spawn_rate: float,
    run_time_s: int,
    csv_prefix: str | Path,
) -> list[str]:
    """The headless Locust command line for one run (absolute interpreter path)."""
    return [
        sys.executable, "-m", "locust",
        "-f", str(locustfile),
        "--headless", "--only-summary",
        "--users", str(users),
        "--spawn-rate", str(spawn_rate),
        "--run-time", f"{run_time_s}s",
        "--host", target,
        "--csv", str(csv_prefix), "--csv-full-history",
        "--exit-code-on-error", "0",  # failed requests are results, not a crash
        "--loglevel", "WARNING",
    ]  # fmt: skip


def latest_count(csv_prefix: str | Path) -> int | None:
    """Requests so far, from the last Aggregated row of the history file, if any."""
    try:
        with open(f"{csv_prefix}_stats_history.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("Name") == "Aggregated"]
    except (OSError, csv.Error):
        return None
    if not rows:
        return None
    try:
        return int(rows[-1]["Total Request Count"])
    except (KeyError, ValueError):
        return None


@dataclass
class _Run:
    source: str
    target: str
    prefix: Path
    log: Path
    proc: subprocess.Popen
    bar: ProgressLine
    started: float

    def stop(self) -> None:
        """SIGTERM, then SIGKILL, to Locust's process group."""
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            if self.proc.poll() is not None:
                return
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                pass


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _start(
    world: Any, source: str, target: str, argv: list[str], env: dict[str, str], workdir: Path
) -> subprocess.Popen:
    log = open(workdir / "locust.log", "wb")  # noqa: SIM115 - the child owns it
    options = dict(stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        if world is None:
            proc = subprocess.Popen(
                argv, env={**os.environ, **env}, start_new_session=True, **options
            )
        else:
            proc = world.popen(
                source, argv, own_session=True, record=f"locust on {source}", env=env, **options
            )
    finally:
        log.close()
    return proc


def run_loads(
    world: Any,
    sources: Iterable[str] | Mapping[str, str],
    target: str | None = None,
    *,
    paths: Iterable[str] = ("/",),
    users: int = 10,
    spawn_rate: float | None = None,
    run_time_s: int = 10,
    wait_s: float = 0.1,
    locustfile: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    progress: bool = True,
) -> LoadResult:
    """Run one Locust per source host, all at once, and return their tables together.

    ``sources`` is a list of world hosts that all load ``target`` (a base URL such as
    ``http://10.255.0.1``), or a mapping host -> base URL. ``paths`` and ``wait_s``
    configure the generic locustfile (``locustfiles/get_paths.py``); a custom
    ``locustfile`` gets ``env`` as its configuration. ``spawn_rate`` defaults to all
    users in one second. With ``world=None`` the sources are only labels and Locust
    runs on this machine against a loopback target.
    """
    targets = dict(sources) if isinstance(sources, Mapping) else dict.fromkeys(sources, target)
    if not targets:
        raise LoadError("no sources: name at least one host to send load from")
    spawn_rate = float(users if spawn_rate is None else spawn_rate)
    check_bounds(users, spawn_rate, run_time_s)
    run_time_s = max(1, round(run_time_s))
    for source, url in targets.items():
        parts = urlsplit(url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LoadError(f"target for {source}: {url!r} is not a URL like http://10.255.0.1")
        if world is None and parts.hostname not in LOOPBACK:
            raise LoadError(f"without a world, load only 127.0.0.1, not {parts.hostname}")
    locustfile = Path(locustfile or GET_PATHS).resolve()
    if not locustfile.is_file():
        raise LoadError(f"no locustfile at {locustfile}")
    run_env = {"LOAD_PATHS": ",".join(paths), "LOAD_WAIT_S": str(wait_s), **(env or {})}

    with tempfile.TemporaryDirectory(prefix="edge-lab-load-") as tmp:
        runs: list[_Run] = []
        try:
            for source, url in targets.items():
                workdir = Path(tmp) / source
                workdir.mkdir()
                prefix = workdir / "locust"
                argv = locust_command(locustfile, url, users, spawn_rate, run_time_s, prefix)
                bar = ProgressLine(f"{source} → {url}", run_time_s, "s", enabled=progress)
                proc = _start(world, source, url, argv, run_env, workdir)
                runs.append(
                    _Run(source, url, prefix, workdir / "locust.log", proc, bar, time.monotonic())
                )
            _wait(runs, run_time_s)
            return _collect(runs)
        finally:
            for run in runs:
                run.stop()


def _wait(runs: list[_Run], run_time_s: int) -> None:
    """Poll every run until it ends, updating its progress line; enforce the hard timeout."""
    pending = list(runs)
    while pending:
        time.sleep(0.25)
        for run in list(pending):
            elapsed = time.monotonic() - run.started
            if run.proc.poll() is not None:
                pending.remove(run)
                latest = latest_count(run.prefix)
                count = f"{latest} requests" if latest is not None else "no requests"
                run.bar.done(f"{count} in {run_time_s} s")
            elif elapsed > run_time_s + GRACE_S:
                run.stop()
                raise LoadError(
                    f"Locust on {run.source} did not finish within {run_time_s + GRACE_S} s "
                    f"and was stopped. Its log ends:\n{_log_tail(run.log)}"
                )
            else:
                latest = latest_count(run.prefix)
                note = f"{latest} requests" if latest is not None else "starting"
                run.bar.update(min(elapsed, run_time_s), note)


def _collect(runs: list[_Run]) -> LoadResult:
    stats, history, failures, logs = [], [], [], {}
    for run in runs:
        logs[run.source] = run.log.read_text(errors="replace")
        if run.proc.returncode != 0 or not Path(f"{run.prefix}_stats.csv").exists():
            raise LoadError(
                f"Locust on {run.source} exited with status {run.proc.returncode}. "
                f"Its log ends:\n{_log_tail(run.log)}"
            )
        stats.append(read_stats(run.prefix, run.source))
        history.append(read_history(run.prefix, run.source))
        failures.append(read_failures(run.prefix, run.source))
    return LoadResult(
        pd.concat(stats, ignore_index=True),
        pd.concat(history, ignore_index=True),
        pd.concat(failures, ignore_index=True),
        logs,
    )


def run_load(
    world: Any,
    source: str,
    target: str,
    *,
    paths: Iterable[str] = ("/",),
    users: int = 10,
    spawn_rate: float | None = None,
    run_time_s: int = 10,
    wait_s: float = 0.1,
    locustfile: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    progress: bool = True,
) -> LoadResult:
    """One load run from one world host (see ``run_loads`` for the arguments)."""
    return run_loads(
        world,
        [source],
        target,
        paths=paths,
        users=users,
        spawn_rate=spawn_rate,
        run_time_s=run_time_s,
        wait_s=wait_s,
        locustfile=locustfile,
        env=env,
        progress=progress,
    )
