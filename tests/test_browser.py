"""The browser run (browser_lab.py) fails a chapter that a learner would see broken.

Each notebook here is made up for the test and run in JupyterLab in headless
Chromium, as a chapter's solution is: one that is fine passes; a traceback, a
plot the page cannot render, and a widget whose model is gone each fail, and the
reason names what went wrong. So the browser pass of `test_notebooks.py` is a
check that can fail.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from browser_lab import CHROMIUM, CHROMIUM_ARGS, Lab

from kit.cli import main as kit_main
from kit.nb.notebooks import chapters

ROOT = Path(__file__).resolve().parents[1]

FINE = [
    "import matplotlib.pyplot as plt\nimport ipywidgets\nplt.plot([1, 2, 3]);",
    "ipywidgets.IntSlider(3)",
]
TRACEBACK = ["x = 1", "1 / 0", "y = 2"]
BROKEN_PLOT = [
    "from IPython.display import Image, display\n"
    "display(Image(data=b'\\x89PNG\\r\\n\\x1a\\n not really a PNG', format='png'))"
]
LOST_WIDGET = [
    "from IPython.display import display\n"
    "display({'application/vnd.jupyter.widget-view+json': "
    "{'model_id': 'gone0000', 'version_major': 2, 'version_minor': 0}}, raw=True)"
]


# nbgrader's commands in a learner's Lab: True where the command must exist
NBGRADER_COMMANDS = {
    "open-assignment-list": True,
    "open-formgrader": False,
    "open-course-list": False,
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    with Lab(root) as lab:
        yield lab


def run(lab, name: str, cells: list[str]):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    spec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["kernelspec"] = spec
    nbformat.write(nb, lab.root / f"{name}.ipynb")
    return lab.run(f"{name}.ipynb", timeout_s=120)


def test_a_notebook_that_is_fine_passes_with_its_plot_and_widget_counted(lab):
    fine = run(lab, "fine", FINE)
    assert fine.problems() == []
    assert (fine.image_outputs, fine.images, fine.widget_outputs, fine.widgets) == (1, 1, 1, 1)
    assert not list(lab.root.glob("*.browser.ipynb")), "the copy it ran is removed"


@pytest.mark.parametrize(
    "cells, named",
    [
        (TRACEBACK, "cell 1: ZeroDivisionError"),
        (BROKEN_PLOT, "1 plots sent, 0 rendered, 1 broken"),
        (LOST_WIDGET, "1 widgets sent, 0 rendered"),
    ],
    ids=["traceback", "broken-plot", "lost-widget"],
)
def test_what_a_learner_would_see_broken_fails_the_run(lab, cells, named):
    problems = run(lab, "broken", cells).problems()
    assert any(named in problem for problem in problems), problems


def test_jupyterlab_opens_on_the_start_page_rendered(tmp_path):
    """As `vagrant/lab.sh` starts it: the start page first, as a page, not as Markdown source."""
    from playwright.sync_api import sync_playwright

    for lab in chapters(ROOT / "labs")[:3]:
        shutil.copy(lab, tmp_path / lab.name)
    kit_main(["start-page", str(tmp_path / "START.md")])
    opens_on = ["--LabApp.default_url=/lab/tree/START.md"]
    with Lab(tmp_path, args=opens_on) as lab:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"{lab.base}?token={lab.token}")
            rendered = "() => [...document.querySelectorAll('.jp-RenderedMarkdown')]"
            page.wait_for_function(
                rendered + ".some(e => e.innerText.includes('The chapters'))", timeout=60_000
            )
            shown = page.locator(".jp-RenderedMarkdown", has_text="The chapters")
            text = shown.inner_text()
            links = shown.locator("a").evaluate_all("links => links.map(a => a.textContent)")
            has = "id => window.jupyterapp.commands.hasCommand(id)"
            commands = {c: page.evaluate(f"({has})('nbgrader:{c}')") for c in NBGRADER_COMMANDS}
            browser.close()
    assert "The chapters" in text and "This machine" in text and "When you are stuck" in text
    # a learner's Lab has nbgrader's Assignments tab and none of the instructor's tools
    assert commands == NBGRADER_COMMANDS, commands
    for lab in chapters(ROOT / "labs")[:3]:
        assert any(lab.name[3:-6].split("-")[0] in link.lower() for link in links), links
