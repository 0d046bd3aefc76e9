"""A graded release of chapter 00 with nbgrader (kit/nb/grading.py), the instructor's cycle.

The course is made from the chapter, nbgrader generates and releases the student
version, three students hand it in (what `nbgrader collect` puts in
`submitted/`): one solved both exercises, one only the first, one neither.
nbgrader autogrades them (the chapter runs, world and all, with the hidden run
of each check) and the export plugin writes a row per student and exercise.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from test_notebooks import assert_world_gone
from test_notebooks import state as _state  # noqa: F401 — the fixture `state`, used below

from kit.nb.grading import make_course
from kit.nb.notebooks import BEGIN, END, read_notebook

state = _state
ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "00-welcome"
SOLVED = {"solved": {"00-nearest", "00-saving"}, "half": {"00-nearest"}, "unsolved": set()}


def nbgrader(course: Path, *args: str, state: Path | None = None) -> str:
    """Run an nbgrader command in the course, with this venv first on the PATH (as in Lab)."""
    venv = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{venv}:{os.environ['PATH']}"}
    if state is not None:
        env["EDGELAB_STATE"] = str(state)
    done = subprocess.run(
        [str(venv / "nbgrader"), *args],
        cwd=course,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, f"nbgrader {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def answers() -> dict[str, str]:
    """Each exercise's cell as the solution writes it, without the markers."""
    solution = read_notebook(ROOT / "solutions" / f"{CHAPTER}.ipynb")
    found = {}
    for cell in solution.cells:
        if BEGIN in cell.source:
            lines = [line for line in cell.source.splitlines() if line.strip() not in (BEGIN, END)]
            found[cell.metadata["exercise"]] = "\n".join(lines)
    return found


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    make_course(course, ["00"])
    nbgrader(course, "generate_assignment", CHAPTER, "--force")
    nbgrader(course, "release_assignment", CHAPTER, "--force")
    return course


def test_the_student_version_is_the_lab_without_the_hidden_checks(course):
    released = (course / "release" / CHAPTER / f"{CHAPTER}.ipynb").read_text()
    assert "HIDDEN TESTS" not in released and "raise NotImplementedError()" in released
    assert "rows.loc[rows" not in released  # a line of the solution
    outbound = course / "exchange" / "edgelab" / "outbound" / CHAPTER / f"{CHAPTER}.ipynb"
    assert outbound.exists(), "released to the exchange, where students fetch it"


def test_autograde_scores_each_exercise_by_its_checks(course, state):
    released = course / "release" / CHAPTER / f"{CHAPTER}.ipynb"
    written = answers()
    for student, solved in SOLVED.items():
        nb = nbformat.read(released, as_version=4)
        for cell in nb.cells:
            grading = cell.metadata.get("nbgrader", {})
            exercise = grading.get("grade_id", "").removesuffix("-code")
            if grading.get("solution") and exercise in solved:
                cell.source = written[exercise]
        folder = course / "submitted" / student / CHAPTER
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{CHAPTER}.ipynb")
        (folder / "timestamp.txt").write_text("2026-11-30 12:00:00.000000 UTC")
    try:
        nbgrader(course, "autograde", CHAPTER, "--force", state=state)
    finally:
        assert_world_gone(state)
    graded = (course / "autograded" / "half" / CHAPTER / f"{CHAPTER}.ipynb").read_text()
    assert "BEGIN HIDDEN TESTS" in graded, "the hidden checks ran at grading time"
    nbgrader(course, "export", "--to", "grades.csv")
    with open(course / "grades.csv", newline="") as file:
        rows = {(r["student_id"], r["exercise"]): r for r in csv.DictReader(file)}
    assert len(rows) == 6 and {r["chapter"] for r in rows.values()} == {CHAPTER}
    for (student, exercise), row in rows.items():
        full = float(row["max_score"])
        assert full >= 1
        expected = full if exercise in SOLVED[student] else 0.0
        assert float(row["score"]) == expected, (student, exercise, row)
