"""Chapter 02's helpers without a world: under() cases, made-up rules, plots, claims."""

from __future__ import annotations

import random
from types import SimpleNamespace

import matplotlib
import pandas as pd

matplotlib.use("Agg")

from kit.nb.measure import http_request  # noqa: E402
from kit.nb.routing_checks import RouterProbe  # noqa: E402
from kit.nb.routing_plots import (  # noqa: E402
    anycast_before_during,
    routing_claims,
    ttfb_before_after,
)


def right(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def test_under_cases_answer_right_and_catch_letter_matching():
    cases = RouterProbe.under_cases(random.Random(1), rounds=6)
    assert all(right(c.path, c.prefix) == c.wanted for c in cases)
    assert any(c.path.startswith(c.prefix) and not c.wanted for c in cases)
    assert any(c.prefix.count("/") == 2 for c in cases)  # two-segment prefixes too
    kinds = [c.kind for c in cases]
    assert kinds[0] == "the prefix itself"  # grouped by kind, so a mistake fails the same way


class FakeWorld:
    def __init__(self) -> None:
        users = {"tokyo": "JP", "berlin": "DE", "vienna": "AT", "zurich": "CH", "newyork": "US"}
        self.nodes = [SimpleNamespace(name=f"user-{c}", country=k) for c, k in users.items()]
        self.spec = SimpleNamespace(of_kind=lambda kind: self.nodes)
        self.commands: list[str] = []

    def run(self, host: str, command: str, timeout: float = 60) -> str:
        self.commands.append(command)
        return 'HTTP/1.1 302 Found\r\nLocation: https://x.example\r\n\r\n{"a": 1}'


def test_made_up_rules_leave_a_user_for_rewrites():
    probe = RouterProbe(FakeWorld(), "http://10.255.0.1", seed=3)
    rules = probe.made_up_rules("http://10.4.1.2")
    assert rules["redirects"][0]["countries"] and rules["nearest_origin"][0]["countries"]
    taken = set(rules["redirects"][0]["countries"]) | set(rules["nearest_origin"][0]["countries"])
    assert probe.users[probe.rewrite_user(rules)] not in taken


def test_http_request_sends_method_body_and_parses_the_answer():
    world = FakeWorld()
    url = "http://10.255.0.1/x"
    got = http_request(world, "user-tokyo", url, method="PUT", body="abc", headers={"x-a": "1"})
    assert got == {"status": 302, "headers": {"location": "https://x.example"}, "body": '{"a": 1}'}
    assert "-X PUT" in world.commands[0] and "--data-binary abc" in world.commands[0]


def test_plots_and_claims_from_tables():
    samples = pd.DataFrame(
        {"host": ["user-berlin", "user-berlin"], "status": [200, 500], "ttfb_ms": [30.0, 1.0]}
    )
    before = samples.assign(ttfb_ms=[120.0, 1.0])
    routing = ttfb_before_after(before, samples, ["user-berlin"], "t")
    assert routing.loc["user-berlin", "saved"] == 90.0
    normal = pd.DataFrame(
        {"ttfb_ms": [10.0], "pop": ["pop-tokyo"], "rtt_ms": [5.0]}, ["user-tokyo"]
    )
    failed = normal.assign(ttfb_ms=[150.0], pop=["pop-singapore"], rtt_ms=[75.0])
    table = anycast_before_during(normal, failed, "t")
    assert list(table.columns) == ["all PoPs up", "one PoP failed"]
    steps = pd.DataFrame({"p50": [10.0, 30.0], "p99": [20.0, 90.0]}, index=[4, 64])
    claims = routing_claims(routing, normal, failed, steps, steps, 88, 2)
    assert "saved 90 ms" in claims[0].measured and "pop-singapore" in claims[1].measured
