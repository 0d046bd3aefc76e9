"""How long each chapter's solution takes to execute (target: under 90 s each).

Runs every ``solutions/NN-*.ipynb`` top to bottom in a fresh kernel, as a learner's
"Run All" would, and prints a table. Run as root: ``make bench``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kit.nb.notebooks import chapters  # noqa: E402

TARGET_S = 90


def main() -> None:
    rows = []
    for path in chapters(ROOT / "solutions"):
        nb = nbformat.read(path, as_version=4)
        t0 = time.monotonic()
        NotebookClient(
            nb,
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
        took = time.monotonic() - t0
        rows.append((path.name, took, "ok" if took < TARGET_S else f"over {TARGET_S} s"))
    width = max(len(r[0]) for r in rows)
    print(f"{'chapter'.ljust(width)}  seconds  target < {TARGET_S} s")
    for name, took, verdict in rows:
        print(f"{name.ljust(width)}  {took:7.1f}  {verdict}")


if __name__ == "__main__":
    main()
