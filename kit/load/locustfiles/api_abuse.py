"""Abuse traffic for an API: good requests mixed with forged, expired, oversized,
invalid and over-limit ones, each labelled so the origin can count what reached it.

Configured by environment variables (a chapter passes them as `env`):

    ABUSE_GOOD_TOKENS   comma-separated genuine tokens; each Locust user takes one
    ABUSE_FLOOD_TOKEN   one genuine token that every user shares (over its limit)
    ABUSE_FORGED        comma-separated forged tokens (wrong key, alg none, ...)
    ABUSE_EXPIRED       a genuine token that has expired
    ABUSE_BODY          a JSON body that fits the schema of ABUSE_BODY_PATH
    ABUSE_BAD_BODY      a JSON body that does not
    ABUSE_BIG_BYTES     the size of the oversized body (over the gateway's limit)
    ABUSE_BODY_PATH     where bodies go, default /api/echo
    ABUSE_GET_PATH      where GETs go, default /api/items
    LOAD_WAIT_S         think time between requests, seconds, default 0.05

Every request carries `x-traffic: KIND` (good, flood, forged, expired, oversized,
invalid), which the origin counts. A response counts as a *failure* only when
it is not what a gateway should answer for that kind: good wants 200, flood
200 or 429, forged and expired 401, oversized 413, invalid 400. Without a
gateway, the bad kinds reach the origin and come back 200: those are the
failures, and their share is the share of abuse that got through.
"""

import itertools
import os
import random

from locust import HttpUser, constant, task

GOOD = [t for t in os.environ.get("ABUSE_GOOD_TOKENS", "").split(",") if t]
FLOOD = os.environ.get("ABUSE_FLOOD_TOKEN", "")
FORGED = [t for t in os.environ.get("ABUSE_FORGED", "").split(",") if t]
EXPIRED = os.environ.get("ABUSE_EXPIRED", "")
BODY = os.environ.get("ABUSE_BODY", "{}")
BAD_BODY = os.environ.get("ABUSE_BAD_BODY", "{}")
BIG = int(os.environ.get("ABUSE_BIG_BYTES", "65536"))
BODY_PATH = os.environ.get("ABUSE_BODY_PATH", "/api/echo")
GET_PATH = os.environ.get("ABUSE_GET_PATH", "/api/items")
WAIT_S = float(os.environ.get("LOAD_WAIT_S", "0.05"))
JSON = "application/json"
users = itertools.count()


class AbuseUser(HttpUser):
    wait_time = constant(WAIT_S)

    def on_start(self) -> None:
        number = next(users)
        self.good = GOOD[number % len(GOOD)] if GOOD else ""
        self.big = '{"pad": "' + "x" * BIG + '"}'

    def send(
        self,
        kind: str,
        wanted: tuple[int, ...],
        token: str,
        method: str = "GET",
        body: str | None = None,
    ) -> None:
        headers = {"x-traffic": kind, "Authorization": f"Bearer {token}"}
        path = f"{GET_PATH}/{random.randrange(1000)}"
        if body is not None:
            headers["Content-Type"] = JSON
            path = BODY_PATH
        with self.client.request(
            method, path, headers=headers, data=body, name=kind, catch_response=True
        ) as response:
            if response.status_code in wanted:
                response.success()
            else:
                response.failure(f"{kind}: wanted {wanted}, got {response.status_code}")

    @task(10)
    def good_get(self) -> None:
        self.send("good", (200,), self.good)

    @task(4)
    def good_post(self) -> None:
        self.send("good", (200,), self.good, "POST", BODY)

    @task(8)
    def flood(self) -> None:
        self.send("flood", (200, 429), FLOOD)

    @task(3)
    def forged(self) -> None:
        self.send("forged", (401,), random.choice(FORGED) if FORGED else "x")

    @task(2)
    def expired(self) -> None:
        self.send("expired", (401,), EXPIRED)

    @task(2)
    def oversized(self) -> None:
        self.send("oversized", (413,), self.good, "POST", self.big)

    @task(2)
    def invalid(self) -> None:
        self.send("invalid", (400,), self.good, random.choice(["POST", "PUT"]), BAD_BODY)
