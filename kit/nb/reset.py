"""Give a learner a fresh copy of an exercise, keeping theirs.

    python -m kit.nb.reset 03        # labs/03-api-gateway.ipynb is fresh again;
                                     # the old one is now labs/03-api-gateway.20250101-120000.ipynb

From a notebook cell: `from kit.nb import reset_lab; reset_lab("03")`. From
JupyterLab's terminal, which opens in `labs/`: `python -m kit.nb.reset 03`
(`make lab` puts the venv's `python` first on the PATH). Close the chapter's
tab first: a tab left open would save its old content over the fresh copy.

The fresh copy is generated from the chapter's solution exactly as
``kit.nb.release`` does. The learner's file is never deleted or overwritten: it
is renamed with a timestamp first (and an unedited, unrun lab is simply left
as it is, since it is already fresh).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from kit.nb.notebooks import chapters, release_text

ROOT = Path(__file__).resolve().parents[2]


class ResetError(LookupError):
    """No such chapter; the message lists the ones there are."""


def solution_for(chapter: str, root: Path = ROOT) -> Path:
    """The solution notebook of chapter ``NN`` (``3`` and ``03`` both work)."""
    all_chapters = chapters(root / "solutions")
    number = f"{int(chapter):02d}" if chapter.isdigit() else chapter
    found = [p for p in all_chapters if p.name[:2] == number]
    if not found:
        known = ", ".join(p.stem for p in all_chapters) or "none"
        raise ResetError(f"no chapter {chapter!r}; chapters: {known}")
    return found[0]


def reset(chapter: str, root: Path = ROOT) -> tuple[Path, Path | None]:
    """Write a fresh ``labs/NN-name.ipynb``; return it and where the learner's copy went."""
    solution = solution_for(chapter, root)
    lab = root / "labs" / solution.name
    text = release_text(solution)
    kept = None
    if lab.exists():
        if lab.read_text() == text:
            return lab, None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        kept = lab.with_name(f"{lab.stem}.{stamp}.ipynb")
        n = 1
        while kept.exists():  # two resets in one second
            kept = lab.with_name(f"{lab.stem}.{stamp}-{n}.ipynb")
            n += 1
        lab.rename(kept)
    lab.parent.mkdir(exist_ok=True)
    lab.write_text(text)
    return lab, kept


def reset_lab(chapter: str, root: Path = ROOT) -> Path:
    """Reset from a notebook cell: write the fresh copy and say what happened."""
    lab, kept = reset(chapter, root)
    print(describe(lab, kept, root))
    return lab


def describe(lab: Path, kept: Path | None, root: Path) -> str:
    lines = [f"your work is kept in {kept.relative_to(root)}"] if kept else []
    lines.append(f"{lab.relative_to(root)} is a fresh copy of the exercise.")
    lines.append(
        f"If {lab.name} is open in a tab, close that tab without saving "
        "(File → Close Tab, then Discard), then open the file again."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kit.nb.reset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("chapter", help="the chapter number, e.g. 03")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository root")
    args = parser.parse_args(argv)
    try:
        lab, kept = reset(args.chapter, args.root)
    except ResetError as e:
        print(e, file=sys.stderr)
        return 2
    print(describe(lab, kept, args.root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
