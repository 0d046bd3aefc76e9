"""Path matchers in the style of Next.js `config.matcher` (path-to-regexp).

    "/about"            exactly /about
    "/blog/:slug"       one segment, e.g. /blog/hello        -> {"slug": "hello"}
    "/files/:path*"     zero or more segments: /files, /files/a/b -> {"path": "a/b"}
    "/docs/:path+"      one or more segments: /docs/a, not /docs
    "/shop/:id?"        an optional segment: /shop and /shop/42

A handler module opts in with `config = {"matcher": ["/files/:path*", ...]}`;
requests whose path matches none of the patterns skip the handler.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_PARAM = re.compile(r"/:(\w+)([*+?]?)")


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Turn one matcher pattern into a regular expression with named groups."""
    if not pattern.startswith("/"):
        raise ValueError(f"matcher pattern must start with '/': {pattern!r}")
    regex, position = "", 0
    for param in _PARAM.finditer(pattern):
        regex += re.escape(pattern[position : param.start()])
        name, modifier = param.groups()
        regex += {
            "": rf"/(?P<{name}>[^/]+)",
            "?": rf"(?:/(?P<{name}>[^/]+))?",
            "+": rf"/(?P<{name}>.+)",
            "*": rf"(?:/(?P<{name}>.*))?",
        }[modifier]
        position = param.end()
    regex += re.escape(pattern[position:])
    return re.compile(regex + "/?")


class Matcher:
    """A list of patterns; `match(path)` gives the captured params or None."""

    def __init__(self, patterns: str | Iterable[str]) -> None:
        self.patterns = [patterns] if isinstance(patterns, str) else list(patterns)
        self._regexes = [compile_pattern(p) for p in self.patterns]

    def match(self, path: str) -> dict[str, str] | None:
        for regex in self._regexes:
            found = regex.fullmatch(path)
            if found:
                return {k: v for k, v in found.groupdict().items() if v is not None}
        return None

    def __repr__(self) -> str:
        return f"Matcher({self.patterns!r})"
