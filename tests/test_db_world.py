"""The replicated database on the default world (kit/db.py): across real links.

A replica in Tokyo follows a primary in Ashburn over the emulated backbone: a
write sent to the Tokyo replica is forwarded there, comes back through the
change log, and is applied no sooner than the link allows.
"""

from __future__ import annotations

import json
import random
import time

import pytest
from test_services_support import wait_until

from kit.control import deploy
from kit.db import start_database
from kit.edge import start_edge
from kit.nb.measure import http_request


@pytest.fixture(scope="module")
def db(world):
    database = start_database(world)
    yield database
    database.stop()


def post(world, host: str, url: str, body: dict) -> dict:
    answer = http_request(
        world,
        host,
        url,
        method="POST",
        headers={"Content-Type": "application/json"},
        body=json.dumps(body),
    )
    assert answer["status"] == 200, answer
    return json.loads(answer["body"])


def test_a_write_through_the_tokyo_replica_comes_back_to_it_over_the_link(world, db):
    db.ship_every(0.05)
    table = f"t{random.randrange(10**6)}"
    tokyo = db.url("db-ap")
    post(world, "user-tokyo", tokyo + "/exec", {"sql": f"CREATE TABLE {table} (v INTEGER)"})
    written = post(
        world,
        "user-tokyo",
        tokyo + "/exec",
        {"sql": f"INSERT INTO {table} VALUES (?)", "params": [7]},
    )
    assert written["forwarded_by"] == "replica" and written["role"] == "primary"
    assert wait_until(lambda: db.positions()["db-ap"] >= written["txid"], timeout=10)
    read = post(world, "user-tokyo", tokyo + "/query", {"sql": f"SELECT v FROM {table}"})
    assert read["rows"] == [[7]] and read["position"] >= written["txid"]
    # Ashburn to Tokyo is about 75 ms one way: no replica applies a change sooner
    assert db.position("db-ap")["last_delay_s"] >= 0.05


def test_a_paused_replica_falls_behind_and_catches_up(world, db):
    db.pause("db-eu")
    try:
        before = db.positions()["db-eu"]
        post(world, "user-berlin", db.url() + "/exec", {"sql": "CREATE TABLE IF NOT EXISTS p (v)"})
        time.sleep(1.0)  # ten pulls' worth: a following replica would have it by now
        assert db.positions()["db-eu"] == before
    finally:
        db.resume("db-eu")
    assert wait_until(lambda: db.positions()["db-eu"] == db.positions()["db-primary"], timeout=10)


def test_each_pop_reads_the_database_nearest_to_it(world, db):
    edge = start_edge(world, database=db)
    try:
        handler = (
            "async def fetch(request, env, ctx):\n"
            "    found = await env.db.query('SELECT 1')\n"
            "    return Response.json({'replica': env.db.replica, 'role': found['role']})\n"
        )
        deploy(handler, edge.pops)
        for user, nearest in [("user-tokyo", "db-ap"), ("user-berlin", "db-eu")]:
            answer = http_request(world, user, edge.anycast_url + "/where")
            assert answer["status"] == 200, answer
            assert json.loads(answer["body"])["replica"] == db.url(nearest)
    finally:
        edge.stop()


def test_replica_for_places_a_pops_database_elsewhere(world, db):
    edge = start_edge(world, database=db, replica_for={"pop-tokyo": "db-eu"})
    try:
        where = "async def fetch(request, env, ctx):\n    return Response(env.db.replica)\n"
        deploy(where, edge.pops)
        answer = http_request(world, "user-tokyo", edge.pop_url("pop-tokyo") + "/where")
        assert answer["body"] == db.url("db-eu")  # not the nearer db-ap
    finally:
        edge.stop()
