"""Graded releases with nbgrader: a course made from the chapters, and grades per exercise.

    python -m kit.nb.grading COURSE 00 03     # COURSE/source/, COURSE/nbgrader_config.py
    cd COURSE
    nbgrader generate_assignment 03-api-gateway       # the student version, in release/
    nbgrader release_assignment 03-api-gateway        # to the exchange, for students
    nbgrader collect 03-api-gateway                   # their submissions, into submitted/
    nbgrader autograde 03-api-gateway                 # runs every submission (root: a world)
    nbgrader export --exporter=kit.nb.grading.ExerciseCsvExport --to grades.csv

A chapter already marks what a learner writes the way nbgrader does
(`### BEGIN SOLUTION` / `### END SOLUTION`), so nbgrader's own student version
of a chapter is the lab. What nbgrader needs besides is to know which cells are
answers and which are tests, and that is cell metadata, which `source_notebook`
adds to a copy of the solution:

- an exercise cell (metadata `exercise`) becomes a solution cell, `EXERCISE-code`;
- each check cell (tag `check`) after it becomes a locked autograded test,
  `EXERCISE-check-N`, worth one point per `with check(...)` in it. nbgrader
  gives a test cell its points when it runs without an error, and a check that
  fails raises `CheckFailed`: so the points come from the exercise's checks.
- The check's code is repeated in the cell between `### BEGIN HIDDEN TESTS` and
  `### END HIDDEN TESTS`, which nbgrader removes from the student version and
  puts back when it grades. The checks make their inputs afresh each time they
  run (other paths, ids, cities, made-up tables), so the hidden run tests the
  same properties on inputs nobody saw: an answer fitted to what the visible
  check printed earns nothing.

Grades come out per exercise, not only per chapter: `ExerciseCsvExport` is an
nbgrader export plugin writing one row per student, chapter and exercise
(`student_id, chapter, exercise, score, max_score`). nbgrader's own CSV
(`nbgrader export`) still works beside it.

Autograding runs each submission top to bottom with nbgrader's executor, which
goes on past errors; a chapter runs for a minute or two with its world, so the
config written here gives a cell up to `CELL_TIMEOUT_S`.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import defaultdict
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from kit.nb.notebooks import BEGIN, chapters, read_notebook

ROOT = Path(__file__).resolve().parents[2]
CHECK_TAG = "check"
CELL_TIMEOUT_S = 600
CONFIG = """\
# nbgrader's configuration for an Edge Lab course (written by python -m kit.nb.grading).
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = {course_id!r}
c.Exchange.root = {exchange!r}
c.Execute.timeout = {timeout}  # a chapter's cell may run a load test
c.ExportApp.plugin_class = "kit.nb.grading.ExerciseCsvExport"
"""

try:  # nbgrader is the instructor's tool: the labs do not need it
    from nbgrader.plugins import ExportPlugin
except ImportError:  # pragma: no cover - nbgrader is in requirements.lock
    ExportPlugin = object  # type: ignore[assignment,misc]


def checks_in(source: str) -> int:
    """How many `with check(...)` blocks a cell holds: its points."""
    return max(1, len(re.findall(r"^\s*with check\(", source, re.MULTILINE)))


def source_notebook(solution: NotebookNode) -> NotebookNode:
    """The solution with nbgrader's metadata (see the module docstring); a copy."""
    nb = nbformat.from_dict(solution)
    exercise, tests = None, defaultdict(int)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if BEGIN in cell.source:
            exercise = cell.metadata.get("exercise")
            if not exercise:
                raise ValueError(
                    f"an exercise cell without `exercise` metadata: {cell.source[:60]!r}"
                )
            cell.metadata["nbgrader"] = _meta(f"{exercise}-code", solution=True)
        elif CHECK_TAG in cell.metadata.get("tags", []) and exercise:
            tests[exercise] += 1
            grade_id = f"{exercise}-check-{tests[exercise]}"
            cell.metadata["nbgrader"] = _meta(grade_id, grade=True, points=checks_in(cell.source))
            visible = cell.source.rstrip("\n")
            cell.source = f"{visible}\n\n### BEGIN HIDDEN TESTS\n{visible}\n### END HIDDEN TESTS\n"
    return nb


def _meta(grade_id: str, *, solution: bool = False, grade: bool = False, points: int = 0) -> dict:
    meta = {"grade_id": grade_id, "solution": solution, "grade": grade, "locked": grade}
    meta["schema_version"] = 3
    if grade:
        meta["points"] = points
    return meta


def make_course(
    course: Path,
    numbers: list[str],
    solutions: Path = ROOT / "solutions",
    course_id: str = "edgelab",
) -> list[str]:
    """Write `course/source/CHAPTER/CHAPTER.ipynb` for each chapter number, and the config."""
    found = {path.name[:2]: path for path in chapters(solutions)}
    missing = [n for n in numbers if n not in found]
    if missing:
        raise ValueError(f"no chapter {', '.join(missing)}; chapters: {', '.join(sorted(found))}")
    names = []
    for number in numbers:
        solution = found[number]
        folder = course / "source" / solution.stem
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(source_notebook(read_notebook(solution)), folder / solution.name)
        names.append(solution.stem)
    exchange = course / "exchange"
    exchange.mkdir(parents=True, exist_ok=True)
    exchange.chmod(0o777)  # nbgrader's exchange is shared by the course's users
    config = CONFIG.format(course_id=course_id, exchange=str(exchange), timeout=CELL_TIMEOUT_S)
    (course / "nbgrader_config.py").write_text(config)
    return names


class ExerciseCsvExport(ExportPlugin):
    """nbgrader export plugin: one row per student, chapter and exercise."""

    def export(self, gradebook) -> None:  # noqa: ANN001 - nbgrader's Gradebook
        rows = []
        for assignment in gradebook.assignments:
            for student in gradebook.students:
                scores: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
                for notebook in assignment.notebooks:
                    submission = _submitted(gradebook, notebook.name, assignment.name, student.id)
                    graded = {g.name: g for g in submission.grades} if submission else {}
                    for cell in notebook.grade_cells:
                        exercise = cell.name.rsplit("-check-", 1)[0]
                        if cell.name.endswith("-code"):
                            continue
                        scores[exercise][1] += cell.max_score
                        if cell.name in graded:
                            scores[exercise][0] += graded[cell.name].score or 0.0
                for exercise, (score, top) in sorted(scores.items()):
                    rows.append([student.id, assignment.name, exercise, score, top])
        with open(self.to or "grades.csv", "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["student_id", "chapter", "exercise", "score", "max_score"])
            writer.writerows(rows)


def _submitted(gradebook, notebook: str, assignment: str, student: str):  # noqa: ANN001, ANN202
    from nbgrader.api import MissingEntry

    try:
        return gradebook.find_submission_notebook(notebook, assignment, student)
    except MissingEntry:
        return None


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(
        prog="python -m kit.nb.grading",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_argument("course", type=Path, help="the course folder (created if missing)")
    cli.add_argument("chapters", nargs="+", help="chapter numbers, e.g. 00 03")
    args = cli.parse_args(argv)
    try:
        names = make_course(args.course, [f"{int(n):02d}" for n in args.chapters])
    except ValueError as error:
        print(error, file=sys.stderr)
        return 1
    print(
        f"{args.course}: source/ has {', '.join(names)}; next: cd {args.course}; "
        f"nbgrader generate_assignment {names[0]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
