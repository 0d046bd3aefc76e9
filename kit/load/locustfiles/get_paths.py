"""A generic load: each user GETs a list of paths, over and over.

Configured by environment variables (``kit.load.run_load`` sets them):

    LOAD_PATHS     comma-separated paths, default "/"       e.g. "/,/static/10k.bin"
    LOAD_WAIT_S    think time between requests, seconds, default 0.1
    LOAD_HEADERS   extra request headers as "Name: value|Name: value", default none

Each user picks the next path in turn, so every path gets the same share. A
response counts as failed when its status is 400 or more (Locust's default).
"""

import itertools
import os

from locust import HttpUser, constant, task

PATHS = [p.strip() for p in os.environ.get("LOAD_PATHS", "/").split(",") if p.strip()]
WAIT_S = float(os.environ.get("LOAD_WAIT_S", "0.1"))
HEADERS = {}
for header in os.environ.get("LOAD_HEADERS", "").split("|"):
    if ":" in header:
        name, value = header.split(":", 1)
        HEADERS[name.strip()] = value.strip()


class PathsUser(HttpUser):
    wait_time = constant(WAIT_S)

    def on_start(self) -> None:
        self.paths = itertools.cycle(PATHS)

    @task
    def get_next_path(self) -> None:
        self.client.get(next(self.paths), headers=HEADERS)
