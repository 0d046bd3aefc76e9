"""Locust's CSV output as pandas tables.

``locust --headless --csv PREFIX --csv-full-history`` (locust 2.47, pinned in
requirements.lock) writes four files; three of them matter here:

- ``PREFIX_stats.csv``: one row per request name plus an ``Aggregated`` row, with
  counts, response times (ms) and the percentiles 50% ... 100%;
- ``PREFIX_stats_history.csv``: the same, appended once a second, so a time series;
- ``PREFIX_failures.csv``: one row per distinct error.

Locust rewrites these files once a second while it runs, so requests made in the
last second of a run may be missing from them. The readers below only rename the
columns to short snake_case names (``requests``, ``p95``, ``rps``...), turn
``N/A`` into NaN and add a ``source`` column naming where the load came from, so
that the tables of several runs can be concatenated and compared.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

PERCENTILES = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]


def _percentile_name(column: str) -> str:
    """'99.9%' -> 'p99_9'."""
    return "p" + column.rstrip("%").replace(".", "_")


STATS_COLUMNS = {
    "Type": "method",
    "Name": "name",
    "Request Count": "requests",
    "Failure Count": "failures",
    "Median Response Time": "median_ms",
    "Average Response Time": "avg_ms",
    "Min Response Time": "min_ms",
    "Max Response Time": "max_ms",
    "Average Content Size": "avg_bytes",
    "Requests/s": "rps",
    "Failures/s": "failures_per_s",
} | {p: _percentile_name(p) for p in PERCENTILES}

HISTORY_COLUMNS = {
    "Timestamp": "timestamp",
    "User Count": "users",
    "Type": "method",
    "Name": "name",
    "Requests/s": "rps",
    "Failures/s": "failures_per_s",
    "Total Request Count": "requests",
    "Total Failure Count": "failures",
    "Total Median Response Time": "median_ms",
    "Total Average Response Time": "avg_ms",
    "Total Min Response Time": "min_ms",
    "Total Max Response Time": "max_ms",
    "Total Average Content Size": "avg_bytes",
} | {p: _percentile_name(p) for p in PERCENTILES}

FAILURE_COLUMNS = {
    "Method": "method",
    "Name": "name",
    "Error": "error",
    "Occurrences": "occurrences",
    "First Seen": "first_seen",
    "Last Seen": "last_seen",
}


def _read(path: Path, columns: dict[str, str], source: str) -> pd.DataFrame:
    table = pd.read_csv(path, na_values=["N/A"], keep_default_na=False, dtype={"Type": str})
    table = table.rename(columns=columns)
    table = table[[c for c in columns.values() if c in table.columns]]
    table.insert(0, "source", source)
    return table


def read_stats(prefix: str | Path, source: str = "") -> pd.DataFrame:
    """``PREFIX_stats.csv``: one row per request name, the last row ``Aggregated``."""
    return _read(Path(f"{prefix}_stats.csv"), STATS_COLUMNS, source)


def read_history(prefix: str | Path, source: str = "") -> pd.DataFrame:
    """``PREFIX_stats_history.csv``: one row per second (and per name with full history).

    Adds ``t_s``, seconds since the run's first row, for plotting runs side by side.
    """
    table = _read(Path(f"{prefix}_stats_history.csv"), HISTORY_COLUMNS, source)
    table["t_s"] = table["timestamp"] - table["timestamp"].min()
    table["timestamp"] = pd.to_datetime(table["timestamp"], unit="s", utc=True)
    return table


def read_failures(prefix: str | Path, source: str = "") -> pd.DataFrame:
    """``PREFIX_failures.csv``: one row per distinct error, with how often it happened."""
    return _read(Path(f"{prefix}_failures.csv"), FAILURE_COLUMNS, source)
