"""Shared fixtures, and the layers tests are marked with.

``world`` is one running default world for a whole test session: tests that
inject faults undo them, so the next test finds the world as described.

Every test carries one layer marker, so a quick loop exists (README):

- ``unit``: pure functions and objects; no root, no processes; seconds in all.
  ``pytest -m unit``
- ``loopback``: real services (origin, PoP, Locust) as processes on 127.0.0.1.
- ``world``: a Mininet world; needs root.
- ``notebook``: whole chapters, run in a kernel; minutes.

A test's layer is its module's (``LAYERS`` below), except that a test using the
session ``world`` is a world test and one using ``state`` (a notebook run) is a
notebook test. A marker written on a test wins (a test in a unit module that
starts a service says ``@pytest.mark.loopback``).

Running side by side. ``make test`` runs the suite on four pytest-xdist workers
(``-n 4``), because a chapter run mostly waits: on the emulated Internet's
delays, on load tests, on the browser. Worlds coexist, each chapter run has its
own ``EDGELAB_STATE``, and each browser run its own JupyterLab, port and
workspace. ``SideBySide`` below hands out the tests in units:

- ``serial``: every test that is not a chapter run, in file order, on one worker,
  as if the suite ran alone (they share the session ``world``, loopback ports,
  and the order some of them rely on);
- each chapter's browser run, lab run and wrong-solution harness, and each of the
  modules in ``ALONE`` (their tests share a module fixture), is a unit of its own,
  taken by whichever worker is free, the longest kinds first.

(pytest-xdist's own ``--dist loadgroup`` would do this with marks, but 3.8 names
a group by rewriting ``item._nodeid``, which pytest 9 no longer reads.)

Two kinds of test run after the side-by-side pass, on their own
(``-m "not book and not timing"``, then ``-m "book or timing"``):

- the book (``test_the_book_has_every_chapter_with_its_plots``, marked ``book``),
  built from the browser runs' results;
- tests marked ``timing``, which hold the emulated Internet's delays to within a
  millisecond or a few percent (echo fidelity, a fresh connection's round trips,
  ``kit verify``), or whose evidence is a bound on elapsed time (includes that
  overlap, requests that go out together). A busy machine only adds time to a
  sample, and three chapter runs beside them made it add enough to fail one; they
  are measurements, so they run as the benchmarks do, alone.

Without ``-n`` the suite runs in file order, the book last.
"""

import pytest
from xdist.scheduler import LoadScopeScheduling

from kit.net import World

MARKERS = ("unit", "loopback", "world", "notebook")
LAYERS = {
    "test_cleanup": "world",
    "test_cli": "world",
    "test_db_world": "world",
    "test_links": "world",
    "test_load_world": "world",
    "test_nb_world": "world",
    "test_world": "world",
    "test_browser": "loopback",  # JupyterLab and Chromium on this machine
    "test_bundle": "world",  # root, apt, and network namespaces
    "test_grading": "notebook",  # nbgrader runs a chapter
    "test_edge": "loopback",
    "test_edge_fuzz": "loopback",
    "test_handler_isolation": "loopback",
    "test_hostile_http": "loopback",
    "test_load": "loopback",
    "test_runtime": "loopback",
    "test_runtime_fetch": "loopback",
    "test_services": "loopback",
    "test_notebooks": "unit",
    "test_wrong_solutions": "unit",
}


def pytest_configure(config):
    for marker in MARKERS:
        config.addinivalue_line("markers", f"{marker}: a test of the {marker} layer")
    config.addinivalue_line("markers", "book: built from this run's browser runs (after them)")
    config.addinivalue_line("markers", "timing: holds delays to a millisecond (run alone, after)")


def layer_of(item) -> str:
    module = item.module.__name__.rpartition(".")[2]
    fixtures = set(item.fixturenames)
    if "state" in fixtures:
        return "notebook"
    world = item._fixtureinfo.name2fixturedefs.get("world", ())
    if world and world[-1].func.__module__ == __name__:  # this file's session world
        return "world"
    return LAYERS.get(module, "unit")


ON_THEIR_OWN = (  # the longest kinds first
    "test_wrong_solutions.py::test_each_check",
    "test_notebooks.py::test_solution_runs_in_the_browser",
    "test_notebooks.py::test_lab_fails",
)
ALONE = ("tests/test_grading.py", "tests/test_bundle.py")


class SideBySide(LoadScopeScheduling):
    """pytest-xdist's scope scheduling, with the units of the docstring."""

    def _split_scope(self, nodeid: str) -> str:
        if any(part in nodeid for part in ON_THEIR_OWN):
            return nodeid
        module = nodeid.partition("::")[0]
        return module if module in ALONE else "serial"


def pytest_xdist_make_scheduler(config, log):
    return SideBySide(config, log)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if not any(item.get_closest_marker(m) for m in MARKERS):
            item.add_marker(layer_of(item))
    if hasattr(config, "workerinput"):  # an xdist worker: the longest units come first
        rank = {name: i for i, name in enumerate(ON_THEIR_OWN)}
        items.sort(key=lambda item: rank.get(_unit_kind(item.nodeid), len(rank)))


def _unit_kind(nodeid: str) -> str | None:
    return next((part for part in ON_THEIR_OWN if part in nodeid), None)


@pytest.fixture(scope="session")
def world():
    with World() as w:
        yield w


@pytest.fixture(scope="session")
def origin_url(world):
    """A plain HTTP/1.1 file server on the origin host of the session world."""
    world.start_service(
        "origin",
        ["python", "-m", "http.server", "8080", "--protocol", "HTTP/1.1"],
        name="http.server",
        health_url="http://127.0.0.1:8080/",
    )
    return f"http://{world.ip('origin')}:8080/"
