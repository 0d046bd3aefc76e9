"""Release, check and reset of lab notebooks, on a small repository made in a tmp dir."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from kit.nb.notebooks import NotebookError, is_edited, read_notebook, strip_notebook, strip_source
from kit.nb.release import main as release_main
from kit.nb.release import release
from kit.nb.reset import ResetError, reset

SOLVED = """\
def nearest_pop(user, pops):
    ### BEGIN SOLUTION
    best = min(pops, key=lambda p: p[1])
    return best[0]
    ### END SOLUTION

print("ready")"""


def make_repo(root: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Chapter 3"),
        nbformat.v4.new_code_cell(SOLVED),
        nbformat.v4.new_code_cell("### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION"),
    ]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="ready\n")]
    nb.cells[1].execution_count = 7
    (root / "solutions").mkdir()
    nbformat.write(nb, root / "solutions" / "03-gateway.ipynb")
    return root / "labs" / "03-gateway.ipynb"


def test_strip_source_keeps_indentation_and_the_rest():
    assert strip_source(SOLVED) == (
        "def nearest_pop(user, pops):\n"
        "    # YOUR CODE HERE\n"
        "    raise NotImplementedError()\n"
        "\n"
        'print("ready")'
    )


@pytest.mark.parametrize(
    "source, message",
    [
        ("### BEGIN SOLUTION\nx = 1", "without ### END"),
        ("x = 1\n### END SOLUTION", "line 2: ### END SOLUTION without"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
    ],
)
def test_unpaired_markers_name_the_place(source, message):
    with pytest.raises(NotebookError, match=message):
        strip_source(source, "03-gateway.ipynb, cell 1")


def test_release_writes_stripped_labs_without_outputs(tmp_path):
    lab = make_repo(tmp_path)
    report = release(tmp_path)
    assert report.written == [lab]
    nb = read_notebook(lab)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "min(pops" not in code[0].source and "raise NotImplementedError()" in code[0].source
    assert code[1].source == "# YOUR CODE HERE\nraise NotImplementedError()"
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert nb.cells[0].source == "# Chapter 3"
    assert not is_edited(lab)
    # the solution itself is untouched
    solution = read_notebook(tmp_path / "solutions" / "03-gateway.ipynb")
    assert "min(pops" in solution.cells[1].source and solution.cells[1].outputs


def test_stripping_is_a_pure_function_of_the_solution(tmp_path):
    make_repo(tmp_path)
    solution = read_notebook(tmp_path / "solutions" / "03-gateway.ipynb")
    assert strip_notebook(solution) == strip_notebook(solution)
    release(tmp_path)
    assert release(tmp_path).unchanged == [tmp_path / "labs" / "03-gateway.ipynb"]


def test_check_mode_fails_when_labs_are_missing_or_stale(tmp_path, capsys):
    lab = make_repo(tmp_path)
    assert release_main(["--check", "--root", str(tmp_path)]) == 1
    assert "labs/03-gateway.ipynb" in capsys.readouterr().err
    assert not lab.exists()  # --check never writes

    assert release_main(["--root", str(tmp_path)]) == 0
    assert release_main(["--check", "--root", str(tmp_path)]) == 0

    solution = tmp_path / "solutions" / "03-gateway.ipynb"
    nb = read_notebook(solution)
    nb.cells[0].source = "# Chapter 3, revised"
    nbformat.write(nb, solution)
    assert release_main(["--check", "--root", str(tmp_path)]) == 1


def test_check_mode_as_a_command(tmp_path):
    make_repo(tmp_path)
    argv = [sys.executable, "-m", "kit.nb.release", "--check", "--root", str(tmp_path)]
    root = Path(__file__).resolve().parents[1]
    assert subprocess.run(argv, cwd=root, capture_output=True).returncode == 1
    release(tmp_path)
    done = subprocess.run(argv, cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout


def learner_edits(lab: Path) -> None:
    nb = read_notebook(lab)
    nb.cells[1].source = nb.cells[1].source.replace("# YOUR CODE HERE", "return pops[0][0]")
    nbformat.write(nb, lab)


def test_release_never_overwrites_a_learners_work(tmp_path):
    lab = make_repo(tmp_path)
    release(tmp_path)
    learner_edits(lab)
    mine = lab.read_text()
    assert is_edited(lab)
    report = release(tmp_path)
    assert report.kept == [lab] and report.written == []
    assert lab.read_text() == mine


def test_release_keeps_a_lab_that_was_only_run(tmp_path):
    lab = make_repo(tmp_path)
    release(tmp_path)
    nb = read_notebook(lab)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="ready\n")]
    nbformat.write(nb, lab)
    assert not is_edited(lab)  # outputs are not edits...
    assert release(tmp_path).kept == [lab]  # ...but they are still the learner's


def test_reset_gives_a_fresh_copy_and_keeps_the_learners(tmp_path):
    lab = make_repo(tmp_path)
    release(tmp_path)
    fresh = lab.read_text()
    learner_edits(lab)
    mine = lab.read_text()

    new, kept = reset("3", tmp_path)
    assert new == lab and lab.read_text() == fresh
    assert kept is not None and kept.read_text() == mine
    assert kept.name.startswith("03-gateway.") and kept.parent == lab.parent
    # the kept copy is not a chapter: release --check ignores it
    assert release_main(["--check", "--root", str(tmp_path)]) == 0

    learner_edits(lab)
    _, kept_again = reset("03", tmp_path)
    assert kept_again != kept and kept.exists() and kept_again.exists()


def test_reset_of_a_fresh_lab_changes_nothing(tmp_path):
    lab = make_repo(tmp_path)
    assert reset("03", tmp_path) == (lab, None)  # no lab yet: written
    assert reset("03", tmp_path) == (lab, None)
    assert sorted(p.name for p in lab.parent.iterdir()) == ["03-gateway.ipynb"]


def test_reset_of_an_unknown_chapter_lists_the_known_ones(tmp_path):
    make_repo(tmp_path)
    with pytest.raises(ResetError, match="03-gateway"):
        reset("9", tmp_path)
