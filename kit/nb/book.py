"""The textbook as a website: every chapter with this machine's outputs, as a static site.

    sudo make book                 # = python -m kit.nb.book
    python -m kit.nb.book --no-run # only from chapters already executed

The pages are the solutions as they ran: their plots, tables and check marks are
this machine's measurements, not pictures kept in the repository. Each
chapter's executed notebook comes from `results/executed/`, where the browser
run of `make test` keeps it (`tests/test_notebooks.py`). A chapter with no
executed notebook there, or an older one than its solution, is run now with
nbclient (a world per chapter: root, and a minute or two each), unless
`--no-run` is given, which then stops with the list of what is missing.

Jupyter Book (1.x, on Sphinx) builds the site from a source folder made here:
the landing page (the chapter map of `kit.nb.chapters`, which reads each
chapter's first cell), a table of contents in chapter order, and the executed
notebooks, which it renders as they are (`execute_notebooks: off`). The site
is `results/book/_build/html/`; its links are relative, so it works opened
from `file://` or copied to any static host.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from kit.nb.chapters import NEEDS, chapter_map
from kit.nb.notebooks import chapters

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"
CONFIG = """\
title: Edge Lab
author: Edge Lab
only_build_toc_files: true
execute:
  execute_notebooks: "off"
html:
  use_repository_button: false
sphinx:
  config:
    html_show_copyright: false
    suppress_warnings: ["mystnb.unknown_mime_type"]
"""


class BookError(RuntimeError):
    """The book cannot be built: which chapters are missing, or what Jupyter Book said."""


def stale_chapters(solutions: Path, executed: Path) -> list[Path]:
    """Solutions with no executed notebook, or an older one than the solution."""
    found = []
    for solution in chapters(solutions):
        done = executed / solution.name
        if not done.exists() or done.stat().st_mtime < solution.stat().st_mtime:
            found.append(solution)
    return found


def execute_chapter(solution: Path, executed: Path) -> None:
    """Run one chapter with nbclient in its own folder, and keep the executed notebook."""
    nb = nbformat.read(solution, as_version=4)
    where = {"metadata": {"path": str(solution.parent)}}  # the chapter's own folder
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources=where)
    client.execute()
    executed.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, executed / solution.name)


def landing_page(solutions: Path) -> str:
    """The site's first page: what Edge Lab is, and the chapter map with links."""
    lines = [
        "# Edge Lab",
        "",
        "An interactive textbook of edge computing architecture. Each chapter starts an",
        "emulated world of PoPs, origins and users in real cities, with the latencies of",
        "the real Internet between them, measures what an edge pattern buys, and has the",
        "learner build the pattern and prove it. These pages are the chapters as they ran,",
        "with the numbers and plots of the machine that built the site.",
        "",
        "| | chapter | time | needs | you will learn |",
        "|---|---|---|---|---|",
    ]
    for chapter in chapter_map(solutions):
        page = chapter.file.removesuffix(".ipynb")
        learn = chapter.learn[0].rstrip(";.") if chapter.learn else ""
        needs = NEEDS.get(chapter.number, "the default world")
        row = f"| {chapter.number} | [{chapter.title}]({page}) | {chapter.time_needed} "
        lines.append(row + f"| {needs} | {learn} |")
    return "\n".join(lines) + "\n"


def build(
    solutions: Path = ROOT / "solutions", results: Path = RESULTS, run_missing: bool = True
) -> Path:
    """Build the site; returns its index.html."""
    executed = results / "executed"
    missing = stale_chapters(solutions, executed)
    if missing and not run_missing:
        names = ", ".join(p.name for p in missing)
        raise BookError(f"not executed yet: {names}; run `make test` (or this without --no-run)")
    for index, solution in enumerate(missing, 1):
        print(f"[{index}/{len(missing)}] running {solution.name} ...", flush=True)
        execute_chapter(solution, executed)
    source = results / "book"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    (source / "_config.yml").write_text(CONFIG)
    (source / "intro.md").write_text(landing_page(solutions))
    toc = ["format: jb-book", "root: intro", "chapters:"]
    for solution in chapters(solutions):
        shutil.copy(executed / solution.name, source / solution.name)
        toc.append(f"- file: {solution.stem}")
    (source / "_toc.yml").write_text("\n".join(toc) + "\n")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    done = subprocess.run(
        [str(jupyter_book), "build", str(source), "--builder", "html"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"},
    )
    index = source / "_build" / "html" / "index.html"
    if done.returncode != 0 or not index.exists():
        raise BookError(f"jupyter-book build failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return index


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(prog="python -m kit.nb.book", description=__doc__)
    cli.add_argument("--no-run", action="store_true", help="never run a chapter; stop instead")
    args = cli.parse_args(argv)
    try:
        index = build(run_missing=not args.no_run)
    except BookError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"the book: {index} (open it from file://, or copy {index.parent} to any host)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
