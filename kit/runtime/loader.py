"""Loading handler source into something a PoP can run.

A handler is a small Python module. It defines exactly one of

    async def fetch(request, env, ctx) -> Response              # Workers style
    async def middleware(request, env, ctx, next) -> Response   # Next.js style

and optionally `config = {"matcher": ["/docs/:path*"]}` to limit which paths it
sees (see `matcher.py`). In the middleware form, `await next()` (or
`await next(changed_request)`) continues to the PoP's cache and the origin.

The module starts with the handler API already imported (`HANDLER_API`:
`Request`, `Response`, `Geo`, and the errors of bindings: `FetchError`, `DbError`,
`KvError`, `ActorError`), so a function copied from a
notebook cell runs as is. It does not see the notebook's tools (`deploy`...).

`load_handler` compiles and runs the module once, inside the PoP's handler
worker (`worker.py`). Anything that goes wrong (a syntax error, an exception or
`sys.exit()` at import, a missing or non-async entry point) becomes a
`LoadError` carrying the line number and the reason; the PoP then keeps serving
whatever handler it had before. The time this takes is the handler's cold start.
"""

from __future__ import annotations

import inspect
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kit.runtime.actors import ActorError
from kit.runtime.bindings import DbError, FetchError, KvError
from kit.runtime.http import Geo, Request, Response
from kit.runtime.matcher import Matcher

FILENAME = "handler.py"


class LoadError(Exception):
    """A handler that could not be loaded: where (line) and why (reason)."""

    def __init__(self, reason: str, line: int | None = None, text: str = "", trace: str = ""):
        self.reason, self.line, self.text, self.trace = reason, line, text, trace
        where = f"line {line}: " if line else ""
        shown = f"\n    {text.strip()}" if text.strip() else ""
        super().__init__(f"{where}{reason}{shown}")

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "line": self.line, "text": self.text, "trace": self.trace}


@dataclass
class Handler:
    """A loaded handler, ready to be called by a PoP."""

    kind: str  # "fetch" or "middleware"
    function: Callable[..., Any]
    matcher: Matcher | None
    source: str
    cold_start_ms: float
    namespace: dict[str, Any] = field(repr=False, default_factory=dict)

    def matches(self, path: str) -> dict[str, str] | None:
        """The matcher's params for this path, or None if the handler should not run."""
        return self.matcher.match(path) if self.matcher else {}


def _source_line(source: str, line: int | None) -> str:
    lines = source.splitlines()
    return lines[line - 1] if line and 0 < line <= len(lines) else ""


def _handler_line(error: BaseException) -> int | None:
    """The deepest line of the handler's own file in an exception's traceback."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == FILENAME]
    return frames[-1].lineno if frames else None


HANDLER_API = {
    "Request": Request,
    "Response": Response,
    "Geo": Geo,
    "FetchError": FetchError,
    "DbError": DbError,
    "KvError": KvError,
    "ActorError": ActorError,
}


def error_reason(error: BaseException) -> str:
    """'ZeroDivisionError: division by zero (handler.py line 3)': what a learner sees."""
    line = _handler_line(error)
    where = f" (handler.py line {line})" if line else ""
    if isinstance(error, SystemExit):
        return f"SystemExit: the handler called sys.exit({error.code!r}){where}"
    if isinstance(error, MemoryError):
        return f"MemoryError: the handler ran out of its memory limit{where}"
    return f"{type(error).__name__}: {error}{where}"


def load_handler(source: str, matcher: list[str] | None = None) -> Handler:
    """Compile and run a handler module; raise LoadError if it cannot serve.

    ``matcher``, if given, is used instead of the module's ``config["matcher"]``
    (the module's ``config`` itself is left as it is).
    """
    started = time.perf_counter()
    try:
        code = compile(source, FILENAME, "exec")
    except SyntaxError as error:
        reason = f"SyntaxError: {error.msg}"
        raise LoadError(reason, error.lineno, error.text or "") from None
    namespace: dict[str, Any] = {"__name__": "handler", **HANDLER_API}
    try:
        exec(code, namespace)
    except (Exception, SystemExit) as error:  # sys.exit() at import is the handler's error
        line = _handler_line(error)
        trace = "".join(traceback.format_exception(error))
        reason = error_reason(error).replace(f" ({FILENAME} line {line})", "")
        raise LoadError(f"{reason} (at load)", line, _source_line(source, line), trace) from None
    return Handler(
        *_entry_point(namespace, source),
        matcher=_matcher(namespace, source) if matcher is None else _patterns(matcher),
        source=source,
        cold_start_ms=(time.perf_counter() - started) * 1000,
        namespace=namespace,
    )


def _entry_point(namespace: dict[str, Any], source: str) -> tuple[str, Callable[..., Any]]:
    found = [kind for kind in ("fetch", "middleware") if callable(namespace.get(kind))]
    if len(found) != 1:
        problem = "defines both" if found else "defines neither"
        raise LoadError(f"the handler {problem} `async def fetch` and `async def middleware`")
    kind = found[0]
    function = namespace[kind]
    line = getattr(getattr(function, "__code__", None), "co_firstlineno", None)
    if not inspect.iscoroutinefunction(function):
        raise LoadError(
            f"`{kind}` must be defined with `async def`", line, _source_line(source, line)
        )
    wanted = 3 if kind == "fetch" else 4
    try:
        inspect.signature(function).bind(*range(wanted))
    except TypeError:
        shape = "(request, env, ctx)" if kind == "fetch" else "(request, env, ctx, next)"
        reason = f"`{kind}` must take {wanted} arguments {shape}"
        raise LoadError(reason, line, _source_line(source, line)) from None
    return kind, function


def _matcher(namespace: dict[str, Any], source: str) -> Matcher | None:
    config = namespace.get("config")
    if config is None:
        return None
    if not isinstance(config, dict):
        raise LoadError("`config` must be a dict such as {'matcher': ['/docs/:path*']}")
    if "matcher" not in config:
        return None
    return _patterns(config["matcher"])


def _patterns(patterns: Any) -> Matcher:
    try:
        return Matcher(patterns)
    except (TypeError, ValueError) as error:
        raise LoadError(f"bad matcher: {error}") from None
