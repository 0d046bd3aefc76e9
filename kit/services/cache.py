"""The PoP's HTTP cache: the rules of RFC 9111 and RFC 5861, without sockets.

Everything here is pure: it takes header lists and the time (`clock` is
injected), and says what may be stored and what a stored response is good
for. The PoP (`pop.py`) does the fetching. Tests drive it with a fake clock.

The rules, for a shared cache such as a CDN PoP:

- What is stored (RFC 9111 §3): GET responses, unless the response says
  `no-store` or `private` (§5.2.2.3, §5.2.2.7), or carries `Vary: *` (§4.1),
  or the request had `Authorization` without `public`/`s-maxage`/
  `must-revalidate` (§3.5). The status must be final and either cacheable by
  default (§4.2.2) or have explicit freshness.
- How long it is fresh (§4.2.1): `s-maxage`, else `max-age`, else
  `Expires - Date`, else 10% of the time since `Last-Modified` (§4.2.2).
- How old it is (§4.2.3): the `Age` it arrived with, corrected for the time on
  the wire, plus the time it has been in this cache. Sent back as `Age`.
- Which stored variant fits (§4.1): the request headers named by `Vary` must
  equal those of the request that fetched it.
- When it is stale, or `no-cache` (§5.2.2.4), it must be validated with the
  origin (§4.3.1: `If-None-Match` with its ETag, `If-Modified-Since`); a 304
  refreshes the stored headers (§4.3.4). `must-revalidate`/`proxy-revalidate`
  forbid serving it stale (§5.2.2.2, §5.2.2.8).
- RFC 5861: `stale-while-revalidate=N` lets a response up to N seconds stale be
  served at once while it is revalidated in the background;
  `stale-if-error=N` lets it be served when the origin fails (5xx or
  unreachable). (RFC 9111 §5.2.2.10 says `s-maxage` implies proxy-revalidate;
  like CDNs do, an explicit stale-* directive is taken as the origin's
  permission to serve stale anyway, so `s-maxage=1, stale-while-revalidate=59`
  works as documented by Vercel and others.)
- Targeted cache control (RFC 9213): `CDN-Cache-Control`, else
  `Surrogate-Control` (Akamai's and Fastly's older field), takes the place of
  `Cache-Control` for this cache's own decisions, with the same directives,
  when it holds any (a `Surrogate-Control: content="ESI/1.0"` alone does not).
  `Cache-Control` is left for browsers. The PoP sends neither surrogate field
  on to clients (`NOT_TO_CLIENTS`); `CDN-Cache-Control` goes on, for caches
  downstream, as RFC 9213 describes.
- Tags: a response's `Surrogate-Key` (space-separated, Fastly) and `Cache-Tag`
  (comma-separated, Cloudflare) name groups it belongs to; `purge_tag` drops
  every stored response of a group, `purge_url` every variant of one URL.

The store is a dict of URL -> variants, kept in least-recently-used order and
bounded in bytes.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from multidict import CIMultiDict

Headers = Mapping[str, str]  # case-insensitive, e.g. a multidict

# RFC 9111 §4.2.2 / RFC 9110 §15.1: statuses cacheable without explicit freshness.
HEURISTICALLY_CACHEABLE = {200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501}
HEURISTIC_FRACTION = 0.1  # §4.2.2: "10% of the interval since Last-Modified"
HEURISTIC_LIMIT_S = 24 * 3600


def parse_cache_control(value: str | None) -> dict[str, str | None]:
    """`"max-age=60, no-cache"` -> `{"max-age": "60", "no-cache": None}` (RFC 9111 §5.2)."""
    directives: dict[str, str | None] = {}
    for part in (value or "").split(","):
        name, _, argument = part.strip().partition("=")
        if name:
            directives[name.lower()] = argument.strip('"') if argument else None
    return directives


def seconds(directives: dict[str, str | None], name: str) -> float | None:
    """A delta-seconds directive (§1.2.2); a malformed value counts as absent."""
    try:
        return max(0.0, float(int(directives[name] or "")))
    except (KeyError, ValueError):
        return None


def http_date(value: str | None) -> float | None:
    """An HTTP date as a Unix timestamp, None if missing or malformed."""
    try:
        return parsedate_to_datetime(value).timestamp() if value else None
    except (TypeError, ValueError):
        return None


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Does an If-None-Match list name this ETag? Weak comparison (RFC 9110 §13.1.2)."""
    if if_none_match.strip() == "*":
        return True
    wanted = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag.removeprefix("W/") in wanted


TARGETED = ("CDN-Cache-Control", "Surrogate-Control")  # RFC 9213, most specific first
NOT_CACHE_DIRECTIVES = {"content"}  # Surrogate-Control's ESI capability, not freshness


def cache_directives(response: Headers) -> dict[str, str | None]:
    """The directives this shared cache obeys: a targeted field's, else Cache-Control's.

    `CDN-Cache-Control: max-age=600` with `Cache-Control: no-cache` is 600 s
    fresh here and revalidated by browsers (RFC 9213 §2.1).
    """
    for name in TARGETED:
        if name in response:
            directives = parse_cache_control(", ".join(_values(response, name)))
            if directives.keys() - NOT_CACHE_DIRECTIVES:
                return directives
    return parse_cache_control(response.get("Cache-Control"))


def tags_of(response: Headers) -> frozenset[str]:
    """The purge tags a response names: Surrogate-Key (spaces) and Cache-Tag (commas)."""
    tags = {t for v in _values(response, "Surrogate-Key") for t in v.split()}
    tags |= {t.strip() for v in _values(response, "Cache-Tag") for t in v.split(",")}
    return frozenset(t for t in tags if t and len(t) <= 1024)


def _values(headers: Headers, name: str) -> list[str]:
    """Every value of a field (a multidict may hold several; a plain mapping one)."""
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return list(getall(name, ()))
    return [headers[name]] if name in headers else []


def storable(method: str, status: int, request: Headers, response: Headers) -> bool:
    """May a shared cache store this response at all? (RFC 9111 §3)"""
    directives = cache_directives(response)
    if method != "GET" or status < 200 or status == 206:
        return False
    if "no-store" in directives or "private" in directives:
        return False
    if response.get("Vary", "").strip() == "*":
        return False
    if "Authorization" in request and not directives.keys() & {
        "public",
        "s-maxage",
        "must-revalidate",
    }:
        return False
    explicit = directives.keys() & {"max-age", "s-maxage", "public"} or "Expires" in response
    return bool(explicit) or status in HEURISTICALLY_CACHEABLE


def freshness_lifetime(directives: dict[str, str | None], response: Headers) -> float:
    """How long a response stays fresh, in seconds (RFC 9111 §4.2.1)."""
    for name in ("s-maxage", "max-age"):
        value = seconds(directives, name)
        if value is not None:
            return value
    expires, date = http_date(response.get("Expires")), http_date(response.get("Date"))
    if "Expires" in response:
        return max(0.0, (expires or 0.0) - (date or 0.0)) if expires and date else 0.0
    last_modified = http_date(response.get("Last-Modified"))
    if last_modified and date and date > last_modified:
        return min(HEURISTIC_LIMIT_S, HEURISTIC_FRACTION * (date - last_modified))
    return 0.0


# Request headers the PoP normalises itself, so they never select a variant: it
# asks the origin for identity and compresses per client (see encoding.py).
NORMALIZED_BY_CACHE = {"accept-encoding"}


class State(enum.Enum):
    """What a stored response is good for right now."""

    FRESH = "fresh"  # serve it (x-cache: HIT)
    STALE_WHILE_REVALIDATE = "stale-while-revalidate"  # serve it, refresh behind
    MUST_VALIDATE = "must-validate"  # ask the origin first (304 or new body)


@dataclass
class Entry:
    """A stored response and what was worked out about it when it arrived."""

    status: int
    headers: list[tuple[str, str]]  # as sent on: hop-by-hop, Content-Length, Set-Cookie dropped
    body: bytes
    vary: tuple[tuple[str, str | None], ...]  # (request header, value it had)
    request_time: float
    response_time: float
    initial_age: float = 0.0
    lifetime: float = 0.0
    always_validate: bool = False  # no-cache
    may_serve_stale: bool = True  # not must-revalidate / proxy-revalidate
    stale_while_revalidate: float = 0.0
    stale_if_error: float = 0.0
    etag: str | None = None
    last_modified: str | None = None
    encoded: dict[str, bytes] = field(default_factory=dict)  # compressed copies
    stored: bool = False  # in the cache now (an evicted entry may still be in use)
    tags: frozenset[str] = frozenset()  # Surrogate-Key / Cache-Tag: what purge_tag finds
    targeted: list[tuple[str, str]] = field(default_factory=list)  # surrogate fields, kept

    @property
    def size(self) -> int:
        return len(self.body) + sum(len(v) for v in self.encoded.values()) + 200

    def age(self, now: float) -> float:
        """current_age (RFC 9111 §4.2.3)."""
        return self.initial_age + max(0.0, now - self.response_time)

    def staleness(self, now: float) -> float:
        """Seconds past its freshness lifetime (negative while fresh)."""
        return self.age(now) - self.lifetime

    def state(self, now: float) -> State:
        stale_for = self.staleness(now)
        if stale_for < 0 and not self.always_validate:
            return State.FRESH
        if self.may_serve_stale and not self.always_validate:
            if stale_for < self.stale_while_revalidate:
                return State.STALE_WHILE_REVALIDATE
        return State.MUST_VALIDATE

    def usable_if_error(self, now: float) -> bool:
        """May it be served because the origin failed? (RFC 5861 §4)"""
        return self.may_serve_stale and self.staleness(now) < self.stale_if_error

    def validators(self) -> dict[str, str]:
        """Headers for a conditional request to the origin (RFC 9111 §4.3.1)."""
        found = {}
        if self.etag:
            found["If-None-Match"] = self.etag
        if self.last_modified:
            found["If-Modified-Since"] = self.last_modified
        return found

    def matches(self, request: Headers) -> bool:
        """Does this variant fit the request? (RFC 9111 §4.1, Vary)"""
        return all(request.get(name) == value for name, value in self.vary)

    def refresh(self, response: Headers, request_time: float, response_time: float) -> None:
        """Apply a 304 Not Modified: new headers and times, same body (§4.3.4).

        The new headers pass the same filter as when storing (§3.1), so the stored
        headers stay ready to send as they are.
        """
        unchanged = _NOT_UPDATED_BY_304 | NOT_STORED
        updates = [(k, v) for k, v in response.items() if k.lower() not in unchanged]
        replaced = {k.lower() for k, _ in updates}
        self.headers = [(k, v) for k, v in self.headers if k.lower() not in replaced] + updates
        new_targeted = [(k, v) for k, v in response.items() if k.lower() in SURROGATE]
        if new_targeted:
            self.targeted = new_targeted
        _describe(self, _as_dict(self.headers + self.targeted), request_time, response_time)


# Headers a 304 must not change in the stored response (RFC 9111 §3.2).
_NOT_UPDATED_BY_304 = {"content-length", "content-encoding", "transfer-encoding", "content-range"}


def _as_dict(headers: Iterable[tuple[str, str]]) -> Headers:
    return CIMultiDict(headers)


def _describe(entry: Entry, headers: Headers, request_time: float, response_time: float) -> None:
    """Work out age, lifetime and directives once, when a response arrives."""
    directives = cache_directives(headers)
    date = http_date(headers.get("Date")) or response_time
    age_value = seconds({"age": headers.get("Age")}, "age") or 0.0
    apparent_age = max(0.0, response_time - date)  # §4.2.3
    corrected_age = age_value + (response_time - request_time)
    entry.request_time, entry.response_time = request_time, response_time
    entry.initial_age = max(apparent_age, corrected_age)
    entry.lifetime = freshness_lifetime(directives, headers)
    entry.always_validate = "no-cache" in directives
    explicit_stale = directives.keys() & {"stale-while-revalidate", "stale-if-error"}
    entry.may_serve_stale = not directives.keys() & {"must-revalidate", "proxy-revalidate"} and (
        "s-maxage" not in directives or bool(explicit_stale)
    )
    entry.stale_while_revalidate = seconds(directives, "stale-while-revalidate") or 0.0
    entry.stale_if_error = seconds(directives, "stale-if-error") or 0.0
    entry.etag, entry.last_modified = headers.get("ETag"), headers.get("Last-Modified")


class HttpCache:
    """Stored responses by key (usually the URL's path and query), LRU, bounded in bytes."""

    def __init__(
        self,
        max_bytes: int = 64 << 20,
        max_object_bytes: int = 8 << 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_bytes, self.max_object_bytes, self.clock = max_bytes, max_object_bytes, clock
        self.variants: OrderedDict[str, list[Entry]] = OrderedDict()
        self.bytes = 0

    def lookup(self, key: str, request: Headers) -> Entry | None:
        """The stored variant that fits this request, if any."""
        variants = self.variants.get(key)
        if not variants:
            return None
        self.variants.move_to_end(key)
        for entry in variants:
            if entry.matches(request):
                return entry
        return None

    def store(
        self,
        key: str,
        request: Headers,
        status: int,
        response: Headers,
        body: bytes,
        request_time: float,
        response_time: float | None = None,
    ) -> Entry | None:
        """Store a response from the origin if the rules allow; return the entry."""
        if not storable("GET", status, request, response) or len(body) > self.max_object_bytes:
            return None
        vary_names = [v.strip() for v in response.get("Vary", "").split(",") if v.strip()]
        vary_names = [name for name in vary_names if name.lower() not in NORMALIZED_BY_CACHE]
        entry = Entry(
            status,
            [(k, v) for k, v in response.items() if k.lower() not in NOT_STORED],
            body,
            vary=tuple((name, request.get(name)) for name in vary_names),
            request_time=request_time,
            response_time=response_time if response_time is not None else self.clock(),
            tags=tags_of(response),
            targeted=[(k, v) for k, v in response.items() if k.lower() in SURROGATE],
        )
        _describe(entry, response, request_time, entry.response_time)
        if entry.lifetime <= 0 and not (entry.etag or entry.last_modified or entry.stale_if_error):
            return None  # could never be served without a full fetch: not worth keeping
        self._add(key, entry)
        return entry

    def _add(self, key: str, entry: Entry) -> None:
        variants = self.variants.setdefault(key, [])
        for old in [v for v in variants if v.vary == entry.vary]:
            variants.remove(old)
            self._forget(old)
        variants.append(entry)
        entry.stored = True
        self.bytes += entry.size
        self.variants.move_to_end(key)
        while self.bytes > self.max_bytes and self.variants:
            _, evicted = self.variants.popitem(last=False)
            for old in evicted:
                self._forget(old)

    def _forget(self, entry: Entry) -> None:
        entry.stored = False
        self.bytes -= entry.size

    def add_encoded(self, entry: Entry, encoding: str, data: bytes) -> None:
        """Keep a compressed copy of an entry's body next to it (and count its bytes).

        An entry evicted while a response was being compressed keeps its copy, but
        its bytes are no longer the cache's: only a stored entry's count.
        """
        if encoding not in entry.encoded:
            entry.encoded[encoding] = data
            if entry.stored:
                self.bytes += len(data)

    def invalidate(self, key: str) -> None:
        """Drop every variant of a key (RFC 9111 §4.4: after an unsafe method)."""
        for entry in self.variants.pop(key, []):
            self._forget(entry)

    def purge(self, prefix: str = "") -> int:
        """Drop every key starting with prefix; return how many keys went."""
        keys = [k for k in self.variants if k.startswith(prefix)]
        for key in keys:
            self.invalidate(key)
        return len(keys)

    def purge_url(self, key: str) -> int:
        """Drop every variant of one key (a URL's path and query); return how many went."""
        count = len(self.variants.get(key, ()))
        self.invalidate(key)
        return count

    def purge_tag(self, tag: str) -> int:
        """Drop every stored response tagged `tag`; return how many went."""
        count = 0
        for key in list(self.variants):
            variants = self.variants[key]
            for entry in [e for e in variants if tag in e.tags]:
                variants.remove(entry)
                self._forget(entry)
                count += 1
            if not variants:
                del self.variants[key]
        return count

    def __len__(self) -> int:
        return sum(len(v) for v in self.variants.values())


# Hop-by-hop fields (RFC 9110 §7.6.1): they describe one connection, never forwarded.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}
# What a stored response keeps none of: the above, the framing of the response it came
# in, and cookies (one user's cookie must never be replayed to another).
# The surrogate fields are for this cache: kept apart (Entry.targeted), sent on to no client.
SURROGATE = {"surrogate-control", "surrogate-key", "cache-tag"}
NOT_STORED = HOP_BY_HOP | {"transfer-encoding", "content-length", "set-cookie"} | SURROGATE
NOT_TO_CLIENTS = SURROGATE
