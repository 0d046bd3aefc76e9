"""The replicated database (kit/services/db.py): writes, replication in order, bad input.

Unit tests drive `Store` on temporary SQLite files; loopback tests run a real
primary and a real replica as processes and talk HTTP to them.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest
from test_services_support import Service, metrics, post_json, request, wait_until

from kit.control import call, deploy, protocol
from kit.nb.history import History
from kit.services.db import BadSQL, Store

# -- Store (unit) -------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(str(tmp_path / "primary.sqlite"))
    s.write([("CREATE TABLE kv (k TEXT PRIMARY KEY, v)", [])])
    return s


@pytest.mark.unit
def test_a_transaction_applies_whole_or_not_at_all(store):
    store.write([("INSERT INTO kv VALUES (?, ?)", ["a", 1])])
    position = store.position
    with pytest.raises(BadSQL) as refused:
        store.write(
            [("INSERT INTO kv VALUES (?, ?)", ["b", 2]), ("INSERT INTO kv VALUES ('a', 9)", [])]
        )
    assert refused.value.status == 409 and "UNIQUE" in str(refused.value)
    assert store.read("SELECT k, v FROM kv", [])["rows"] == [["a", 1]]  # b was rolled back
    assert store.position == position  # and no txid was used


@pytest.mark.unit
@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO kv VALUES ('r', random())",
        "INSERT INTO kv VALUES ('t', datetime('now'))",
        "INSERT INTO kv VALUES ('t', CURRENT_TIMESTAMP)",
        "ATTACH '/tmp/edgelab-attached.sqlite' AS other",
        "PRAGMA writable_schema = 1",
        "UPDATE _kit_position SET txid = 99",
        "COMMIT",
        "SELEC 1",
        "SELECT 1; SELECT 2",
    ],
)
def test_writes_that_could_not_replay_or_reach_outside_are_refused(store, sql):
    before = store.position
    with pytest.raises(BadSQL) as refused:
        store.write([(sql, [])])
    assert refused.value.status == 400
    assert store.position == before
    assert not Path("/tmp/edgelab-attached.sqlite").exists()


@pytest.mark.unit
def test_reads_are_read_only_bounded_and_say_their_position(store):
    store.write([("INSERT INTO kv VALUES (?, ?)", [f"k{i}", i]) for i in range(5)])
    answer = store.read("SELECT count(*) FROM kv", [])
    assert answer["rows"] == [[5]] and answer["position"] == store.position
    for sql in ("DELETE FROM kv", "SELECT * FROM _kit_log", "BEGIN"):
        with pytest.raises(BadSQL):
            store.read(sql, [])
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
    with pytest.raises(BadSQL, match="ran longer"):
        store.read(endless, [])
    assert store.read("SELECT count(*) FROM kv", [])["rows"] == [[5]]  # still serving


@pytest.mark.unit
def test_a_replica_applies_the_log_strictly_in_order(store, tmp_path):
    for i in range(20):
        store.write([("INSERT OR REPLACE INTO kv VALUES (?, ?)", [f"k{i % 3}", i])])
    replica = Store(str(tmp_path / "replica.sqlite"))
    changes = store.changes_after(0, 100)
    with pytest.raises(RuntimeError, match="arrived at position 0"):
        replica.apply(changes[1])  # a gap is never papered over
    for change in changes:
        replica.apply(change)
    query = "SELECT k, v FROM kv ORDER BY k"
    assert replica.read(query, []) == store.read(query, [])
    with pytest.raises(sqlite3.Error):  # a change that fails leaves the replica where it was
        replica.apply(
            {
                "txid": replica.position + 1,
                "at": 0,
                "statements": [["INSERT INTO nope VALUES (1)", []]],
            }
        )
    assert replica.position == store.position


@pytest.mark.unit
def test_a_write_past_the_size_bound_gets_507_and_changes_nothing(tmp_path):
    small = Store(str(tmp_path / "small.sqlite"), max_bytes=256 << 10)
    small.write([("CREATE TABLE blobs (b BLOB)", [])])
    with pytest.raises(BadSQL) as full:
        for _ in range(100):
            position = small.position
            small.write([("INSERT INTO blobs VALUES (zeroblob(32768))", [])])
    assert full.value.status == 507 and "full" in str(full.value)
    assert small.position == position  # the refused transaction left no trace
    assert small.read("SELECT count(*) FROM blobs", [])["rows"][0][0] == position - 1


@pytest.mark.unit
def test_the_kits_own_statements_are_never_cut_by_an_old_deadline(store, monkeypatch):
    # SQLite counts steps for the progress handler across statements, so many small ones
    # (a replica asked its position again and again) reach it after a users' statement
    store.write([("INSERT INTO kv VALUES (?, ?)", ["k", "v"])])
    later = time.monotonic() + 60  # long after that statement and its deadline
    monkeypatch.setattr("kit.services.db.time.monotonic", lambda: later)
    assert all(store.position == 2 for _ in range(5000))
    assert len(store.changes_after(0, 500)) == 2


# -- primary and replica (loopback) -------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("db")


@pytest.fixture(scope="module")
def pair(home):
    primary = Service("db", "--db", str(home / "primary.sqlite"), workdir=home)
    replica = Service(
        "db", "--db", str(home / "replica.sqlite"), "--primary", primary.url, workdir=home
    )
    yield primary, replica
    replica.stop()
    primary.stop()


def execute(service, *statements) -> dict:
    body = {"statements": [{"sql": sql, "params": params} for sql, params in statements]}
    reply = post_json(service.url, "/exec", body)
    assert reply.status == 200, reply.body
    return reply.json()


def position(service) -> dict:
    return request(service, "/position").json()


@pytest.mark.loopback
def test_the_replica_follows_in_commit_order_and_forwards_writes(pair):
    primary, replica = pair
    execute(primary, ("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER)", []))
    names = [f"c{random.randrange(10**6)}" for _ in range(4)]
    upsert = "INSERT INTO counters VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET n = n + 1"

    def bump(i: int) -> int:  # half the writes go to the replica, which forwards them
        target = replica if i % 2 else primary
        return execute(target, (upsert, [names[i % len(names)]]))["txid"]

    with ThreadPoolExecutor(8) as pool:
        txids = list(pool.map(bump, range(80)))
    assert sorted(txids) == list(range(min(txids), min(txids) + 80))  # one txid each, no gaps
    head = position(primary)["position"]
    assert wait_until(lambda: position(replica)["position"] == head)
    query = {"sql": "SELECT name, n FROM counters ORDER BY name", "params": []}
    on_primary = post_json(primary.url, "/query", query).json()
    on_replica = post_json(replica.url, "/query", query).json()
    assert on_replica["rows"] == on_primary["rows"] and on_replica["role"] == "replica"
    assert sum(n for name, n in on_replica["rows"] if name in names) == 80
    assert metrics(replica)["forwarded"] == 40


@pytest.mark.loopback
def test_a_paused_replica_lags_and_says_so_then_catches_up(pair):
    primary, replica = pair
    execute(primary, ("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)", []))
    created = position(primary)["position"]
    assert wait_until(lambda: position(replica)["position"] == created)
    call(replica.control, "POST", protocol.CONFIG, {"paused": True})
    try:
        written = execute(primary, ("INSERT INTO notes (body) VALUES (?)", ["while paused"]))
        behind = post_json(replica.url, "/query", {"sql": "SELECT count(*) FROM notes"}).json()
        assert behind["position"] < written["txid"]  # the answer says how old it is
        forwarded = execute(replica, ("INSERT INTO notes (body) VALUES (?)", ["via the replica"]))
        assert forwarded["forwarded_by"] == "replica" and forwarded["txid"] == written["txid"] + 1
        assert position(replica)["lag_tx"] >= 2
    finally:
        call(replica.control, "POST", protocol.CONFIG, {"paused": False})
    assert wait_until(lambda: position(replica)["position"] == position(primary)["position"])
    assert position(replica)["last_delay_s"] is not None


@pytest.mark.loopback
@pytest.mark.parametrize(
    "body, status, says",
    [
        (b"not json", 400, "bad request"),
        (b'{"sql": "SELECT 1", "params": [[1]]}', 400, "not lists"),
        (b'{"statements": []}', 400, "1 to 100"),
        (json.dumps({"statements": [{"sql": "SELECT 1"}] * 101}).encode(), 400, "1 to 100"),
        (b'{"sql": "DROP TABLE nope"}', 400, "no such table"),
        (b'{"sql": "ATTACH \'/tmp/edgelab-attached.sqlite\' AS x"}', 400, "not authorized"),
    ],
)
def test_bad_writes_get_a_reason_and_change_nothing(pair, body, status, says):
    primary, replica = pair
    for target in (primary, replica):
        before = position(primary)["position"]
        reply = request(target, "/exec", "POST", {"Content-Type": "application/json"}, body)
        assert reply.status == status, reply.body
        assert says in reply.json()["error"]
        assert position(primary)["position"] == before
    assert not Path("/tmp/edgelab-attached.sqlite").exists()


# -- env.db: a handler at a PoP reaches the database (loopback) -------------------------

DB_HANDLER = """
async def fetch(request, env, ctx):
    if request.method == "POST":
        done = await env.db.execute(
            [("CREATE TABLE IF NOT EXISTS visits (path TEXT)", []),
             ("INSERT INTO visits VALUES (?)", [request.path])]
        )
        return Response.json({"txid": done["txid"]})
    try:
        found = await env.db.query(request.query["sql"], on=request.query.get("on", "replica"))
    except DbError as error:
        return Response.json({"refused": str(error), "status": error.status}, 400)
    return Response.json({**found, "replica": env.db.replica, "lag": await env.db.position()})
"""


@pytest.mark.loopback
def test_a_handler_writes_through_env_db_and_reads_its_replica(pair, home):
    primary, replica = pair
    origin = Service("origin", workdir=home)
    pop = Service(
        "pop", "--pop", "x", "--origin", origin.url, "--db-replica", replica.url,
        "--db-primary", primary.url, workdir=home,
    )  # fmt: skip
    try:
        deploy(DB_HANDLER, pop.control)
        path = f"/visit/{random.randrange(10**6)}"
        txid = request(pop, path, "POST", body=b"").json()["txid"]
        assert wait_until(lambda: position(replica)["position"] >= txid)
        sql = quote("SELECT count(*) FROM visits WHERE path = '" + path + "'")
        read = request(pop, f"/read?sql={sql}").json()
        assert read["rows"] == [[1]] and read["role"] == "replica"
        assert read["replica"] == replica.url and read["lag"]["position"] >= txid
        assert request(pop, f"/read?sql={sql}&on=primary").json()["role"] == "primary"
        refused = request(pop, "/read?sql=" + quote("SELEC nothing"))
        assert refused.status == 400 and "syntax error" in refused.json()["refused"]
    finally:
        pop.stop()
        origin.stop()


@pytest.mark.loopback
def test_the_history_checker_catches_a_lagging_replica_breaking_read_your_writes(pair):
    primary, replica = pair
    execute(primary, ("CREATE TABLE IF NOT EXISTS carts (user TEXT PRIMARY KEY, item TEXT)", []))
    created = position(primary)["position"]
    assert wait_until(lambda: position(replica)["position"] == created)
    history, user = History(), f"u{random.randrange(10**6)}"
    upsert = "INSERT INTO carts VALUES (?, ?) ON CONFLICT(user) DO UPDATE SET item = excluded.item"
    select = {"sql": "SELECT item FROM carts WHERE user = ?", "params": [user]}
    call(replica.control, "POST", protocol.CONFIG, {"paused": True})
    try:
        for n in range(3):  # write through the replica (forwarded), then read it back there
            op = history.start(user, "write", "cart", f"item-{n}")
            history.end(op, txid=execute(replica, (upsert, [user, f"item-{n}"]))["txid"])
            op = history.start(user, "read", "cart")
            rows = post_json(replica.url, "/query", select).json()["rows"]
            history.end(op, value=rows[0][0] if rows else None)
    finally:
        call(replica.control, "POST", protocol.CONFIG, {"paused": False})
    assert history.summary()["read your writes violations"] == 3  # the replica never had them
    assert wait_until(lambda: position(replica)["position"] == position(primary)["position"])
    op = history.start(user, "read", "cart")
    history.end(op, value=post_json(replica.url, "/query", select).json()["rows"][0][0])
    assert history.summary()["read your writes violations"] == 3  # caught up: no new one
