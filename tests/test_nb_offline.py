"""Chapter 10's kit helpers without a world: the judges of the two checks on made-up runs
(each mistake named in its message), the operations a check makes up, the program it runs on
a device, and the tables, plots and claims from made-up measurements (also while an exercise
is unwritten).

The checks themselves run on a world in the chapter's notebook tests and against the wrong
solutions in `tests/wrong/10-offline-sync/`.
"""

from __future__ import annotations

import io
import random
from collections import Counter

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from kit.nb.checks import CheckFailed
from kit.nb.claims import what_you_measured
from kit.nb.hints import load_hints
from kit.nb.offline_checks import (
    HARNESS,
    NoteRun,
    OutboxRun,
    batches,
    judge_note,
    judge_outbox,
    make_ops,
)
from kit.nb.offline_plots import (
    edits_lost,
    merge_table,
    offline_claims,
    outbox_summary,
    plot_browser_run,
    plot_merge,
    plot_pages,
)

matplotlib.use("Agg")
pytestmark = pytest.mark.unit


def outbox_run(ops=20, **changes) -> OutboxRun:
    """A run in which every operation was sent once with its key and applied once, in order."""
    operations = make_ops(5, ops)
    attempts = [[op.text, f'"k{op.index}"', 201] for op in operations]
    applied = {op.text: [op.index + 1] for op in operations}
    run = OutboxRun(operations, 5, attempts, applied, 0, None, None, None, 1.0)
    for name, value in changes.items():
        setattr(run, name, value)
    return run


def rejected(run, judge=judge_outbox) -> str:
    with pytest.raises(CheckFailed) as failed:
        judge(run)
    return str(failed.value)


def test_make_ops_are_unique_mostly_puts_and_new_each_seed():
    ops = make_ops(1, 400)
    assert len({op.text for op in ops}) == 400
    assert 0.1 < sum(op.method == "POST" for op in ops) / 400 < 0.3
    assert all(op.path == f"/notes/{op.note}" for op in ops if op.method == "PUT")
    assert {op.text for op in make_ops(2, 10)}.isdisjoint(op.text for op in ops)
    parts = batches(ops, random.Random(3))
    assert [op for part in parts for op in part] == ops and max(map(len, parts)) <= 8


def test_the_harness_is_a_program_after_the_learners_class():
    compile("class Outbox: pass\n" + HARNESS.replace("JOB_TEXT", repr("{}")), "job", "exec")


def test_a_correct_run_passes():
    judge_outbox(outbox_run())


def test_applied_twice_says_how_the_retries_were_keyed():
    run = outbox_run()
    op = run.ops[3]
    run.applied[op.text] = [4, 30]
    run.attempts += [[op.text, None, 201]]
    for attempt in run.attempts:
        if attempt[0] == op.text:
            attempt[1] = None
    assert "without an Idempotency-Key" in rejected(run)
    run.attempts[-1][1], run.attempts[3][1] = '"a"', '"b"'
    assert "a retry carried a new Idempotency-Key" in rejected(run)


def test_lost_operations_say_what_happened_to_them():
    run = outbox_run()
    op = run.ops[5]
    del run.applied[op.text]
    run.attempts[5][2] = 503
    assert "a 5xx means the server did not apply it" in rejected(run)
    # Every lost one got a 503, but another's answer was lost (it was applied) and it was
    # never sent again: the outbox let go before the answer, not because of the 503.
    run.attempts[7][2] = "TimeoutError"
    assert "op 7 was never sent again after its answer was lost: an entry may leave" in (
        rejected(run)
    )
    run.attempts[7][2] = 201
    run.attempts[5][2] = "RemoteDisconnected"
    assert "only after the server answered it" in rejected(run)
    run.restarted_after, run.restarted_at = 10, 10
    assert "lost across the restart" in rejected(run)
    run.restarted_after = 3  # the lost one was added after the restart: not the cause
    assert "only after the server answered it" in rejected(run)
    del run.attempts[5]
    run.restarted_after = None
    assert "never sent at all" in rejected(run)


def test_order_per_note_and_what_is_left():
    run = outbox_run()
    note = Counter(op.note for op in run.ops if op.note).most_common(1)[0][0]
    first, later = [op for op in run.ops if op.note == note][:2]
    assert later.index > first.index
    run.applied[first.text], run.applied[later.text] = [99], [1]
    assert f"was applied before op {first.index}" in rejected(run)
    assert "pending() says 2" in rejected(outbox_run(pending=2))
    assert "Traceback" in rejected(outbox_run(error="Traceback...\nValueError: x"))


def note_run(**changes) -> NoteRun:
    base = "milk tea rice"
    markers = ["<a0tea>", "<b0oats>"]
    merged = "<a0tea>milk ta rice<b0oats>"  # "e" of "tea" deleted
    run = NoteRun(
        1, base, {"a": merged, "b": merged}, merged, markers, 1, 3,
        [{"device": "a", "round": 1, "sent": 40, "received": 20, "requests": 3, "ms": 90.0},
         {"device": "b", "round": 1, "sent": 30, "received": 50, "requests": 3, "ms": 95.0}],
        120,
        {"a": [("insert", 0, "<a0tea>"), ("delete", 14, 1)], "b": [("insert", 13, "<b0oats>")]},
    )  # fmt: skip
    for name, value in changes.items():
        setattr(run, name, value)
    return run


def test_the_note_judge_names_each_property():
    judge_note(note_run())
    twice = "<a0tea><a0tea>milk ta rice<b0oats>"
    assert "applied twice" in rejected(note_run(texts={"a": twice, "b": twice}), judge_note)
    lost = "<a0tea>milk ta rice"
    assert "1 edits lost" in rejected(note_run(newcomer=lost), judge_note)
    apart = {"a": "<a0tea>milk ta rice<b0oats>", "b": "<b0oats><a0tea>milk ta rice"}
    assert "different texts" in rejected(note_run(texts=apart), judge_note)
    back = "<a0tea>milk tea rice<b0oats>"
    says = rejected(note_run(texts={"a": back, "b": back}, newcomer=back), judge_note)
    assert "deleted letters came back" in says


PAGES = pd.DataFrame(
    [
        {"setup": s, "network": n, "ms": ms, "parts ok": ok, "usable": ok == "5/5"}
        for s, rows in {
            "no service worker": [("online", 400, "5/5"), ("offline", 3, "0/5"),
                                  ("lie-fi", 4000, "0/5")],
            "NetworkFirst, no timeout": [("online", 410, "5/5"), ("offline", 9, "5/5"),
                                         ("lie-fi", 4000, "0/5")],
            "NetworkFirst, 1 s timeout": [("online", 405, "5/5"), ("offline", 9, "5/5"),
                                          ("lie-fi", 2010, "5/5")],
            "CacheFirst (precached)": [("online", 8, "5/5"), ("offline", 8, "5/5"),
                                       ("lie-fi", 8, "5/5")],
        }.items()
        for n, ms, ok in rows
    ]
)  # fmt: skip


def test_plots_tables_and_claims_from_measurements_and_from_nothing():
    assert plot_pages(PAGES).axes
    assert plot_merge(note_run(), {"lost": 2, "lost inserts": 1, "undone deletes": 1}).axes
    assert plot_merge(None, {}).axes
    assert outbox_summary(None).empty and merge_table(None, {}).empty
    summary = outbox_summary(outbox_run())
    assert summary.loc["your outbox", "applied once"] == 20
    lww = {"edits": 3, "lost inserts": 1, "undone deletes": 1, "lost": 2, "winner": "b"}
    assert merge_table(note_run(), lww).iloc[0]["inserts lost"] == 1
    replay = {"operations": 100, "sync s": 1.5, "request body bytes at the server": 9000}
    table = what_you_measured(offline_claims(PAGES, outbox_run(), replay, note_run(), lww))
    text = table.to_string()
    assert "4000 ms, 0/5 parts" in text and "2010 ms, 5/5 parts" in text
    assert "20 operations" in text and "last write wins lost 2" in text
    assert "100 queued operations in 1.5 s" in text
    bare = what_you_measured(offline_claims(PAGES, None, {}, None, {}))
    assert len(bare) == 2


def test_the_browser_run_is_drawn_from_its_screenshots_and_claimed_from_its_counts():
    png = io.BytesIO()
    plt.imsave(png, [[0.0, 1.0], [1.0, 0.0]], format="png")
    ms = {"first visit, online": 900.0, "reload, online": 40.0, "reload, link cut": 30.0}
    run = {"device": "user-tokyo", "ms": ms, "states": ["queued"] * 3, "on server while cut": 0}
    run |= {"offline png": png.getvalue(), "online png": png.getvalue(), "sync s": 2.4}
    run |= {"applied": {"a": 1, "b": 1, "c": 2}, "replayed by": "sync-event", "memory MB": 900}
    fig = plot_browser_run(run)
    assert len(fig.axes) == 2 and "sync-event" in fig.axes[1].get_title()
    text = what_you_measured(offline_claims(PAGES, None, {}, None, {}, run)).to_string()
    assert "3 notes written offline, 3 queued, 0 on the server while cut, 2 applied once" in text
    assert "2.4 s after" in text and "900 MB" in text


def test_edits_lost_are_counted_from_the_merged_text_for_both_merges():
    run = note_run()
    assert edits_lost(run, run.newcomer) == {"lost inserts": 0, "undone deletes": 0, "lost": 0}
    # a word missing and the deleted "e" back: what last write wins does
    assert edits_lost(run, "<a0tea>milk tea rice")["lost"] == 2
    crdt_lost_a_word = note_run(newcomer="milk ta rice<b0oats>")
    lww = {"edits": 3, "lost inserts": 1, "undone deletes": 1, "lost": 2, "winner": "b"}
    assert merge_table(crdt_lost_a_word, lww).iloc[1]["inserts lost"] == 1
    claims = what_you_measured(offline_claims(PAGES, None, {}, crdt_lost_a_word, lww))
    assert "CRDT lost 1" in claims.to_string()


def test_hints_have_three_levels_for_each_exercise():
    hints = load_hints()
    for name in ("10-routes", "10-outbox", "10-note"):
        assert len(hints[name]["levels"]) == 3


def test_a_route_failure_names_the_strategy_that_does_not_fall_back():
    from kit.nb.offline_checks import _why

    shell = {"match": "/app/", "strategy": "CacheFirst"}
    assert "no route matches /notes" in _why("offline", "/notes", [shell])
    no_timeout = [shell, {"match": "/notes", "strategy": "NetworkFirst"}]
    assert "without network_timeout_s" in _why("lie-fi", "/notes", no_timeout)
    only = [{"match": "/app/", "strategy": "NetworkOnly"}]
    assert "NetworkOnly on /app/ never falls back" in _why("offline", "/app/", only)
