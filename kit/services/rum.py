"""The PoP's RUM collector: beacons in, one mergeable sketch per region and metric out.

Real user monitoring: a page's script measures how its own load went (time to
first byte, time until loaded) and sends it as a *beacon*, a small POST, to a
path the CDN owns on the site's own host (Cloudflare's is under `/cdn-cgi/`).
Every PoP collects the beacons that reach it:

    POST /cdn-cgi/rum   {"ttfb_ms": 84.2, "load_ms": 412.0}      -> 204

The region is the one the PoP's geo table gives the sender's address, never a
field of the beacon (a beacon is data from anyone on the Internet). Each value
goes into a DDSketch (`ddsketch`, relative accuracy 1 %): a histogram with
logarithmic bins, so any quantile it reports is within 1 % of the true value,
its size is bounded by the range of values (about 700 bins from 1 µs to 10
minutes), and two sketches with the same accuracy merge exactly, by adding
their bins. That is what lets quantiles of one region be computed across PoPs.

Bad input gets a bounded, clear answer and costs nothing kept:

- a body over `MAX_BODY` bytes: 413; not a JSON object: 400;
- a metric that is not a number (a string, a bool, null), not finite (NaN,
  infinity, 1e308 parses as finite but is past the range), negative, or over
  `MAX_MS`: 400 naming the metric; unknown fields are ignored;
- more than `RATE` beacons a second at one PoP (a flood): 429 with Retry-After,
  counted, nothing kept.

`export()` gives the sketches as plain JSON (the control plane's GET RUM):

    {"relative_accuracy": 0.01, "accepted": 120, "rejected": {"not-finite": 2},
     "regions": {"vienna": {"load_ms": {"count": 60, "zero_count": 0,
                                        "bins": {"312": 4, "313": 9, ...}}}}}

where a bin index `i` holds values around `gamma ** i` (`sketch_from_export`
turns one back into a DDSketch).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ddsketch import DDSketch

PATH = "/cdn-cgi/rum"
METRICS = ("ttfb_ms", "load_ms")
RELATIVE_ACCURACY = 0.01
MAX_BODY = 4096
MAX_MS = 600_000.0  # ten minutes: a page load past that is not a measurement
RATE = 500.0  # beacons a second one PoP accepts, in bursts of as many
MAX_REGIONS = 64  # regions come from the geo table; a bound all the same


class Rejected(ValueError):
    """A beacon refused: `status` for the sender, `reason` counted in the metrics."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason = status, reason


def parse_beacon(body: bytes) -> dict[str, float]:
    """The metrics of one beacon, or Rejected saying what is wrong with it."""
    if len(body) > MAX_BODY:
        raise Rejected(413, "too-large", f"a beacon is at most {MAX_BODY} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: [[[[...
        raise Rejected(400, "not-json", "a beacon is a JSON object") from None
    if not isinstance(data, dict):
        raise Rejected(400, "not-json", "a beacon is a JSON object")
    values = {}
    for name in METRICS:
        if name not in data:
            continue
        value = data[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Rejected(400, "not-a-number", f"{name} must be a number of milliseconds")
        value = float(value)
        if not math.isfinite(value):
            raise Rejected(400, "not-finite", f"{name} must be finite")
        if not 0 <= value <= MAX_MS:
            raise Rejected(400, "out-of-range", f"{name} must be between 0 and {MAX_MS:g} ms")
        values[name] = value
    if not values:
        raise Rejected(400, "no-metric", f"a beacon carries at least one of {', '.join(METRICS)}")
    return values


def sketch_to_export(sketch: DDSketch) -> dict[str, Any]:
    """One sketch as JSON: its count, zero count and non-empty bins (index -> count)."""
    store = sketch._store
    bins = {str(store.offset + i): count for i, count in enumerate(store.bins) if count}
    return {"count": int(sketch.count), "zero_count": sketch._zero_count, "bins": bins}


def sketch_from_export(data: dict[str, Any], relative_accuracy: float) -> DDSketch:
    """A DDSketch again, from `sketch_to_export`'s JSON (and the accuracy it was made with)."""
    sketch = DDSketch(relative_accuracy)
    mapping = sketch._mapping
    for index, count in data["bins"].items():
        sketch.add(mapping.value(int(index)), float(count))
    if data.get("zero_count"):
        sketch.add(0.0, float(data["zero_count"]))
    return sketch


class Collector:
    """One PoP's beacons: a sketch per (region, metric), a rate limit, counts of refusals."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, rate: float = RATE) -> None:
        self.clock, self.rate = clock, rate
        self.sketches: dict[str, dict[str, DDSketch]] = {}
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self.tokens, self.last = rate, clock()

    def reset(self) -> None:
        self.sketches.clear()
        self.accepted = 0
        self.rejected.clear()

    def allow(self) -> bool:
        """A token bucket: RATE a second, bursts of RATE."""
        now = self.clock()
        self.tokens = min(self.rate, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def receive(self, body: bytes, region: str | None) -> tuple[int, str]:
        """Take one beacon: (HTTP status, a short text for the sender)."""
        if not self.allow():
            self.rejected["flood"] += 1
            return 429, "too many beacons at this PoP: try again in a second"
        try:
            values = parse_beacon(body)
        except Rejected as error:
            self.rejected[error.reason] += 1
            return error.status, str(error)
        self.record(region or "unknown", values)
        return 204, ""

    def record(self, region: str, values: dict[str, float]) -> None:
        """Add one beacon's values to its region's sketches."""
        if region not in self.sketches and len(self.sketches) >= MAX_REGIONS:
            region = "other"
        sketches = self.sketches.setdefault(region, {})
        for name, value in values.items():
            sketches.setdefault(name, DDSketch(RELATIVE_ACCURACY)).add(value)
        self.accepted += 1

    def export(self) -> dict[str, Any]:
        """Every sketch as JSON (see the module docstring)."""
        return {
            "relative_accuracy": RELATIVE_ACCURACY,
            "accepted": self.accepted,
            "rejected": dict(self.rejected),
            "regions": {
                region: {name: sketch_to_export(s) for name, s in metrics.items()}
                for region, metrics in self.sketches.items()
            },
        }
