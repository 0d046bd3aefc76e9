"""Checks: test what the learner built against the running world, and teach when it fails.

    with check("Tokyo users are served by the Tokyo PoP"):
        t = http_timing(world, "user-tokyo", "http://10.255.0.1/")
        expect_below(t.ttfb_ms, 30, "time to first byte from Tokyo (ms)",
                     hint="Is the page cached at the PoP? Look at the X-Cache header.")

A passing check prints one line, ``✓ Tokyo users are served by the Tokyo PoP``.
``check_world`` is the other kind: it checks the emulated world (RTT fidelity
on a busy laptop), prints ✓ or ⚠, and never stops the run.
A failing one raises ``CheckFailed``, which a notebook shows as a short message
(no traceback) saying what was checked, what was expected, what came back, and
a hint. The ``expect_*`` functions are the building blocks; each raises
``CheckFailed`` and returns the value it checked, so they chain.

An exercise that is not written yet raises ``NotImplementedError`` (the stub left
by ``kit.nb.release``); ``check`` turns that into a ``CheckFailed`` that says so,
so a check fails on the unsolved exercise with a message, not a crash. A
``NameError`` (the exercise cell was never run, or a name is misspelt) becomes a
``CheckFailed`` that says which name is missing.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

from kit.nb.measure import http_get

PASS, FAIL, WARN = "✓", "✗", "⚠"


class CheckFailed(AssertionError):
    """A check that did not pass: what was checked, expected, got, and a hint."""

    def __init__(self, what: str, expected: Any, got: Any, hint: str = "") -> None:
        self.what, self.expected, self.got, self.hint = what, expected, got, hint
        self.check = ""  # the name of the enclosing ``check``, filled in by it
        super().__init__(what)

    def __str__(self) -> str:
        lines = [f"{FAIL} {self.check}" if self.check else f"{FAIL} {self.what}"]
        if self.check:
            lines.append(f"  checking: {self.what}")
        lines += [f"  expected: {self.expected}", f"  got:      {self.got}"]
        if self.hint:
            lines.append(f"  hint:     {self.hint}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of a traceback: the message is the whole story."""
        return [str(self)]


@contextlib.contextmanager
def check(name: str, say: Callable[[str], None] = print) -> Iterator[None]:
    """Run the block as one named check: ``✓ name`` on success, ``CheckFailed`` if not."""
    try:
        yield
    except CheckFailed as failed:
        failed.check = failed.check or name
        raise
    except NotImplementedError:
        failed = CheckFailed(
            "your code",
            "an implementation",
            "NotImplementedError",
            hint="replace '# YOUR CODE HERE' and 'raise NotImplementedError()' above, "
            "run that cell, then this one again",
        )
        failed.check = name
        raise failed from None
    except NameError as error:  # most often: the exercise cell above was not run
        failed = CheckFailed(
            "the names this check uses",
            "defined by the cells above",
            f"NameError: {error}",
            hint="run the cells above this one first (Run → Run All Above Selected Cell); "
            "if you did, check the spelling",
        )
        failed.check = name
        raise failed from None
    say(f"{PASS} {name}")


@contextlib.contextmanager
def check_world(name: str, say: Callable[[str], None] = print) -> Iterator[None]:
    """A check that the emulated world behaves (not the learner's work): ✓ or ⚠.

    Fidelity depends on the machine: on a busy 2-vCPU laptop a tail latency can
    stray. A failed world check prints ⚠ with what it saw and never stops "Run
    All"; the chapter goes on, and the learner knows which numbers to doubt.
    """
    try:
        yield
    except CheckFailed as failed:
        failed.check = failed.check or name
        lines = str(failed).splitlines()
        lines[0] = f"{WARN} {name}"
        lines.append(
            "  this is about the machine, not your code: the chapter goes on. "
            "`python -m kit verify` measures the world again."
        )
        say("\n".join(lines))
        return
    say(f"{PASS} {name}")


def expect(condition: bool, what: str, expected: Any, got: Any, hint: str = "") -> None:
    """The general form: fail with this message unless ``condition``."""
    if not condition:
        raise CheckFailed(what, expected, got, hint)


def expect_equal(got: Any, expected: Any, what: str, hint: str = "") -> Any:
    expect(got == expected, what, repr(expected), repr(got), hint)
    return got


def expect_close(got: float, expected: float, tolerance: float, what: str, hint: str = "") -> float:
    """``got`` within ``expected ± tolerance``."""
    ok = got is not None and not math.isnan(got) and abs(got - expected) <= tolerance
    expect(ok, what, f"{expected:g} ± {tolerance:g}", _number(got), hint)
    return got


def expect_below(got: float, limit: float, what: str, hint: str = "") -> float:
    expect(got is not None and got < limit, what, f"below {limit:g}", _number(got), hint)
    return got


def expect_above(got: float, limit: float, what: str, hint: str = "") -> float:
    expect(got is not None and got > limit, what, f"above {limit:g}", _number(got), hint)
    return got


def expect_in(got: Any, allowed: Any, what: str, hint: str = "") -> Any:
    expect(got in allowed, what, f"one of {list(allowed)!r}", repr(got), hint)
    return got


def expect_http(
    world: Any,
    host: str,
    url: str,
    *,
    status: int = 200,
    body_contains: str | None = None,
    headers: dict[str, str] | None = None,
    hint: str = "",
) -> dict[str, Any]:
    """GET ``url`` from a world host and check its status, body text and response headers.

    ``headers`` maps a response header to the value expected (case-insensitive names).
    An unexpected 5xx shows the start of its body: a PoP puts there what went wrong
    in the handler, and on which line.
    Returns the response as ``{"status", "headers", "body"}``.
    """
    response = http_get(world, host, url)
    what = f"GET {url} from {host}"
    got = response["status"]
    if got >= 500 and got != status:
        got = f"{got}, saying: {_first_lines(response['body'])}"
    expect(response["status"] == status, f"{what}: status", status, got, hint)
    for name, value in (headers or {}).items():
        got = response["headers"].get(name.lower())
        expect(got == value, f"{what}: header {name}", repr(value), repr(got), hint)
    if body_contains is not None:
        expect(
            body_contains in response["body"],
            f"{what}: body",
            f"text containing {body_contains!r}",
            repr(response["body"][:200]),
            hint,
        )
    return response


def _first_lines(body: str, lines: int = 3, limit: int = 300) -> str:
    """The start of a response body, for a failure message: a few lines, quoted."""
    text = "\n".join(body.strip().splitlines()[:lines])
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else repr(value)
