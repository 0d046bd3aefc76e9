"""Many distinct visitors: each request comes from one of thousands of people, each with an id.

A site with many users does not see a few browsers asking the same page over and
over: it sees a stream of different people, each visiting a page or two. A
Locust user here is one connection that carries that stream: every request picks
a visitor from a pool of ids (so some come back, most are new to the page), sends
that visitor's ``uid`` cookie and the User-Agent of their device, and reads the
greeting on the page.

A page that greets anyone but its visitor is a **leak**: one person's page served
to another. It is counted as a failure named ``leak: the greeting names another
user``, so Locust's failure table counts the leaks, apart from real errors.
"Hello, guest" is no leak (the page greets nobody).

Configured by environment variables (``run_loads(..., env=...)``):

    LOAD_PATHS      comma-separated paths, default "/p/home"
    LOAD_WAIT_S     think time between requests, seconds, default 0.05
    LOAD_VISITORS   size of the pool of visitor ids, default 5000
    LOAD_SEED       seed of the pool (the same ids on every host), default "visitors"
"""

import os
import random
import re

from locust import HttpUser, constant, task

PATHS = [p.strip() for p in os.environ.get("LOAD_PATHS", "/p/home").split(",") if p.strip()]
WAIT_S = float(os.environ.get("LOAD_WAIT_S", "0.05"))
VISITORS = int(os.environ.get("LOAD_VISITORS", "5000"))
SEED = os.environ.get("LOAD_SEED", "visitors")

# A device mix: desktops, phones, tablets, and Chrome sending its mobile Client Hint.
DEVICES = [
    ({"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0 Safari/537.36"}, 4),
    ({"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Version/17.5 Safari/605.1"}, 2),
    ({"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148"}, 3),
    ({"User-Agent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/126.0 Mobile Safari"}, 2),
    ({"User-Agent": "Mozilla/5.0 (Linux; Android 10; K) Chrome/126.0 Safari/537.36",
      "Sec-CH-UA-Mobile": "?1"}, 1),
    ({"User-Agent": "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) Mobile/15E148 Safari"}, 1),
]  # fmt: skip
GREETING = re.compile(r'id="greeting">Hello, ([^<]*)<')
LEAK = "leak: the greeting names another user"

_pool = random.Random(SEED)
IDS = [f"v{_pool.getrandbits(48):012x}" for _ in range(VISITORS)]
KINDS = [headers for headers, _ in DEVICES]
WEIGHTS = [weight for _, weight in DEVICES]


class Visitors(HttpUser):
    wait_time = constant(WAIT_S)

    def on_start(self) -> None:
        self.rng = random.Random()

    @task
    def visit(self) -> None:
        visitor = self.rng.choice(IDS)
        headers = {**self.rng.choices(KINDS, WEIGHTS)[0], "Cookie": f"uid={visitor}"}
        path = self.rng.choice(PATHS)
        with self.client.get(path, headers=headers, name=path, catch_response=True) as reply:
            if reply.status_code >= 400:
                reply.failure(f"status {reply.status_code}")
                return
            found = GREETING.search(reply.text or "")
            if found and found[1] not in (visitor, "guest"):
                reply.failure(LEAK)
            else:
                reply.success()
