"""Exercises from solutions: the marker convention and the stripping, as pure functions.

A chapter has one source, ``solutions/NN-name.ipynb``. Inside its code cells the
parts a learner writes are marked as nbgrader marks them::

    def area(width, height):
        ### BEGIN SOLUTION
        return width * height
        ### END SOLUTION

``strip_notebook`` turns it into the exercise: each marked region (markers
included) becomes a stub at the indentation of its BEGIN marker::

    def area(width, height):
        # YOUR CODE HERE
        raise NotImplementedError()

and every output and execution count is cleared. The result is a pure function of
the solution, so ``labs/`` can be regenerated and compared byte for byte
(``kit.nb.release --check``). A released lab records a fingerprint of its cells'
sources in its metadata; when a file in ``labs/`` no longer matches its own
fingerprint, a learner has edited it, and nothing overwrites it (see ``release``
and ``reset``).
"""

from __future__ import annotations

import ast
import hashlib
import re
import textwrap
from pathlib import Path

import nbformat
from nbformat import NotebookNode

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
CHAPTER_RE = re.compile(r"^(\d{2})-[\w-]+\.ipynb$")
NBFORMAT = 4


class NotebookError(ValueError):
    """A solution notebook whose markers do not pair up; the message names the cell."""


def strip_source(source: str, where: str = "cell") -> str:
    """Replace each BEGIN/END SOLUTION region of a cell's code with the stub."""
    return fill_source(source, "\n".join(STUB), where)


def fill_source(source: str, code: str, where: str = "cell") -> str:
    """Replace each BEGIN/END SOLUTION region with `code`, at the BEGIN marker's indentation.

    The exercise's stub is one such code; a test puts a learner's plausible wrong
    answer there, to show that the exercise's check rejects it.
    """
    out: list[str] = []
    inside = False
    for number, line in enumerate(source.splitlines(), 1):
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise NotebookError(f"{where}, line {number}: {BEGIN} inside another one")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out += [indent + part if part.strip() else "" for part in code.splitlines()]
        elif marker == END:
            if not inside:
                raise NotebookError(f"{where}, line {number}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise NotebookError(f"{where}: {BEGIN} without {END}")
    return "\n".join(out)


def solution_part(source: str) -> str:
    """The code between a cell's first BEGIN and END SOLUTION markers, dedented."""
    lines = source.splitlines()
    begin = next(i for i, line in enumerate(lines) if line.strip() == BEGIN)
    end = next(i for i, line in enumerate(lines) if line.strip() == END)
    return textwrap.dedent("\n".join(lines[begin + 1 : end]))


def fingerprint(nb: NotebookNode) -> str:
    """A hash of the cells' types and sources (not outputs: running a lab is not editing it)."""
    digest = hashlib.sha256()
    for cell in nb.cells:
        digest.update(f"{cell.cell_type}\0{cell.source}\0".encode())
    return digest.hexdigest()[:16]


def strip_notebook(solution: NotebookNode, where: str = "notebook") -> NotebookNode:
    """The exercise made from a solution notebook (a new notebook; the input is untouched)."""
    lab = nbformat.from_dict(solution)
    for index, cell in enumerate(lab.cells):
        if cell.cell_type == "code":
            cell.source = strip_source(cell.source, f"{where}, cell {index}")
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
    lab.metadata.setdefault("edge_lab", {})["fingerprint"] = fingerprint(lab)
    return lab


def notebook_text(nb: NotebookNode) -> str:
    """The notebook as written to disk (stable: what ``--check`` compares)."""
    return nbformat.writes(nb, version=NBFORMAT) + "\n"


def read_notebook(path: Path) -> NotebookNode:
    return nbformat.read(path, as_version=NBFORMAT)


def is_edited(lab_path: Path) -> bool:
    """True when a lab file's cells no longer match the fingerprint it was released with."""
    nb = read_notebook(lab_path)
    recorded = nb.metadata.get("edge_lab", {}).get("fingerprint")
    return recorded is None or recorded != fingerprint(nb)


def chapters(solutions_dir: Path) -> list[Path]:
    """The chapter notebooks ``NN-name.ipynb`` of a folder, in order."""
    return sorted(p for p in solutions_dir.glob("*.ipynb") if CHAPTER_RE.match(p.name))


def release_text(solution_path: Path) -> str:
    """The exercise notebook generated from one solution file, as text."""
    return notebook_text(strip_notebook(read_notebook(solution_path), solution_path.name))


def exercise_handler(solution_path: Path, *exercises: str) -> str:
    """The functions the named exercise cells define, as one handler module's source.

    Tests and benchmarks deploy a chapter's reference handler as the learner would:
    the cells' function definitions (what `deploy([helper, handler], ...)` ships),
    in the order given, the last one the entry point.
    """
    cells = {cell.metadata.get("exercise"): cell for cell in read_notebook(solution_path).cells}
    parts: list[str] = []
    entry: ast.FunctionDef | ast.AsyncFunctionDef | None = None
    for name in exercises:
        if name not in cells:
            raise NotebookError(f"{solution_path.name} has no exercise cell {name!r}")
        tree = ast.parse(cells[name].source)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                parts.append(ast.get_source_segment(cells[name].source, node) or "")
                entry = node
    if entry is None:
        raise NotebookError(f"exercise cells {exercises} define no function")
    kind = "middleware" if len(entry.args.args) == 4 else "fetch"  # the arity says which form
    alias = "" if entry.name == kind else f"\n\n{kind} = {entry.name}\n"
    return "\n\n\n".join(parts) + alias
