"""A history checker in the style of Jepsen: what clients saw, checked for session guarantees.

    history = History()
    op = history.start("ada", "write", "cart:ada", "v17")   # before the request goes out
    history.end(op, txid=42)                                # after it came back
    op = history.start("ada", "read", "cart:ada")
    history.end(op, value="v17")
    history.violations()     # a table: one row per broken guarantee
    history.summary()        # operations, reads, violations of each kind

A database's own claims (its positions, its lag) are not evidence that a client
was served well. The evidence is the history: every operation each client made,
with when it started and ended as the client saw it, what each write was
acknowledged as (its txid, its place in commit order) and what each read
returned. Every write writes a value no other write writes, so a value read
names the write it came from.

Two guarantees of session consistency (Terry et al., 1994) are checked, per
session and per key:

- **read your writes**: a read that starts after one of the session's own
  writes to the key has ended must return that write or a later one (in commit
  order);
- **monotonic reads**: a read that starts after another read of the same key by
  the same session has ended must not return an older write than that one did.

"Later" is by txid, the order the primary committed in. A read that returns a
value no acknowledged write wrote (a write still in flight, or one that failed)
is reported too, as `unknown value`. An operation that never ended (a timeout)
constrains nothing: the checker only uses what the client knew.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

NEVER_WRITTEN = 0  # the txid a read of a missing key stands for (before every write)


@dataclass
class Op:
    """One operation as a client saw it."""

    id: int
    session: str
    kind: str  # "write" or "read"
    key: str
    value: Any = None  # written, or read (None: the key was missing)
    start: float = 0.0
    end: float | None = None  # None: no answer came
    txid: int | None = None  # a write's place in commit order, once acknowledged


@dataclass
class History:
    """The operations of every client, in the order they were recorded."""

    ops: list[Op] = field(default_factory=list)
    clock: Any = time.monotonic

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)

    def start(self, session: str, kind: str, key: str, value: Any = None) -> Op:
        """Record an operation as it is sent (a write with the value it writes)."""
        if kind not in ("read", "write"):
            raise ValueError(f"kind is 'read' or 'write', not {kind!r}")
        op = Op(next(self._ids), session, kind, key, value, start=self.clock())
        self.ops.append(op)
        return op

    def end(self, op: Op, *, value: Any = None, txid: int | None = None) -> None:
        """Record its answer: the value a read returned, the txid a write got."""
        op.end = self.clock()
        if op.kind == "read":
            op.value = value
        else:
            op.txid = txid

    def violations(self) -> pd.DataFrame:
        """One row per broken guarantee: kind, session, key, the read, expected, got."""
        order = {op.value: op.txid for op in self.ops if op.kind == "write" and op.txid}
        rows = []
        done = [op for op in self.ops if op.end is not None]
        streams: dict[tuple[str, str], list[Op]] = {}
        for op in done:
            streams.setdefault((op.session, op.key), []).append(op)
        for ops in streams.values():  # one session's operations on one key
            reads = [op for op in ops if op.kind == "read"]
            writes = [op for op in ops if op.kind == "write" and op.txid]
            for read in reads:
                got = NEVER_WRITTEN if read.value is None else order.get(read.value)
                if got is None:
                    rows.append(_row("unknown value", read, "a value some write wrote", read.value))
                    continue
                mine = [w.txid for w in writes if w.end is not None and w.end < read.start]
                if mine and got < max(mine):
                    rows.append(_row("read your writes", read, max(mine), got))
                seen = [
                    order.get(r.value, NEVER_WRITTEN) if r.value is not None else NEVER_WRITTEN
                    for r in reads
                    if r.end is not None and r.end < read.start
                ]
                if seen and got < max(seen):
                    rows.append(_row("monotonic reads", read, max(seen), got))
        columns = ["guarantee", "session", "key", "op", "at", "expected at least", "got"]
        return pd.DataFrame(rows, columns=columns)

    def summary(self) -> pd.Series:
        """How many operations, reads and writes, and violations of each guarantee."""
        found = self.violations()["guarantee"].value_counts()
        return pd.Series(
            {
                "operations": len(self.ops),
                "reads": sum(op.kind == "read" for op in self.ops),
                "writes": sum(op.kind == "write" for op in self.ops),
                "no answer": sum(op.end is None for op in self.ops),
                "read your writes violations": int(found.get("read your writes", 0)),
                "monotonic reads violations": int(found.get("monotonic reads", 0)),
                "unknown values": int(found.get("unknown value", 0)),
            }
        )


def _row(guarantee: str, read: Op, expected: Any, got: Any) -> dict[str, Any]:
    return {
        "guarantee": guarantee,
        "session": read.session,
        "key": read.key,
        "op": read.id,
        "at": read.start,
        "expected at least": expected,
        "got": got,
    }
