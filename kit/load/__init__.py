"""Load tests with Locust, run from world hosts, with results as tables and plots.

    from kit.load import run_loads, plot_load
    result = run_loads(world, ["user-tokyo", "user-berlin"], "http://10.255.0.1",
                       paths=["/", "/static/10k.bin"], users=20, run_time_s=10)
    result.summary()       # p50/p95/p99, req/s and failures per source
    plot_load(result)

Modules: ``runner`` (Locust as a bounded subprocess in a host), ``steps`` (a
load that steps its users until throughput flattens and p99 bends), ``results`` (its
CSV files as pandas tables), ``plots``, ``progress`` (the progress line), ``ui``
(Locust's live web UI in a JupyterLab tab, through ``relay``), and ``locustfiles/``
(the load itself; ``get_paths.py`` is the generic one).
Nothing here imports Locust: it only ever runs as a separate process.
"""

from kit.load.plots import plot_failures, plot_load, plot_percentiles, plot_rps
from kit.load.progress import ProgressLine
from kit.load.results import read_failures, read_history, read_stats
from kit.load.runner import GET_PATHS, LoadError, LoadResult, run_load, run_loads
from kit.load.steps import plot_steps, step_load
from kit.load.ui import LocustUI, locust_ui

__all__ = [
    "GET_PATHS",
    "LoadError",
    "LoadResult",
    "LocustUI",
    "ProgressLine",
    "plot_failures",
    "plot_load",
    "plot_percentiles",
    "plot_rps",
    "locust_ui",
    "plot_steps",
    "read_failures",
    "read_history",
    "read_stats",
    "run_load",
    "run_loads",
    "step_load",
]
