"""Generate the exercises in ``labs/`` from the solutions in ``solutions/``.

    python -m kit.nb.release            # write labs/NN-name.ipynb for every solution
    python -m kit.nb.release --check    # exit 1 if labs/ is not what release would write

Each ``labs/NN-name.ipynb`` is ``strip_notebook(solutions/NN-name.ipynb)``
(see ``kit.nb.notebooks``). Release never overwrites a learner's work: a lab
whose cells were edited, or that holds outputs, is left alone and reported (a
learner who wants a fresh copy runs ``python -m kit.nb.reset NN``, which keeps
theirs). ``--check`` is what the test suite runs to keep the two folders in sync.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from kit.nb.notebooks import chapters, is_edited, read_notebook, release_text

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ReleaseReport:
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # the learner's work, not overwritten
    stale: list[Path] = field(default_factory=list)  # --check: would change


def has_learner_work(lab: Path) -> bool:
    """True when a lab was edited or run (it has outputs): it belongs to the learner now."""
    nb = read_notebook(lab)
    ran = any(c.get("outputs") or c.get("execution_count") for c in nb.cells)
    return ran or is_edited(lab)


def release(root: Path = ROOT, check: bool = False) -> ReleaseReport:
    """Write (or with ``check``, only compare) every lab generated from its solution."""
    report = ReleaseReport()
    labs = root / "labs"
    for solution in chapters(root / "solutions"):
        lab = labs / solution.name
        text = release_text(solution)
        if lab.exists() and lab.read_text() == text:
            report.unchanged.append(lab)
        elif check:
            report.stale.append(lab)
        elif lab.exists() and has_learner_work(lab):
            report.kept.append(lab)
        else:
            labs.mkdir(exist_ok=True)
            lab.write_text(text)
            report.written.append(lab)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kit.nb.release",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--check", action="store_true", help="only check that labs/ is current")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository root")
    args = parser.parse_args(argv)
    report = release(args.root, check=args.check)
    for lab in report.written:
        print(f"wrote {lab.relative_to(args.root)}")
    for lab in report.kept:
        print(
            f"kept {lab.relative_to(args.root)}: it has a learner's work "
            f"(python -m kit.nb.reset {lab.name[:2]} gives a fresh copy and keeps it)"
        )
    if report.stale:
        names = ", ".join(str(lab.relative_to(args.root)) for lab in report.stale)
        print(f"out of date: {names}\nrun: python -m kit.nb.release", file=sys.stderr)
        return 1
    if args.check:
        print(f"labs/ is up to date ({len(report.unchanged)} notebooks)")
    return 1 if report.kept else 0


if __name__ == "__main__":
    sys.exit(main())
