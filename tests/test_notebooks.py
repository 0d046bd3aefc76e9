"""Every chapter, run for real: the solution passes, the exercise fails only at its checks.

The chapters are the ``NN-name.ipynb`` files in ``solutions/``; a new one is picked
up by every test here without touching this file. Run one chapter with
``pytest tests/test_notebooks.py -k 01``.

What a chapter promises (and what is tested):

- ``solutions/NN-name.ipynb`` is the source, stored without outputs; ``labs/`` is
  generated from it (``python -m kit.nb.release``) and kept in sync.
- The parts a learner writes sit between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION``; the lab gets the stub ``# YOUR CODE HERE`` /
  ``raise NotImplementedError()`` in their place.
- Each check cell carries the cell tag ``check`` and runs its checks inside
  ``with check(...)`` (``kit.nb.checks``), so on the solution it prints ``✓ ...``
  and on the exercise it fails with a ``CheckFailed`` message, not a traceback.
  Other cells may assert measured numbers with ``check`` too: those must pass
  in both notebooks, and are not tagged.
- The solution runs top to bottom without an error, in JupyterLab in a real
  browser (``browser_lab.py``), as a learner runs it: every plot renders and
  every widget displays. Its screenshot, the executed notebook and a summary
  (cells, plots, seconds) are kept under ``results/``. The lab, run past its
  errors, fails at every check cell and nowhere else, except in a stub cell
  that itself raises ``NotImplementedError``. So no untagged cell may use what
  the learner writes.
- The last code cell stops the world, and after each run nothing of it is left:
  no process carrying the world's mark, no record of it (also when a cell failed
  and the kernel was shut down before reaching that cell).

Labs run with nbclient on this venv's ``python3`` kernel, in the notebook's
folder; solutions in the browser, on the same kernel and in the same folder.
Each run gets its own ``EDGELAB_STATE`` folder, so what it leaves behind is told
apart from the worlds of other tests or other users of the machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import nbformat
import pytest
from browser_lab import Lab
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat import NotebookNode

from kit.nb.book import BookError
from kit.nb.book import build as build_book
from kit.nb.checks import FAIL, PASS, CheckFailed, check
from kit.nb.notebooks import BEGIN, END, STUB, chapters, read_notebook, release_text
from kit.nb.release import release
from kit.net import registry

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = chapters(ROOT / "solutions")
RESULTS = ROOT / "results"  # screenshots and executed chapters of the browser runs
CHECK_TAG = "check"
CELL_TIMEOUT_S = 600  # one cell: a load test may run for minutes
RUN_TIMEOUT_S = 1800  # one notebook, start to end (pytest-timeout)

chapter = pytest.mark.parametrize("name", [p.name for p in CHAPTERS], ids=lambda n: n[:-6])


# -- running a notebook --------------------------------------------------------------


def execute(nb: NotebookNode, cwd: Path, state: Path, allow_errors: bool) -> NotebookNode:
    """Run every cell of ``nb`` in a fresh kernel; the kernel is shut down afterwards.

    With ``allow_errors`` every cell runs and errors are left in the outputs;
    without, the first error raises ``CellExecutionError`` (naming the cell).
    """
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",  # this venv's: jupyter_client starts it with sys.executable
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute(env={**os.environ, "EDGELAB_STATE": str(state)})
    return nb


def world_processes(state: Path) -> list[int]:
    """Live processes of any world started with ``EDGELAB_STATE=state``."""
    mark, ours = f"{registry.MARK}=".encode(), f"EDGELAB_STATE={state}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if ours in env and any(v.startswith(mark) for v in env):
                pids.append(int(entry))
    return pids


def leftovers(state: Path, wait_s: float = 3.0) -> tuple[list[str], list[int]]:
    """World records and processes still there after a run (waits for them to go)."""
    deadline = time.monotonic() + wait_s
    while True:
        records = sorted(p.name for p in state.glob("*.json")) if state.is_dir() else []
        procs = world_processes(state)
        if not (records or procs) or time.monotonic() > deadline:
            return records, procs
        time.sleep(0.1)


@pytest.fixture
def state(tmp_path, monkeypatch):
    """A private ``EDGELAB_STATE`` for one notebook run; whatever it leaves is removed after."""
    folder = tmp_path / "edgelab-state"
    yield folder
    monkeypatch.setattr(registry, "STATE_DIR", folder)
    registry.clean()  # a test that failed must not leave its world to the next one
    for pid in world_processes(folder):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def assert_world_gone(state: Path) -> None:
    records, procs = leftovers(state)
    assert not records, f"world records left behind: {records}"
    assert not procs, f"world processes left behind: {procs}"


# -- reading a notebook --------------------------------------------------------------


def code_cells(nb: NotebookNode) -> list[tuple[int, NotebookNode]]:
    return [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def is_check(cell: NotebookNode) -> bool:
    return CHECK_TAG in cell.metadata.get("tags", [])


def is_stub(cell: NotebookNode) -> bool:
    """A lab cell where a solution was stripped out."""
    return STUB[0] in cell.source and STUB[1] in cell.source


def error_of(cell: NotebookNode) -> NotebookNode | None:
    return next((o for o in cell.get("outputs", []) if o.output_type == "error"), None)


def stdout_of(cell: NotebookNode) -> str:
    return "".join(o.text for o in cell.get("outputs", []) if o.get("name") == "stdout")


def where(name: str, index: int, cell: NotebookNode) -> str:
    first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
    return f"{name}, cell {index} ({first[:60]!r})"


# -- fast: what every chapter file must look like ----------------------------------------


def test_there_are_chapters():
    assert CHAPTERS, "no solutions/NN-name.ipynb found"


def test_labs_are_in_sync_with_solutions():
    report = release(ROOT, check=True)
    assert not report.stale, (
        f"out of date: {[str(p) for p in report.stale]}; run: python -m kit.nb.release"
    )


@chapter
def test_solution_is_stored_clean_and_well_formed(name):
    nb = read_notebook(ROOT / "solutions" / name)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    cells = code_cells(nb)
    for i, cell in cells:
        assert not cell.outputs and cell.execution_count is None, (
            f"{where(name, i, cell)}: store solutions without outputs"
        )
    checks = [(i, c) for i, c in cells if is_check(c)]
    assert checks, f"{name}: no cell tagged {CHECK_TAG!r}"
    for i, cell in checks:
        assert "check(" in cell.source, f"{where(name, i, cell)}: a check cell uses `check`"
        assert BEGIN not in cell.source and END not in cell.source, (
            f"{where(name, i, cell)}: a check cell holds no solution"
        )
    assert any(BEGIN in c.source for _, c in cells), f"{name}: no exercise (no {BEGIN})"
    assert ".stop()" in cells[-1][1].source, f"{name}: the last code cell stops the world"
    # the release is a pure function of the solution (markers pair up)
    assert release_text(ROOT / "solutions" / name)


# -- slow: run each chapter, as a solution and as an exercise ------------------------------


def solution_problems(name: str, nb: NotebookNode) -> list[str]:
    """What is wrong with an executed solution: check cells that did not print ✓."""
    problems = []
    for i, cell in code_cells(nb):
        out = stdout_of(cell)
        if is_check(cell) and not (PASS in out and FAIL not in out):
            problems.append(f"{where(name, i, cell)}: no {PASS} line; it printed {out!r}")
    return problems


def lab_problems(name: str, nb: NotebookNode) -> list[str]:
    """What is wrong with an exercise executed past its errors (see the module docstring)."""
    problems = []
    for i, cell in code_cells(nb):
        error, here = error_of(cell), where(name, i, cell)
        if is_check(cell):
            if error is None:
                problems.append(f"{here}: the check passed on the unsolved exercise")
            elif error.ename != "CheckFailed":
                problems.append(f"{here}: failed with {error.ename}, not CheckFailed")
            else:
                message = "\n".join(error.traceback)
                if not (message.startswith(FAIL) and "expected:" in message):
                    problems.append(f"{here}: not a teaching message:\n{message}")
                elif "Traceback" in message or "---" in message:
                    problems.append(f"{here}: shows a traceback:\n{message}")
        elif error is not None and not (is_stub(cell) and error.ename == "NotImplementedError"):
            problems.append(f"{here}: {error.ename}: {error.evalue}")
    return problems


@chapter
@pytest.mark.timeout(RUN_TIMEOUT_S)
def test_solution_runs_in_the_browser_and_passes_its_checks(name, state):
    stem = name.removesuffix(".ipynb")
    try:
        with Lab(ROOT, {"EDGELAB_STATE": str(state)}) as lab:
            run = lab.run(f"solutions/{name}", screenshot=RESULTS / "browser" / f"{stem}.png")
    finally:
        assert_world_gone(state)
    nb = nbformat.from_dict(run.notebook)
    (RESULTS / "executed").mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, RESULTS / "executed" / name)
    summary = {"cells": run.code_cells, "plots": run.images, "widgets": run.widgets}
    summary["seconds"] = round(run.seconds, 1)
    (RESULTS / "browser" / f"{stem}.json").write_text(json.dumps(summary) + "\n")
    problems = run.problems() + solution_problems(name, nb)
    assert not problems, "\n".join(problems)


@chapter
@pytest.mark.timeout(RUN_TIMEOUT_S)
def test_lab_fails_exactly_at_its_checks(name, state):
    path = ROOT / "labs" / name
    nb = read_notebook(path)
    try:
        execute(nb, path.parent, state, allow_errors=True)
    finally:
        assert_world_gone(state)
    problems = lab_problems(name, nb)
    assert not problems, "\n".join(problems)


# -- the harness's own promise: a failing cell leaves nothing behind ------------------------------

SMALL_WORLD = {
    "name": "failing",
    "regions": {"a": {"city": "A", "country": "DE"}, "b": {"city": "B", "country": "JP"}},
    "backbone": [{"a": "a", "b": "b", "rtt_ms": 20}],
    "nodes": {
        "pop-a": {"kind": "pop", "region": "a"},
        "user-b": {"kind": "client", "region": "b"},
    },
}


@pytest.mark.timeout(RUN_TIMEOUT_S)
def test_a_failed_cell_leaves_no_world_behind(tmp_path, state):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                f"from kit.nb import start_world\nworld = start_world({SMALL_WORLD!r})"
            ),
            nbformat.v4.new_code_cell('world.host("user-b").cmd("sleep 600 &")'),  # a stray
            nbformat.v4.new_code_cell('raise RuntimeError("a cell that fails")'),
            nbformat.v4.new_code_cell("world.stop()"),
        ]
    )
    with pytest.raises(CellExecutionError, match="a cell that fails"):
        execute(nb, tmp_path, state, allow_errors=False)
    assert nb.cells[3].get("execution_count") is None  # the stop cell never ran
    assert_world_gone(state)


def test_a_check_run_before_its_exercise_says_what_to_run():
    with pytest.raises(CheckFailed) as failed, check("nearest PoP", say=print):
        nearest_pop_not_defined_yet()  # noqa: F821 - the learner skipped the exercise cell
    assert failed.value.got == "NameError: name 'nearest_pop_not_defined_yet' is not defined"
    assert "run the cells above" in failed.value.hint


# -- the textbook's site, from the browser runs above ------------------------------------


@pytest.mark.notebook
@pytest.mark.book  # it needs the browser runs above: `make test` runs it after them
def test_the_book_has_every_chapter_with_its_plots():
    """`make book` on this run's executed chapters (they ran in the browser above)."""
    try:
        index = build_book(ROOT / "solutions", RESULTS, run_missing=False)
    except BookError as error:
        pytest.fail(str(error), pytrace=False)
    for path in CHAPTERS:
        page = index.parent / f"{path.stem}.html"
        assert page.exists(), f"no page for {path.name}"
        executed = read_notebook(RESULTS / "executed" / path.name)
        plots = sum(
            "image/png" in output.get("data", {})
            for _, cell in code_cells(executed)
            for output in cell.outputs
        )
        images = re.findall(r'<img[^>]+src="([^"]+)"', page.read_text())
        shown = [src for src in images if (page.parent / src).exists()]
        assert len(shown) >= plots, f"{page.name}: {plots} plots, {len(shown)} images found"
