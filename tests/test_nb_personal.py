"""Chapter 04's helpers without a world, and the personaliser of its solution run in-process.

The solution's handler (the `04-personalise` exercise, taken from the notebook as
the lead's fuzz test and bench take it) runs against a stand-in for `env`: its
`origin.fetch` renders the origin's personalised page from the request it is
given, so the tests see what the origin would have received and greeted.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from kit.nb.notebooks import read_notebook, solution_part  # noqa: E402
from kit.nb.personal_checks import (  # noqa: E402
    BAD_IDS,
    DEVICES,
    ID,
    SIGNIFICANCE,
    PersonalProbe,
    chi_square_p,
    parse_page,
    user_id,
)
from kit.nb.personal_plots import (  # noqa: E402
    Approach,
    approaches_table,
    per_city_table,
    personal_claims,
)
from kit.runtime.http import Geo, Request, Response  # noqa: E402
from kit.runtime.loader import load_handler  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {
    "weights": {"control": 50, "new-checkout": 30, "one-click": 20},
    "markets": {"DE": "dach", "AT": "dach", "CH": "dach", "GB": "uk", "US": "us"},
    "default_market": "world",
}


def personaliser():
    """The solution's handler, loaded as a PoP loads it."""
    nb = read_notebook(ROOT / "solutions" / "04-personalisation.ipynb")
    cell = next(c for c in nb.cells if c.metadata.get("exercise") == "04-personalise")
    body = "\n".join("    " + line for line in solution_part(cell.source).splitlines())
    return load_handler(f"async def fetch(request, env, ctx):\n{body}\n").function


class Origin:
    """env.origin: renders /p/NAME from the request's headers, counts fetches by key."""

    def __init__(self) -> None:
        self.keys: Counter[str] = Counter()
        self.received: list[Request] = []

    async def fetch(self, request, cache_key=None, **options):
        self.keys[cache_key] += 1
        self.received.append(request)
        cookie = request.headers.get("Cookie", "")
        user = cookie.partition("uid=")[2].split(";")[0] or "guest"
        variant = " ".join(
            f"{p}={request.headers.get(f'x-{p}', '-')}" for p in ("cohort", "market", "device")
        )
        body = (
            f'<h1>{request.path}</h1><p id="greeting">Hello, {user}</p>'
            f'<p id="variant">{variant}</p>'
        )
        return Response(body, 200, {"Cache-Control": "public, max-age=60", "ETag": '"t"'})


def run(handler, origin, path="/p/home", headers=None, country="DE", method="GET"):
    env = SimpleNamespace(origin=origin, config=CONFIG, pop="pop-test")
    request = Request(f"http://10.255.0.1{path}", method, headers or {}, geo=Geo(country))
    response = asyncio.run(handler(request, env, None))
    text = asyncio.run(response.text())
    cookies = response.headers.getall("Set-Cookie", [])
    return parse_page(response.status, dict(response.headers), text, cookies)


@pytest.fixture(scope="module")
def handler():
    return personaliser()


def test_cohorts_follow_the_weights_and_stick(handler):
    origin, rng = Origin(), random.Random(4)
    ids = [user_id(rng) for _ in range(2000)]
    pages = [run(handler, origin, headers={"Cookie": f"uid={i}"}) for i in ids]
    assert chi_square_p(Counter(p.cohort for p in pages), CONFIG["weights"]) >= SIGNIFICANCE
    again = [run(handler, origin, headers={"Cookie": f"uid={i}"}).cohort for i in ids[:50]]
    assert again == [p.cohort for p in pages[:50]]
    assert all(p.greeting == i for p, i in zip(pages, ids, strict=True))
    assert len(origin.keys) == 3 and all(
        "uid" not in r.headers.get("Cookie", "") for r in origin.received
    )


def test_new_visitors_get_an_id_and_returning_ones_none(handler):
    origin = Origin()
    first = run(handler, origin)
    new = first.new_id()
    assert new and ID.fullmatch(new) and first.greeting == new
    assert "Path=/" in first.set_cookie[0]
    back = run(handler, origin, headers={"Cookie": f"theme=dark; uid={new}"})
    assert back.new_id() is None and back.cohort == first.cohort
    assert "private" in back.headers["Cache-Control"]


@pytest.mark.parametrize(("name", "headers", "wanted"), DEVICES, ids=[d[0] for d in DEVICES])
def test_devices(handler, name, headers, wanted):
    assert run(handler, Origin(), headers=headers).device == wanted


@pytest.mark.parametrize("cookie", [c for _, c in BAD_IDS] + ["uid=\udcff\udcfe-12345678"])
def test_a_bad_id_is_a_400_never_an_error(handler, cookie):
    assert run(handler, Origin(), headers={"Cookie": cookie}).status == 400


@pytest.mark.parametrize("cookie", ["uid", ";;=;==", "a=b=c; =x", "uid=" + "x" * 9000, "\x00"])
def test_a_broken_cookie_header_is_never_an_error(handler, cookie):
    assert run(handler, Origin(), headers={"Cookie": cookie}).status in (200, 400)


def test_a_post_goes_on_as_it_came(handler):
    origin = Origin()
    run(handler, origin, method="POST", headers={"Cookie": "uid=abcdefgh123"})
    assert origin.received[-1].method == "POST"
    assert origin.received[-1].headers["Cookie"] == "uid=abcdefgh123"


def test_made_up_configs_are_far_from_equal_and_not_percentages():
    world = SimpleNamespace(spec=SimpleNamespace(of_kind=lambda kind: [
        SimpleNamespace(name=f"user-{c}", country=c) for c in ("DE", "AT", "JP", "US")
    ]))  # fmt: skip
    edge = SimpleNamespace(anycast_url="http://10.255.0.1")
    for seed in range(50):
        weights = PersonalProbe(world, edge, seed=seed).made_up_config()["weights"]
        live = [w for w in weights.values() if w > 0]
        assert list(weights.values()).count(0) == 1 and sum(live) >= 130
        assert max(live) >= 2 * min(live) and max(live) <= 0.85 * sum(live)


def test_chi_square_rejects_a_split_that_ignores_the_weights():
    weights = {"a": 60, "b": 30, "c": 10, "paused": 0}
    assert chi_square_p(Counter(a=667, b=667, c=666), weights) < 1e-10
    assert chi_square_p(Counter(a=1195, b=610, c=195), weights) > 0.01


def approach(hit: float, leak: float, origin: float) -> Approach:
    steps = pd.DataFrame(
        [{"users": 24, "rps": 200.0, "p50": 20.0, "p95": 40.0, "p99": 60.0, "failures": 0,
          "failure_pct": 0.0, "leaks": int(leak * 6), "leak_pct": leak, "hit_ratio": hit,
          "counted_per_s": origin}]
    ).set_index("users")  # fmt: skip
    cities = pd.DataFrame({"requests": [100], "p50": [20.0], "p95": [40.0]}, index=["tokyo"])
    return Approach(steps, cities)


def test_tables_and_claims_from_measured_approaches():
    approaches = {"plain": approach(1.0, 99.0, 0.0), "vary": approach(0.01, 0.0, 150.0),
                  "keyed": approach(0.97, 0.0, 6.0)}  # fmt: skip
    table = approaches_table(approaches)
    assert list(table.index) == ["plain", "vary", "keyed"] and "hit ratio %" in table
    assert per_city_table(approaches).shape == (1, 6)
    claims = personal_claims(approaches, "plain", "vary", "keyed")
    assert len(claims) == 4 and "99%" in claims[0].measured and "1%" in claims[1].measured
