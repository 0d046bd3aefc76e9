"""The chapter map and the start page (kit/nb/chapters.py), read from the real chapters."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from kit.cli import main as kit_main
from kit.nb.chapters import chapter_map, read_chapter, start_page
from kit.nb.notebooks import chapters

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.unit


def test_every_chapter_is_on_the_map_with_its_title_time_and_what_it_teaches():
    found = chapter_map(ROOT / "solutions")
    assert [c.file for c in found] == [p.name for p in chapters(ROOT / "solutions")]
    for chapter in found:
        assert chapter.file.startswith(chapter.number) and chapter.title
        assert "minutes" in chapter.time_needed, chapter
        assert len(chapter.learn) >= 3 and all(len(item) > 20 for item in chapter.learn)


def test_a_chapter_without_its_heading_is_named(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Something else")])
    path = tmp_path / "42-odd.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="42-odd.ipynb"):
        read_chapter(path)


def test_the_start_page_links_every_lab_and_shows_the_machine(tmp_path):
    state = [("links", True, "delayline: no netem"), ("leftovers", False, "w-1 -> clean")]
    page = start_page(ROOT / "labs", state)
    for chapter in chapter_map(ROOT / "labs"):
        assert f"[{chapter.title}]({chapter.file})" in page
        assert (ROOT / "labs" / chapter.file).exists()
    assert "| ✓ | links | delayline: no netem |" in page
    assert "| ✗ | leftovers | w-1 -> clean |" in page


def test_kit_start_page_writes_it_beside_the_labs(tmp_path, capsys):
    for lab in chapters(ROOT / "labs")[:2]:
        (tmp_path / lab.name).write_bytes(lab.read_bytes())
    assert kit_main(["start-page", str(tmp_path / "START.md")]) == 0
    written = (tmp_path / "START.md").read_text()
    assert written.count("](0") == 2 and "## This machine" in written
