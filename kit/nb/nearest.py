"""Chapter 00's check: a learner's nearest-PoP functions, tried on RTT matrices made up per run.

    cases = made_up_matrices(random.Random())
    check_nearest(nearest_pop, cases)                     # inside ``with check(...)``
    check_nearest_measured(nearest_pop, matrix, pops, expected)
    check_saving(saving_ms, cases)
    check_saving_measured(saving_ms, matrix, pops, expected)

A made-up matrix has the columns of ``kit.nb.rtt_matrix`` (source, target,
configured_ms, measured_ms, lost) for users and PoPs with names invented on
each run, and is built so that each mistake a learner makes gives a wrong
answer for at least one user: a server that is not a PoP is strictly nearer
than every PoP, the configured RTTs rank the PoPs differently from the
measured ones, some pairs are missing, a pair whose echoes were all lost comes
first, and no two RTTs of a user are equal. Each case knows its answers by
construction. When an answer is wrong, the failure names the mistake it looks
like (a server that is not a PoP, configured instead of measured, the farthest
PoP, a number instead of a name, a user the code does not know, ...).
"""

from __future__ import annotations

import math
import numbers
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from kit.nb.checks import CheckFailed

ECHOES = 20  # pings per pair, as the chapter measures
ORIGIN = "origin"
HINT = 'hint("00-nearest")'
SAVING_HINT = 'hint("00-saving")'


@dataclass
class Case:
    """One made-up matrix, its PoPs and users, and what the right answers are."""

    matrix: pd.DataFrame
    pops: list[str]
    users: list[str]
    nearest: dict[str, str]  # user -> the PoP with the lowest measured RTT
    saving: dict[str, float]  # user -> RTT to the origin minus RTT to that PoP
    saving_configured: dict[str, float]  # the same from configured_ms: a mistake
    traps: dict[str, dict[str, str]] = field(default_factory=dict)  # user -> answer -> mistake


def _name(rng: random.Random, prefix: str, taken: set[str]) -> str:
    while True:
        name = f"{prefix}-{rng.randrange(16**4):04x}"
        if name not in taken:
            taken.add(name)
            return name


def made_up_matrix(rng: random.Random) -> Case:
    """A matrix with fresh names and RTTs, where every typical mistake shows (see module doc)."""
    taken: set[str] = set()
    # PoPs are named as a provider might; a server that is not a PoP is called pop-…:
    # only the list `pops` tells a PoP.
    pops = [_name(rng, rng.choice(["edge", "site", "cdn"]), taken) for _ in range(5)]
    others = [ORIGIN, _name(rng, "db", taken), _name(rng, "pop-origin", taken)]
    users = [_name(rng, "user", taken) for _ in range(6)]
    rows: list[dict[str, Any]] = []
    nearest: dict[str, str] = {}
    saving: dict[str, float] = {}
    saving_configured: dict[str, float] = {}
    traps: dict[str, dict[str, str]] = {}
    # Which non-PoP server is strictly nearer than every PoP, user by user (None: no server).
    closer = [ORIGIN, others[1], others[2], None, ORIGIN, None]
    rng.shuffle(closer)
    for i, user in enumerate(users):
        # Distinct RTTs for every target of this user, 0.1 ms apart at least.
        values = sorted(rng.sample(range(30, 2500), len(pops) + len(others) + 2))
        values = [v / 10 for v in values]
        order = rng.sample(pops, len(pops))
        best, config_trap, unmeasured, *rest = order
        server = closer[i]
        measured: dict[str, float] = {}
        if server is not None:
            measured[server] = values.pop(0)  # strictly below every PoP
        measured[best] = values.pop(0)
        measured[config_trap] = values.pop(0)
        for target in rest + [t for t in others if t != server]:
            measured[target] = values.pop(rng.randrange(len(values)))
        missing = rest[-1] if i % 2 else None  # some pairs were never measured at all
        configured_of: dict[str, float] = {}
        for target, rtt in measured.items():
            if target == missing:
                continue
            # Within 1 ms of measured; the origin's and the best PoP's gaps differ (>= 0.1 ms).
            offset = {best: (0.1, 0.4), ORIGIN: (0.6, 0.9)}.get(target, (0.1, 0.9))
            configured = round(rtt - rng.uniform(*offset), 1)
            if target == config_trap:  # ranked first by configured_ms, not by measured_ms
                configured = round(measured[best] - 2.0 - rng.uniform(0, 1), 1)
            lost = rng.choice([0, 0, 0, 1, 2]) if target not in (best, server) else 0
            rows.append(_row(user, target, configured, rtt, lost))
            configured_of[target] = configured
        # Every echo lost: no measured_ms (NaN), although configured looks fine.
        rows.insert(0, _row(user, unmeasured, round(measured[best] + 1.5, 1), math.nan, ECHOES))
        pop_rtts = {p: measured[p] for p in pops if p != missing and p != unmeasured}
        nearest[user] = best
        saving[user] = round(measured[ORIGIN] - measured[best], 6)
        saving_configured[user] = round(configured_of[ORIGIN] - configured_of[best], 6)
        traps[user] = {
            config_trap: "the PoP with the lowest configured_ms; the nearest is the lowest "
            "measured_ms",
            max(pop_rtts, key=pop_rtts.__getitem__): "the PoP with the highest measured_ms "
            "(the farthest), not the lowest",
            unmeasured: f"{unmeasured!r} was never measured from {user!r}: every echo was "
            "lost, so its measured_ms is NaN (NaN < x and x < NaN are both False)",
        }
        if server is not None:
            traps[user][server] = (
                f"{server!r} is nearer than every PoP for this user, but it is not a PoP: "
                "leave out every target that is not in `pops`"
            )
    head = [r for r in rows if math.isnan(r["measured_ms"])]
    tail = [r for r in rows if not math.isnan(r["measured_ms"])]
    rng.shuffle(head)
    rng.shuffle(tail)
    matrix = pd.DataFrame(head + tail, columns=list(_row("", "", 0, 0, 0)))
    return Case(matrix, pops, users, nearest, saving, saving_configured, traps)


def made_up_matrices(rng: random.Random, count: int = 3) -> list[Case]:
    """``count`` fresh cases."""
    return [made_up_matrix(rng) for _ in range(count)]


def _row(source: str, target: str, configured: float, measured: float, lost: int) -> dict:
    return {
        "source": source,
        "target": target,
        "configured_ms": configured,
        "measured_ms": measured,
        "lost": lost,
    }


def _call(fn: Callable, what: str, *args: Any, hint: str = HINT) -> Any:
    """Call the learner's function; an exception becomes a failure that says where."""
    try:
        return fn(*args)
    except (NotImplementedError, NameError):
        raise
    except Exception as error:  # the learner's code may raise anything
        raise CheckFailed(
            what,
            "an answer",
            f"{type(error).__name__}: {error}",
            hint="the check makes up users and PoPs of its own, with new names on each "
            "run, and leaves some pairs out: use only the arguments (matrix, user, pops), "
            f"not the chapter's names, and expect a pair to have no row; {hint} helps",
        ) from None


def _show(value: Any) -> str:
    """A learner's answer as the message shows it (a NumPy number as a plain one)."""
    return f"{float(value):.2f}" if _is_number(value) else repr(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def expect_nearest(
    got: Any, expected: str, pops: Sequence[str], targets: Sequence[str], what: str, traps: Mapping
) -> None:
    """Fail unless ``got`` is ``expected``; the message names the mistake ``got`` looks like."""
    if isinstance(got, str) and got == expected:
        return
    if _is_number(got):
        why = "a number (an RTT?): return the PoP's name, the row's target"
    elif isinstance(got, str) and got in traps:
        why = traps[got]
    elif isinstance(got, str) and got in targets and got not in pops:
        why = "a server of this matrix but not a PoP: leave out every target that is not in `pops`"
    elif got not in pops:
        why = (
            "not a PoP of this matrix; the check makes up users and PoPs of its own, "
            "so an answer written down for the chapter's users cannot know them"
        )
    else:
        why = (
            f"a PoP, but {expected!r} has a lower measured_ms from this user; is your code "
            "leaving PoPs out? a PoP is a name in `pops`, whatever it is called"
        )
    raise CheckFailed(what, repr(expected), f"{_show(got)}: {why}", hint=f"{HINT} (level 2)")


def expect_saving(got: Any, expected: float, what: str, configured: float | None = None) -> None:
    """Fail unless ``got`` is ``expected`` (ms, to 0.01); say what a wrong one looks like."""
    if _is_number(got) and not math.isnan(got) and abs(got - expected) <= 0.01:
        return
    if not _is_number(got):
        why = "not a number of milliseconds"
    elif configured is not None and abs(got - configured) <= 0.01:
        why = (
            "computed from configured_ms; the saving is measured_ms to the origin minus to the PoP"
        )
    elif abs(got + expected) <= 0.01 and expected > 0:
        why = "the sign is reversed: the saving is the RTT to the origin minus the RTT to the PoP"
    elif abs(got + expected) <= 0.01:
        why = (
            "positive, but the origin is nearer than every PoP for this user, so going to the "
            "PoP costs time and the saving is negative: is the sign reversed, or did abs() drop it?"
        )
    else:
        why = "not the origin's measured RTT minus the nearest PoP's"
    raise CheckFailed(
        what, f"{expected:.2f}", f"{_show(got)}: {why}", hint=f"{SAVING_HINT} (level 2)"
    )


def check_nearest(nearest_pop: Callable, cases: Sequence[Case]) -> int:
    """``nearest_pop`` for every user of every made-up case; returns how many users were tried."""
    tried = 0
    for case in cases:
        targets = set(case.matrix["target"])
        for user in case.users:
            call = f"nearest_pop(matrix, {user!r}, pops) on a made-up matrix"
            got = _call(nearest_pop, call, case.matrix.copy(), user, list(case.pops))
            expect_nearest(got, case.nearest[user], case.pops, targets, call, case.traps[user])
            tried += 1
    return tried


def check_saving(saving_ms: Callable, cases: Sequence[Case]) -> int:
    """``saving_ms`` for every user of every made-up case; returns how many users were tried."""
    tried = 0
    for case in cases:
        for user in case.users:
            call = f"saving_ms(matrix, {user!r}, pops) on a made-up matrix"
            got = _call(
                saving_ms, call, case.matrix.copy(), user, list(case.pops), hint=SAVING_HINT
            )
            expect_saving(got, case.saving[user], call, case.saving_configured[user])
            tried += 1
    return tried


def check_nearest_measured(
    nearest_pop: Callable, matrix: pd.DataFrame, pops: Sequence[str], expected: Mapping[str, str]
) -> None:
    """``nearest_pop`` on the matrix measured in the world; ``expected`` is anycast's choice."""
    targets = set(matrix["target"])
    for user, pop in expected.items():
        call = f"nearest_pop(matrix, {user!r}, pops) on the measured matrix"
        got = _call(nearest_pop, call, matrix.copy(), user, list(pops))
        expect_nearest(got, pop, pops, targets, call, {})


def check_saving_measured(
    saving_ms: Callable, matrix: pd.DataFrame, pops: Sequence[str], expected: Mapping[str, str]
) -> None:
    """``saving_ms`` on the measured matrix, with anycast's choice as each user's nearest PoP."""
    rtt = matrix.set_index(["source", "target"])["measured_ms"]
    configured = matrix.set_index(["source", "target"])["configured_ms"]
    for user, pop in expected.items():
        call = f"saving_ms(matrix, {user!r}, pops) on the measured matrix"
        got = _call(saving_ms, call, matrix.copy(), user, list(pops), hint=SAVING_HINT)
        expect_saving(
            got,
            rtt[user, ORIGIN] - rtt[user, pop],
            call,
            configured[user, ORIGIN] - configured[user, pop],
        )
