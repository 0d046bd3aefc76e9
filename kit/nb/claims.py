"""What you measured: the textbook's claims next to this run's numbers.

    what_you_measured([
        Claim("Tokyo–Ashburn RTT", "≈150 ms", f"{measured:.0f} ms",
              "the world's table is WonderNetwork's median; yours adds the access links"),
        ...
    ])

Every chapter ends with this table: the claim, the number the textbook gives,
the number this run measured (formatted by the chapter from its own results),
and why the two differ. It is a pandas DataFrame, so a notebook shows it as a
table and a test can read it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import astuple, dataclass

import pandas as pd

COLUMNS = ["the textbook", "this run", "why they differ"]


@dataclass(frozen=True)
class Claim:
    """One row: what is claimed, the textbook's number, this run's, and why they differ."""

    claim: str
    textbook: str
    measured: str
    why: str = ""


def what_you_measured(claims: Iterable[Claim]) -> pd.DataFrame:
    """The chapter's closing table, one row per claim."""
    rows = [astuple(c) for c in claims]
    if not rows:
        raise ValueError("what_you_measured needs at least one Claim")
    table = pd.DataFrame(rows, columns=["claim", *COLUMNS]).set_index("claim")
    table.index.name = None
    return table
