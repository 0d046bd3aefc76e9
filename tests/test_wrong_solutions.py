"""Every exercise's check rejects the mistakes learners really make, and says which.

A check that only fails on `NotImplementedError` is not a check. For each
exercise, `tests/wrong/NN-name/` keeps plausible wrong solutions, one file each:

    \"\"\"Redirects Germany only: Austria and Switzerland speak German too.\"\"\"
    # exercise: 02-router
    # rejected: user-vienna
    if request.geo.country == "DE":
        ...

The docstring says what the mistake is; `# exercise:` names the exercise (the
`exercise` field in the metadata of the solution's exercise cell); `# rejected:`
is text that the check's failure message must contain, so the learner is told
what went wrong, not only that something did. The rest is code that takes the
place of the exercise cell's solution part (between `### BEGIN SOLUTION` and
`### END SOLUTION`, at its indentation).

A mistake in one line of a long solution is written as an edit of the solution,
so the file holds only the mistake:

    # instead of: return await env.fetch(nearest)
        return await env.fetch(str(nearest.url))

Each `# instead of:` names a line of the solution part (several in a row: that
many consecutive lines); the lines below it, written relative to that line's
indentation, take their place.

The harness runs the chapter's solution once, in one kernel. At the check cell
that follows an exercise, it runs each wrong solution in turn (the exercise
cell with that code, then the check) and expects `CheckFailed` naming the
mistake; then the real solution again, whose check must pass, and it goes on
to the end of the chapter (which stops the world).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from test_notebooks import CELL_TIMEOUT_S, ROOT, assert_world_gone, error_of, is_check
from test_notebooks import state as _state  # noqa: F401 — the fixture `state`, used below

from kit.nb.notebooks import BEGIN, chapters, fill_source, read_notebook, solution_part

state = _state  # pytest finds a fixture by its name in this module
WRONG = Path(__file__).resolve().parent / "wrong"


@dataclass
class Wrong:
    """One wrong solution: what the mistake is, its exercise, the text its rejection names."""

    path: Path
    mistake: str
    exercise: str
    rejected: str
    code: str

    def code_for(self, solution: str) -> str:
        """The wrong solution in full, given the solution part it edits (if it does)."""
        lines = self.code.splitlines()
        if not any(line.startswith(INSTEAD) for line in lines):
            return self.code
        result, edits = solution.splitlines(), []
        for line in lines:  # (lines of the solution, lines that replace them)
            if line.startswith(INSTEAD):
                if not edits or edits[-1][1]:
                    edits.append(([], []))
                edits[-1][0].append(line.removeprefix(INSTEAD).strip())
            elif edits:
                edits[-1][1].append(line)
        for old, new in edits:
            stripped = [line.strip() for line in result]
            starts = [i for i in range(len(result)) if stripped[i : i + len(old)] == old]
            assert len(starts) == 1, (
                f"{self.path.name}: {old[0]!r} is not one place of the solution"
            )
            at = starts[0]
            indent = result[at][: len(result[at]) - len(result[at].lstrip())]
            result[at : at + len(old)] = [indent + line if line else line for line in new]
        return "\n".join(result)


INSTEAD = "# instead of:"


def read_wrong(path: Path) -> Wrong:
    text = path.read_text()
    if not text.startswith('"""'):
        raise ValueError(f"{path}: start with a docstring saying what the mistake is")
    mistake, _, rest = text[3:].partition('"""')
    fields: dict[str, str] = {}
    lines = rest.strip("\n").splitlines()
    while (
        lines and lines[0].startswith("# ") and ":" in lines[0] and not lines[0].startswith(INSTEAD)
    ):
        key, _, value = lines.pop(0)[2:].partition(":")
        fields[key.strip()] = value.strip()
    if not {"exercise", "rejected"} <= set(fields):
        raise ValueError(f"{path}: needs '# exercise: NAME' and '# rejected: TEXT' lines")
    return Wrong(path, mistake.strip(), fields["exercise"], fields["rejected"], "\n".join(lines))


def wrong_solutions(chapter: str) -> dict[str, list[Wrong]]:
    """The chapter's wrong solutions, by exercise."""
    found: dict[str, list[Wrong]] = {}
    for path in sorted((WRONG / chapter).glob("*.py")):
        wrong = read_wrong(path)
        found.setdefault(wrong.exercise, []).append(wrong)
    return found


def exercise_cells(nb: nbformat.NotebookNode) -> dict[str, int]:
    """Exercise name -> index of its cell (a cell with a solution part names its exercise)."""
    return {
        cell.metadata["exercise"]: index
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and "exercise" in cell.metadata
    }


def failure_text(cell: nbformat.NotebookNode) -> str | None:
    """The CheckFailed message a check cell ended with, or None if it passed."""
    error = error_of(cell)
    if error is None:
        return None
    assert error.ename == "CheckFailed", (
        f"the check raised {error.ename}, not CheckFailed: " + "\n".join(error.traceback)[-800:]
    )
    return "\n".join(error.traceback)


CHAPTERS_WITH_WRONG = [p for p in chapters(ROOT / "solutions") if (WRONG / p.stem).is_dir()]


def test_every_exercise_has_three_wrong_solutions():
    for path in chapters(ROOT / "solutions"):
        wrong = wrong_solutions(path.stem)
        for exercise in exercise_cells(read_notebook(path)):
            count = len(wrong.get(exercise, []))
            assert count >= 3, f"{path.name}: exercise {exercise!r} has {count} wrong solutions"
        unknown = set(wrong) - set(exercise_cells(read_notebook(path)))
        assert not unknown, f"tests/wrong/{path.stem}: no exercise called {sorted(unknown)}"


def test_every_solution_part_belongs_to_a_named_exercise():
    for path in chapters(ROOT / "solutions"):
        for index, cell in enumerate(read_notebook(path).cells):
            if cell.cell_type == "code" and BEGIN in cell.source:
                assert "exercise" in cell.metadata, (
                    f"{path.name}, cell {index}: an exercise cell needs metadata "
                    '{"exercise": "NN-name"} (its hints and wrong solutions use that name)'
                )


@pytest.mark.parametrize("path", CHAPTERS_WITH_WRONG, ids=lambda p: p.stem)
@pytest.mark.timeout(1800)
def test_each_check_rejects_its_wrong_solutions(path, state):
    nb = read_notebook(path)
    wrong = wrong_solutions(path.stem)
    exercises = {index: name for name, index in exercise_cells(nb).items()}
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    problems: list[str] = []
    latest: tuple[str, int] | None = None  # the last exercise run, and its cell
    solution = list(nb.cells)  # execute_cell(c, i) puts c in nb.cells[i]: keep the originals
    try:
        with client.setup_kernel(env={**os.environ, "EDGELAB_STATE": str(state)}):
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                if is_check(cell) and latest is not None:
                    name, exercise_index = latest
                    for w in wrong.get(name, []):
                        original = solution[exercise_index].source
                        code = w.code_for(solution_part(original))
                        source = fill_source(original, code, str(w.path))
                        variant = nbformat.v4.new_code_cell(source)
                        client.execute_cell(variant, exercise_index)
                        trial = nbformat.v4.new_code_cell(cell.source)
                        client.execute_cell(trial, index)
                        message = failure_text(trial)
                        if message is None:
                            problems.append(f"{w.path.name}: the check passed ({w.mistake})")
                        elif w.rejected not in message:
                            problems.append(
                                f"{w.path.name}: rejected, but the message does not name "
                                f"{w.rejected!r}:\n{message}"
                            )
                    client.execute_cell(solution[exercise_index], exercise_index)
                client.execute_cell(cell, index)
                error = error_of(cell)
                assert error is None, f"cell {index} failed on the solution: {error.ename}"
                if index in exercises:
                    latest = (exercises[index], index)
    finally:
        assert_world_gone(state)
    assert not problems, "\n".join(problems)
