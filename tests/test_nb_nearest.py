"""Chapter 00's made-up RTT matrices: a right answer passes, each mistake fails and is named."""

import math
import random

import pandas as pd
import pytest

from kit.nb.checks import CheckFailed
from kit.nb.nearest import (
    ORIGIN,
    check_nearest,
    check_nearest_measured,
    check_saving,
    check_saving_measured,
    made_up_matrices,
    made_up_matrix,
)


def rows_of(matrix, user, pops):
    return matrix[(matrix["source"] == user) & matrix["target"].isin(pops)]


def nearest(matrix, user, pops, column="measured_ms"):
    rows = rows_of(matrix, user, pops)
    return rows.loc[rows[column].idxmin(), "target"]


def saving(matrix, user, pops):
    rtt = matrix.set_index(["source", "target"])["measured_ms"]
    return rtt[user, ORIGIN] - rtt[user, nearest(matrix, user, pops)]


def first_nan_loop(matrix, user, pops):
    best = None
    for row in rows_of(matrix, user, pops).itertuples():
        if best is None or row.measured_ms < best.measured_ms:
            best = row
    return best.target


MISTAKES = {
    "includes the origin": (
        lambda m, u, p: nearest(m, u, list(m["target"].unique())),
        "not a PoP",
    ),
    "configured": (lambda m, u, p: nearest(m, u, p, "configured_ms"), "lowest configured_ms"),
    "farthest": (
        lambda m, u, p: rows_of(m, u, p).sort_values("measured_ms").dropna().iloc[-1].target,
        "highest measured_ms",
    ),
    "rtt": (lambda m, u, p: rows_of(m, u, p)["measured_ms"].min(), "a number"),
    "prefix": (
        lambda m, u, p: nearest(m, u, [t for t in m["target"] if t.startswith("pop-")]),
        "not in `pops`",
    ),
    "hard-coded": (lambda m, u, p: {"user-tokyo": "pop-tokyo"}[u], "makes up users"),
    "nan first": (first_nan_loop, "every echo was lost"),
}


@pytest.mark.parametrize("seed", range(20))
def test_a_right_answer_passes(seed):
    cases = made_up_matrices(random.Random(seed))
    assert check_nearest(nearest, cases) == 18
    assert check_saving(saving, cases) == 18


@pytest.mark.parametrize("mistake", MISTAKES)
@pytest.mark.parametrize("seed", range(20))
def test_each_mistake_fails_and_is_named(mistake, seed):
    wrong, text = MISTAKES[mistake]
    with pytest.raises(CheckFailed) as failed:
        check_nearest(wrong, made_up_matrices(random.Random(seed)))
    assert text in str(failed.value)


def configured_saving(m, u, p):
    rtt = m.set_index(["source", "target"])["configured_ms"]
    return rtt[u, ORIGIN] - rtt[u, nearest(m, u, p)]


SAVING_MISTAKES = {
    "reversed": (lambda m, u, p: -saving(m, u, p), "reversed"),
    "abs": (lambda m, u, p: abs(saving(m, u, p)), "origin is nearer"),
    "configured": (configured_saving, "configured_ms"),
}


@pytest.mark.parametrize("mistake", SAVING_MISTAKES)
@pytest.mark.parametrize("seed", range(20))
def test_each_saving_mistake_fails_and_is_named(mistake, seed):
    wrong, text = SAVING_MISTAKES[mistake]
    with pytest.raises(CheckFailed) as failed:
        check_saving(wrong, made_up_matrices(random.Random(seed)))
    assert text in str(failed.value)


def test_matrices_have_no_ties_and_a_missing_and_an_unmeasured_pair():
    case = made_up_matrix(random.Random(7))
    m = case.matrix
    for user in case.users:
        rtts = m[m["source"] == user]["measured_ms"].dropna()
        assert rtts.is_unique
        assert m[(m["source"] == user)]["measured_ms"].isna().sum() == 1
    per_user = m.groupby("source").size()
    assert per_user.min() < per_user.max()  # some pairs missing
    assert math.isnan(m.iloc[0]["measured_ms"])


def test_the_measured_matrix_is_checked_against_the_expected_pops():
    m = pd.DataFrame(
        [
            ("u", "p1", 10.0, 10.2, 0),
            ("u", "p2", 20.0, 20.1, 0),
            ("u", ORIGIN, 8.0, 8.1, 0),
        ],
        columns=["source", "target", "configured_ms", "measured_ms", "lost"],
    )
    check_nearest_measured(nearest, m, ["p1", "p2"], {"u": "p1"})
    check_saving_measured(saving, m, ["p1", "p2"], {"u": "p1"})
    with pytest.raises(CheckFailed, match="not a PoP"):
        check_nearest_measured(lambda m, u, p: ORIGIN, m, ["p1", "p2"], {"u": "p1"})
    with pytest.raises(CheckFailed, match="reversed"):
        check_saving_measured(lambda m, u, p: -saving(m, u, p), m, ["p1", "p2"], {"u": "p1"})
