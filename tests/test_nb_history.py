"""The history checker (kit/nb/history.py) finds exactly the broken session guarantees."""

from __future__ import annotations

import itertools

import pytest

from kit.nb.history import History

pytestmark = pytest.mark.unit


def history() -> History:
    ticks = itertools.count()
    return History(clock=lambda: float(next(ticks)))  # every start and end a later instant


def write(h: History, session: str, key: str, value: str, txid: int | None) -> None:
    h.end(h.start(session, "write", key, value), txid=txid)


def read(h: History, session: str, key: str, value: str | None) -> None:
    h.end(h.start(session, "read", key), value=value)


def guarantees(h: History) -> list[tuple[str, str, object, object]]:
    found = h.violations()
    columns = ["guarantee", "session", "expected at least", "got"]
    return [tuple(row) for row in found[columns].itertuples(index=False)]


def test_a_clean_history_has_no_violations():
    h = history()
    write(h, "ada", "k", "v1", 1)
    read(h, "ada", "k", "v1")
    write(h, "bob", "k", "v2", 2)
    read(h, "ada", "k", "v1")  # bob's write is not ada's: she may still see v1
    read(h, "ada", "k", "v2")
    assert guarantees(h) == []
    assert h.summary()["operations"] == 5


def test_reading_an_older_write_after_your_own_is_a_read_your_writes_violation():
    h = history()
    write(h, "ada", "k", "v1", 1)
    write(h, "ada", "k", "v2", 5)
    read(h, "ada", "k", "v1")
    read(h, "ada", "other", None)  # another key: nothing expected
    assert guarantees(h) == [("read your writes", "ada", 5, 1)]


def test_a_missing_key_after_your_write_is_a_violation_too():
    h = history()
    write(h, "ada", "k", "v1", 3)
    read(h, "ada", "k", None)
    assert guarantees(h) == [("read your writes", "ada", 3, 0)]


def test_a_read_overlapping_the_write_may_see_either():
    h = history()
    op = h.start("ada", "write", "k", "v1")
    read(h, "ada", "k", None)  # started before the write was acknowledged
    h.end(op, txid=1)
    assert guarantees(h) == []


def test_going_back_in_time_between_reads_is_a_monotonic_reads_violation():
    h = history()
    write(h, "bob", "k", "v1", 1)
    write(h, "bob", "k", "v2", 2)
    read(h, "ada", "k", "v2")
    read(h, "ada", "k", "v1")  # ada saw v2, then v1
    read(h, "eve", "k", "v1")  # eve never saw v2: fine
    assert guarantees(h) == [("monotonic reads", "ada", 2, 1)]


def test_values_no_acknowledged_write_wrote_are_reported_and_timeouts_constrain_nothing():
    h = history()
    h.start("ada", "write", "k", "v9")  # never acknowledged
    read(h, "ada", "k", "v9")
    write(h, "ada", "k", "v1", None)  # answered, but refused (no txid)
    read(h, "ada", "k", None)
    found = h.summary()
    assert found["unknown values"] == 1 and found["read your writes violations"] == 0
    assert found["no answer"] == 1
