"""Deploying a handler from a notebook to one, several or all PoPs.

    from kit.control import deploy
    from kit.runtime import Response

    async def fetch(request, env, ctx):
        if request.path == "/maintenance":
            return Response.text("back soon", 503, {"Retry-After": "60"})
        return await env.origin.fetch(request)

    deploy(fetch, pops)          # pops: a target, a list of them, or {name: target}

A target is a PoP's control address: `http://host:port`, or `unix:/path.sock`
for the Unix socket a world's PoPs also listen on (`start_edge(world).pops`
gives {name: "unix:..."}), since the notebook cannot reach a world host's IP.

`deploy` ships source code, not a pickled function: it takes a function (its
source is read with `inspect.getsource`, which works for notebook cells), a list
of functions and classes (helpers first, the handler last: an actor's class
defined in a cell is read from that cell's text, which `inspect` cannot find),
a module, or a source string.

A deploy is all-or-nothing across the PoPs, in two phases: every PoP first
loads the handler into a worker next to the one it is serving (this is the
cold start we measure); only if all of them loaded it does each PoP switch to
it. If any PoP fails to load it, none switches: this deploy's staged copies are
withdrawn (by their tokens, so a concurrent deploy's are untouched), and
`DeployError` says where and why. If a switch fails on some PoP (it became
unreachable), the PoPs that did switch are rolled back to what they served
before, so no deploy ever leaves the PoPs serving different versions.

It uses blocking HTTP from the standard library on purpose (`control.py`): a
notebook already runs an event loop, and a plain call is the easiest thing to
use from a cell.
"""

from __future__ import annotations

import ast
import inspect
import linecache
import textwrap
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from kit.control import client as control
from kit.control import protocol

Code = str | Callable[..., Any] | ModuleType | Iterable[Callable[..., Any]]
Pops = str | Iterable[str] | Mapping[str, str]


class DeployError(Exception):
    """A deploy that did not happen. The message names each PoP, line and reason."""

    def __init__(self, message: str, failures: dict[str, dict[str, Any]]) -> None:
        super().__init__(message)
        self.failures = failures  # pop name -> {"reason", "line", "text", "trace"}
        first = next(iter(failures.values()), {})
        self.line: int | None = first.get("line")
        self.reason: str = first.get("reason", message)


@dataclass(frozen=True)
class Deployed:
    """One PoP now serving the handler."""

    pop: str
    url: str  # its target: http://host:port or unix:/path.sock
    version: int
    kind: str
    cold_start_ms: float


def cell_text(obj: Any) -> str | None:
    """The whole text of the notebook cell (or file) that defined a function or class.

    Jupyter keeps each cell's text in `linecache` under the cell's own file name,
    which a function's code object carries (a class's, through its methods)."""
    functions = [obj] if inspect.isfunction(obj) else []
    if inspect.isclass(obj):
        functions = [v for v in vars(obj).values() if inspect.isfunction(v)]
    for function in functions:
        lines = linecache.getlines(function.__code__.co_filename)
        if lines:
            return "".join(lines)
    return None


def definition_in(text: str, name: str) -> str | None:
    """The text of the top-level class or function called `name` in `text`, if there is one."""
    for node in ast.parse(text).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name == name:
                start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
                return "\n".join(text.splitlines()[start - 1 : node.end_lineno])
    return None


def definition_source(obj: Any) -> str:
    """The source of one function or class, also for a class defined in a notebook cell."""
    try:
        return textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):  # a class of __main__ (a cell): inspect finds no file
        text = cell_text(obj)
        if text is None:
            raise TypeError(
                f"the source of {obj.__name__} was not found: pass the source as a string"
            ) from None
    found = definition_in(text, obj.__name__)
    if found is None:
        raise TypeError(f"{obj.__name__} is not in the text of the cell that defined it")
    return found


def handler_source(code: Code) -> str:
    """The Python source to ship for a function, functions and classes, module or string."""
    if isinstance(code, str):
        return textwrap.dedent(code)
    if isinstance(code, ModuleType):
        return inspect.getsource(code)
    functions = [code] if callable(code) else list(code)
    entry = functions[-1]
    if inspect.isclass(entry):
        raise TypeError(f"the handler comes last: a function, not the class {entry.__name__}")
    source = "\n\n".join(definition_source(f) for f in functions)
    if entry.__name__ not in ("fetch", "middleware"):
        # A function named e.g. `geo_redirect`: its arity says which form it is.
        kind = "middleware" if len(inspect.signature(entry).parameters) == 4 else "fetch"
        source += f"\n\n{kind} = {entry.__name__}\n"
    return source


def _targets(pops: Pops) -> dict[str, str]:
    """{name: target}; a bare target (or list of them) is named by itself."""
    if isinstance(pops, str):
        pops = [pops]
    if isinstance(pops, Mapping):
        return {name: control.check_target(target) for name, target in pops.items()}
    return {control.check_target(t): control.check_target(t) for t in pops}


def _call(
    target: str, method: str, path: str, payload: dict[str, Any] | None, timeout: float
) -> dict[str, Any]:
    """Call a PoP's control endpoint; any failure becomes {"ok": False, "error": {...}}."""
    try:
        status, data = control.request(target, method, path, payload, timeout=timeout)
    except control.ControlError as error:
        return {"ok": False, "error": {"reason": str(error)}}
    if not isinstance(data, dict):
        return {"ok": False, "error": {"reason": f"HTTP {status} from {target}"}}
    if status >= 400 and not isinstance(data.get("error"), dict):  # a plain {"error": "..."}
        return {"ok": False, "error": {"reason": f"HTTP {status}: {data.get('error')}"}}
    return data


def _on_all(pops: dict[str, str], call: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    with ThreadPoolExecutor(max_workers=min(16, len(pops)) or 1) as pool:
        results = pool.map(call, pops.values())
        return dict(zip(pops, results, strict=True))


def _describe(failures: dict[str, dict[str, Any]]) -> str:
    lines = []
    for pop, error in failures.items():
        where = f"line {error['line']}: " if error.get("line") else ""
        text = f"\n    {error['text'].strip()}" if (error.get("text") or "").strip() else ""
        lines.append(f"{pop}: {where}{error.get('reason')}{text}")
    return "deploy failed, every PoP keeps its previous handler\n" + "\n".join(lines)


def deploy(
    code: Code,
    pops: Pops,
    *,
    config: dict[str, Any] | None = None,
    matcher: str | list[str] | None = None,
    timeout_s: float | None = None,
    http_timeout_s: float = 60.0,
) -> list[Deployed]:
    """Load `code` on every PoP in `pops`, then switch all of them to it.

    config: becomes `env.config` in the handler.
    matcher: path patterns the handler runs for (else `config["matcher"]` in the source).
    timeout_s: per-request time limit (default: the PoP's `--handler-timeout`).
    http_timeout_s: how long to wait for each PoP's answer: longer than the 40 s a PoP
    gives a new worker to start (`kit.services.workers.START_LIMIT_S`), so a slow start
    on a busy machine ends in the PoP's own answer, not in a timeout here.
    Returns one `Deployed` per PoP with its cold start in ms; raises DeployError.
    """
    source = handler_source(code)
    targets = _targets(pops)
    if not targets:
        raise ValueError("deploy needs at least one PoP target")
    body = {"source": source, "config": config or {}, "timeout_s": timeout_s, "activate": False}
    if matcher is not None:  # the PoP uses it instead of the handler's config["matcher"]
        body["matcher"] = [matcher] if isinstance(matcher, str) else list(matcher)
    staged = _on_all(targets, lambda t: _call(t, "POST", protocol.DEPLOY, body, http_timeout_s))
    tokens = {pop: r["token"] for pop, r in staged.items() if r.get("ok")}
    failures = {pop: r.get("error", {}) for pop, r in staged.items() if not r.get("ok")}
    if failures:
        for pop, token in tokens.items():  # withdraw what this deploy staged, nothing else
            _call(targets[pop], "DELETE", protocol.STAGED.format(token=token), None, http_timeout_s)
        raise DeployError(_describe(failures), failures)

    by_target = {targets[pop]: token for pop, token in tokens.items()}

    def activate(target: str) -> dict[str, Any]:
        payload = {"token": by_target[target]}
        return _call(target, "POST", protocol.ACTIVATE, payload, http_timeout_s)

    active = _on_all(targets, activate)
    failures = {pop: r.get("error", {}) for pop, r in active.items() if not r.get("ok")}
    if failures:
        for pop, result in active.items():  # all or nothing: undo the switch where it happened
            if result.get("ok"):
                payload = {"token": tokens[pop]}
                _call(targets[pop], "POST", protocol.ROLLBACK, payload, http_timeout_s)
        message = "deploy failed while switching; the PoPs that switched were rolled back.\n"
        raise DeployError(message + _describe(failures), failures)
    return [
        Deployed(pop, targets[pop], r["version"], r["kind"], staged[pop]["cold_start_ms"])
        for pop, r in active.items()
    ]


def undeploy(pops: Pops, http_timeout_s: float = 30.0) -> None:
    """Remove the handler: the PoPs go back to being plain caching proxies."""
    targets = _targets(pops)
    results = _on_all(targets, lambda t: _call(t, "DELETE", protocol.DEPLOY, None, http_timeout_s))
    failures = {pop: r.get("error", {}) for pop, r in results.items() if not r.get("ok")}
    if failures:
        raise DeployError(_describe(failures), failures)
