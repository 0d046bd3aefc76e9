"""The chapter map, read from the chapters themselves, and the start page built on it.

Every chapter opens with the same cell (CHAPTERS.md): a `# NN · Title` heading,
an introduction, a "**You will learn**" list and a "**Time needed:**" line. So
the map of the textbook is not kept anywhere by hand: `chapter_map` reads those
parts of each notebook, and a new chapter appears on the map when it is added.

`start_page` is what JupyterLab opens on (`vagrant/lab.sh` writes it to
`labs/START.md` each time the lab starts): the map, what each chapter needs
beyond the kit itself, the state of this machine (from `kit.cli.machine_state`,
the same facts `python -m kit doctor` prints) and what to do when stuck.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from kit.nb.notebooks import chapters, read_notebook

TITLE_RE = re.compile(r"^#\s+(\d{2})\s+·\s+(.+?)\s*$", re.MULTILINE)
TIME_RE = re.compile(r"\*\*Time needed:\*\*\s*(.+?)(?:\.|$)", re.MULTILINE)

# What a chapter needs beyond the kit's default world and services, by number.
NEEDS = {
    "01": "Locust (a load test); about 1 GB free memory",
    "03": "the identity service",
    "06": "the RUM collector; Locust",
    "07": "the replicated database (SQLite, three hosts)",
    "08": "the KV store and actors",
    "09": "Mosquitto (Debian's) on the factory hosts",
    "10": "pycrdt; the devices' proxies run on user hosts; Chromium for the real PWA (section 6)",
}


@dataclass(frozen=True)
class Chapter:
    """One chapter as its first cell describes it."""

    number: str
    title: str
    file: str
    time_needed: str
    learn: list[str] = field(default_factory=list)


def read_chapter(path: Path) -> Chapter:
    """The number, title, time and "you will learn" list of a chapter notebook."""
    first = read_notebook(path).cells[0].source
    title = TITLE_RE.search(first)
    if title is None:
        raise ValueError(f"{path.name}: its first cell does not start with '# NN · Title'")
    spent = TIME_RE.search(first)
    _, _, after = first.partition("**You will learn**")
    learn, current = [], ""
    for line in after.splitlines():
        if line.startswith("- "):
            if current:
                learn.append(current)
            current = line[2:].strip()
        elif line.startswith("  ") and current:
            current += " " + line.strip()
        elif line.strip() and current:
            break
    if current:
        learn.append(current)
    return Chapter(
        title.group(1), title.group(2), path.name, spent.group(1) if spent else "?", learn
    )


def chapter_map(folder: Path) -> list[Chapter]:
    """Every chapter in `folder` (solutions/ or labs/), in order."""
    return [read_chapter(path) for path in chapters(folder)]


def start_page(folder: Path, state: list[tuple[str, bool, str]]) -> str:
    """The start page (Markdown): the map, each chapter's needs, this machine, help."""
    lines = [
        "# Edge Lab",
        "",
        "A textbook you run: each chapter starts an emulated world of PoPs, origins and",
        "users in real cities, measures what an edge pattern buys, and asks you to build it.",
        "Open a chapter in the file browser on the left and run it from the top.",
        "",
        "## The chapters",
        "",
        "| | chapter | time | needs |",
        "|---|---|---|---|",
    ]
    for chapter in chapter_map(folder):
        needs = NEEDS.get(chapter.number, "the default world")
        link = f"[{chapter.title}]({chapter.file})"
        lines.append(f"| {chapter.number} | {link} | {chapter.time_needed} | {needs} |")
    lines += [
        "",
        "Take them in order: each chapter uses what the ones before it taught.",
        "",
        f"## This machine (at {time.strftime('%H:%M')}, when the lab started)",
        "",
        "| | what | state |",
        "|---|---|---|",
    ]
    for what, ok, detail in state:
        lines.append(f"| {'✓' if ok else '✗'} | {what} | {detail.replace('|', '/')} |")
    lines += [
        "",
        "Run `python -m kit doctor` in a terminal (*File → New → Terminal*) for the",
        "state now.",
        "",
        "## When you are stuck",
        "",
        '- **An exercise:** `hint("NN-name")` in the chapter shows the next level of',
        "  hints each time you call it; the check's message says which level helps.",
        "- **A cell hangs or the world misbehaves:** *Kernel → Restart Kernel*, then run",
        "  the chapter again from the top. A restarted kernel's world is removed for you.",
        "- **Leftovers** (✗ above): run `python -m kit clean` in a terminal; it removes",
        "  only what crashed worlds left behind.",
        "- **Your edits to a lab:** they are kept; `python -m kit.nb.reset NN` gives you",
        "  a fresh copy of chapter NN and keeps yours beside it.",
        "",
    ]
    return "\n".join(lines)
