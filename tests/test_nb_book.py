"""The textbook's site (kit/nb/book.py), built by Jupyter Book from executed chapters.

Made-up chapters here (the real ones are built at the end of test_notebooks.py,
from the browser runs): the landing page maps them, every chapter gets a page
with its plot as an image file, links are relative (the site works from
file://), and a chapter that was never executed is named, not skipped.
"""

from __future__ import annotations

import base64
import io
import re

import matplotlib
import nbformat
import pytest

from kit.nb.book import BookError, build

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FIRST_CELL = """# {n} · Chapter {n}

An introduction.

**You will learn**

- the first thing chapter {n} teaches, in a long enough line;
- the second thing;
- the third thing.

**Time needed:** about {n} minutes.
"""


def png() -> str:
    figure, axes = plt.subplots()
    axes.plot([1, 3, 2])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def chapter(n: str, executed: bool) -> nbformat.NotebookNode:
    code = nbformat.v4.new_code_cell("plot()")
    if executed:
        code.outputs = [nbformat.v4.new_output("display_data", {"image/png": png()})]
        code.execution_count = 1
    cells = [nbformat.v4.new_markdown_cell(FIRST_CELL.format(n=n)), code]
    return nbformat.v4.new_notebook(cells=cells)


@pytest.fixture
def folders(tmp_path):
    solutions, results = tmp_path / "solutions", tmp_path / "results"
    (results / "executed").mkdir(parents=True)
    solutions.mkdir()
    for n in ("00", "01"):
        nbformat.write(chapter(n, False), solutions / f"{n}-chapter.ipynb")
        nbformat.write(chapter(n, True), results / "executed" / f"{n}-chapter.ipynb")
    return solutions, results


def test_every_chapter_gets_a_page_with_its_plot_and_the_landing_page_maps_them(folders):
    solutions, results = folders
    index = build(solutions, results, run_missing=False)
    html = index.parent
    landing = (html / "intro.html").read_text()
    for n in ("00", "01"):
        assert f'href="{n}-chapter.html"' in landing
        page = (html / f"{n}-chapter.html").read_text()
        images = re.findall(r'<img[^>]+src="([^"]+)"', page)
        assert images and all(not src.startswith(("/", "http")) for src in images)
        assert all((html / src).exists() for src in images)


def test_a_chapter_never_executed_is_named(folders):
    solutions, results = folders
    nbformat.write(chapter("02", False), solutions / "02-chapter.ipynb")
    with pytest.raises(BookError, match="02-chapter.ipynb"):
        build(solutions, results, run_missing=False)
