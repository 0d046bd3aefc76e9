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

Running side by side. ``make test`` runs the suite on several pytest-xdist
workers (``-n 4 --dist loadgroup``), because a chapter run mostly waits: on the
emulated Internet's delays, on load tests, on the browser. Worlds coexist, and
each notebook run has its own ``EDGELAB_STATE``. What must not share the machine
with itself is kept together in an ``xdist_group``:

- ``serial``: every test that is not a notebook run, in file order, on one worker,
  as if the suite ran alone (they share the session ``world``, fixed loopback
  ports, and the order some of them rely on);
- ``browser``: the chapters' browser runs, one JupyterLab at a time, then the
  book built from what they executed (it needs all of them).

Every other notebook run (a lab, a chapter's wrong solutions, the grading test)
is a unit of its own, taken by whichever worker is free, longest first. Without
``-n`` the groups mean nothing and the suite runs in file order.
"""

import pytest

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


def layer_of(item) -> str:
    module = item.module.__name__.rpartition(".")[2]
    fixtures = set(item.fixturenames)
    if "state" in fixtures:
        return "notebook"
    world = item._fixtureinfo.name2fixturedefs.get("world", ())
    if world and world[-1].func.__module__ == __name__:  # this file's session world
        return "world"
    return LAYERS.get(module, "unit")


BROWSER_RUNS = ("test_solution_runs_in_the_browser", "test_the_book_has_every_chapter")
LONGEST_FIRST = ("test_each_check_rejects_its_wrong_solutions", "test_lab_fails_exactly")


def group_of(item) -> str | None:
    """The xdist group a test runs in (see the docstring), None for a unit of its own."""
    if item.originalname.startswith(BROWSER_RUNS):
        return "browser"
    return None if item.get_closest_marker("notebook") else "serial"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        if not any(item.get_closest_marker(m) for m in MARKERS):
            item.add_marker(layer_of(item))
        group = group_of(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
    if config.getoption("dist", "no") != "no":  # side by side: the long runs start first
        rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
        items.sort(key=lambda item: rank.get(item.originalname, len(rank)))


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
