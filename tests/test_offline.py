"""Chapter 10's layer: Workbox's strategies on a device's proxy, idempotent sync, CRDT merge.

World tests run on the session world: the sync service on `origin` (Ashburn) and a proxy
on user-berlin and user-vienna (a city no chapter names). Offline is the device's access
link cut, lie-fi its loss at 100 %, a slow server a rule's think time, a failing one a
rule's status. Unit tests check the pure pieces.
"""

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from pycrdt import Doc, Text

from kit.net import faults, registry
from kit.offline import request_spec, start_offline
from kit.services.swproxy import Route
from kit.services.sync import asset, fingerprint, parse_key

A, B = "user-berlin", "user-vienna"
ROOT = Path(__file__).resolve().parents[1]

# A notebook kernel that starts the app on a small world and is then killed.
KILLED_OWNER = """
import time
from kit.net import World
from kit.offline import start_offline
world = World({
    "name": "offline-crash",
    "regions": {"a": {"city": "A", "country": "US"}, "b": {"city": "B", "country": "DE"}},
    "backbone": [{"a": "a", "b": "b", "rtt_ms": 20}],
    "nodes": {"origin": {"kind": "origin", "region": "a"},
              "user-b": {"kind": "client", "region": "b"}},
}).start()
app = start_offline(world, devices=["user-b"])
print(world.record.id, flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def app(world):
    app = start_offline(world, devices=(A, B))
    yield app
    app.stop()


@pytest.fixture
def fresh(app):
    """A clean server and cache, no rules, the network up; undone whatever the test did."""
    app.forget()
    app.server_config({"version": "v1", "think_ms": 0, "rules": []})
    for device in (A, B):
        app.clear_cache(device)
    yield app
    for device in (A, B):
        app.online(device)
    app.server_config({"rules": []})


def rules(app, *rules):
    app.server_config({"rules": list(rules)})


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": f'"{value}"'}


# -- unit --------------------------------------------------------------------------------


@pytest.mark.unit
def test_idempotency_key_syntax():
    assert parse_key('"8e03978e-40d5"') == "8e03978e-40d5"  # the draft's sf-string
    assert parse_key("bare-key") == "bare-key"
    assert parse_key(r'"a\"b"') == 'a"b'
    assert parse_key(None) is None
    for bad in ('""', "x" * 256, '"caf\u00e9"', "tab\there"):
        with pytest.raises(ValueError, match="printable ASCII"):
            parse_key(bad)
    one = fingerprint("POST", "/notes", b'{"text": "a"}')
    assert one == fingerprint("POST", "/notes", b'{"text": "a"}')
    assert one != fingerprint("PUT", "/notes", b'{"text": "a"}')
    assert one != fingerprint("POST", "/notes", b'{"text": "b"}')


@pytest.mark.unit
def test_routes_and_assets():
    assert Route.parse({"match": "/app/", "strategy": "CacheFirst"}).matches("/app/x.js")
    assert not Route.parse({"match": "/app/", "strategy": "CacheFirst"}).matches("/notes")
    assert Route.parse({"match": r"re:\.svg$", "strategy": "CacheOnly"}).matches("/a/b.svg")
    for bad, says in (
        ({"match": "/", "strategy": "CacheFirstish"}, "one of CacheFirst"),
        ({"match": "/", "strategy": "NetworkFirst", "network_timeout_s": 0}, "seconds > 0"),
        ({"strategy": "NetworkOnly"}, "a route is"),
    ):
        with pytest.raises(ValueError, match=says):
            Route.parse(bad)
    assert asset("app.js", "v1") == asset("app.js", "v1") != asset("app.js", "v2")


# -- the strategies ----------------------------------------------------------------------


def test_cache_first(fresh):
    app = fresh
    app.set_routes(A, [{"match": "/app/", "strategy": "CacheFirst"}])
    first, second = app.requests(A, [request_spec("/app/logo.svg")] * 2)
    assert (first.status, first.source, first.strategy) == (200, "network", "CacheFirst")
    assert (second.source, second.body) == ("cache", first.body)
    app.server_config({"version": "v2"})  # never asked again: the old body stays
    assert app.fetch(A, "/app/logo.svg").body == first.body
    rules(app, {"match": "/app/style.css", "status": 500})
    failed, again = app.requests(A, [request_spec("/app/style.css")] * 2)
    assert (failed.status, failed.source, again.source) == (500, "network", "network")
    assert app.cache_size(A)["entries"] == 1, "a 500 must not be stored"
    app.offline(A)
    cached, never = app.requests(A, [request_spec("/app/logo.svg"), request_spec("/app/app.js")])
    assert (cached.status, cached.source) == (200, "cache")
    assert never.status == 504 and never.no_response


def test_network_first(fresh):
    app = fresh
    app.set_routes(A, [{"match": "/notes", "strategy": "NetworkFirst", "network_timeout_s": 0.5}])
    assert app.fetch(A, "/notes").source == "network"
    app.fetch(A, "/notes", "POST", json_body={"id": "n1", "text": "one"}, direct=True)
    fresh_list = app.fetch(A, "/notes")
    assert fresh_list.source == "network" and fresh_list.json()["notes"][0]["text"] == "one"
    app.fetch(A, "/notes", "POST", json_body={"id": "n2", "text": "two"}, direct=True)
    # An HTTP error is an answer: NetworkFirst returns it, and does not store it.
    rules(app, {"match": "/notes", "status": 500})
    assert (app.fetch(A, "/notes").status, app.fetch(A, "/notes").source) == (500, "network")
    # Too slow: the cached answer at the timeout; the late answer still updates the cache.
    rules(app, {"match": "/notes", "think_ms": 1500})
    slow = app.fetch(A, "/notes")
    assert (slow.status, slow.source) == (200, "cache")
    assert [n["id"] for n in slow.json()["notes"]] == ["n1"]
    app.settle(A)
    rules(app)
    app.offline(A)  # no route: the cache, which the late answer updated
    offline = app.fetch(A, "/notes")
    assert offline.source == "cache" and [n["id"] for n in offline.json()["notes"]] == ["n1", "n2"]
    app.clear_cache(A)
    assert app.fetch(A, "/notes").no_response


def test_network_first_under_lie_fi(fresh):
    app = fresh
    app.set_routes(A, [{"match": "/notes", "strategy": "NetworkFirst", "network_timeout_s": 0.5}])
    app.fetch(A, "/notes")
    app.lie_fi(A)  # the link is up and carries nothing: only the timeout helps
    answer = app.fetch(A, "/notes")
    assert (answer.status, answer.source) == (200, "cache")
    app.set_routes(A, [{"match": "/notes", "strategy": "NetworkOnly", "network_timeout_s": 0.5}])
    assert app.fetch(A, "/notes").no_response


def test_stale_while_revalidate(fresh):
    app = fresh
    app.set_routes(A, [{"match": "/app/", "strategy": "StaleWhileRevalidate"}])
    v1 = app.fetch(A, "/app/app.js")
    assert v1.source == "network"
    app.server_config({"version": "v2"})
    stale = app.fetch(A, "/app/app.js")
    assert stale.source == "stale-while-revalidate" and stale.body == v1.body
    app.settle(A)  # the background fetch has stored v2
    updated = app.fetch(A, "/app/app.js")
    assert updated.body == asset("app.js", "v2") and updated.source == "stale-while-revalidate"
    app.settle(A)
    rules(app, {"match": "/app/*", "status": 500})
    assert app.fetch(A, "/app/app.js").body == updated.body
    app.settle(A)
    rules(app)
    app.offline(A)  # the 500 fetched in the background did not replace the cached answer
    assert app.fetch(A, "/app/app.js").body == updated.body
    assert app.fetch(A, "/app/style.css").no_response


def test_network_only_cache_only_and_unrouted(fresh):
    app = fresh
    app.set_routes(A, [{"match": "/app/", "strategy": "NetworkOnly"}])
    assert app.fetch(A, "/app/logo.svg").source == "network"
    assert app.cache_size(A)["entries"] == 0
    app.set_routes(A, [{"match": "/app/", "strategy": "CacheOnly"}])
    assert app.fetch(A, "/app/logo.svg").no_response
    app.set_routes(A, [{"match": "/app/", "strategy": "CacheFirst"}])
    app.fetch(A, "/app/logo.svg")
    app.set_routes(A, [{"match": "/app/", "strategy": "CacheOnly"}])
    app.server_config({"version": "v3"})
    assert app.fetch(A, "/app/logo.svg").body == asset("logo.svg", "v1")
    app.offline(A)
    assert app.fetch(A, "/app/logo.svg").source == "cache"
    unrouted = app.fetch(A, "/notes", "POST", json_body={"text": "x"})
    assert unrouted.no_response and unrouted.strategy == "none"
    assert app.server_counts()["applied"] == 0


def test_a_page_offline_comes_from_the_cache(fresh):
    app = fresh
    app.set_routes(B, [{"match": "/app/", "strategy": "CacheFirst"}])
    online = app.page(B)
    assert online.ok and len(online.parts) == 5
    assert set(online.sources.values()) == {"network"}
    app.offline(B)
    offline = app.page(B)
    assert offline.ok and set(offline.sources.values()) == {"cache"}


# -- idempotent sync ---------------------------------------------------------------------


def test_a_key_is_applied_once_and_no_key_every_time(fresh):
    app = fresh
    note = {"id": "k1", "text": "hello"}
    k = f"k-{uuid.uuid4()}"
    first, again = app.requests(
        A, [request_spec("/notes", "POST", note, headers=key(k))] * 2, direct=True
    )
    assert first.status == again.status == 201 and first.body == again.body
    assert again.headers.get("x-idempotent-replay") == "true"
    put = request_spec("/notes/k1", "PUT", {"text": "edited"})
    app.requests(A, [put, put], direct=True)
    counts = app.server_counts()
    assert counts["per_key"] == {k: 1}
    assert (counts["applied"], counts["replayed"], counts["keyless"]) == (3, 1, 2)
    assert app.fetch(A, "/notes/k1", direct=True).json()["rev"] == 3  # the PUT applied twice
    reused = app.fetch(
        A, "/notes", "POST", json_body={"id": "k2", "text": "other"}, headers=key(k), direct=True
    )
    assert reused.status == 422 and app.server_counts()["applied"] == 3


def test_concurrent_retries_of_one_key_apply_it_once(fresh):
    app = fresh
    rules(app, {"match": "/notes*", "think_ms": 400})  # the first is still being processed
    k = f"c-{uuid.uuid4()}"
    spec = request_spec("/notes", "POST", {"id": "c1", "text": "once"}, headers=key(k))
    answers = app.requests(A, [spec] * 6, direct=True, parallel=True)
    assert sorted({a.status for a in answers}) in ([201, 409], [201])
    assert all(a.headers.get("retry-after") == "1" for a in answers if a.status == 409)
    assert sum(a.status == 201 and "x-idempotent-replay" not in a.headers for a in answers) == 1
    later = app.fetch(A, "/notes", "POST", json_body={"id": "c1", "text": "once"}, headers=key(k),
                      direct=True)  # fmt: skip
    assert later.status == 201 and later.headers.get("x-idempotent-replay") == "true"
    exists = app.fetch(A, "/notes", "POST", json_body={"id": "c1", "text": "again"},
                       headers=key(f"c-{uuid.uuid4()}"), direct=True)  # fmt: skip
    assert exists.status == 409 and "retry-after" not in exists.headers  # not worth a retry
    assert app.server_counts()["per_key"] == {k: 1}
    assert len(app.applied_log()) == 1


def test_a_lost_answer_is_replayed_with_the_key_and_duplicated_without(fresh):
    app = fresh
    rules(app, {"match": "/notes*", "lose_answer": 1.0})
    k = f"l-{uuid.uuid4()}"
    with_key = request_spec("/notes", "POST", {"id": "l1", "text": "kept"}, headers=key(k))
    without = request_spec("/notes", "POST", {"text": "twice"})  # the server picks the id
    lost = app.requests(A, [with_key, without], direct=True)
    assert [a.status for a in lost] == [0, 0], "the answers should have been dropped"
    rules(app)
    retried = app.requests(A, [with_key, without], direct=True)
    assert retried[0].status == 201 and retried[0].headers.get("x-idempotent-replay") == "true"
    texts = [n["text"] for n in app.fetch(A, "/notes", direct=True).json()["notes"]]
    assert texts.count("kept") == 1 and texts.count("twice") == 2
    rules(app, {"match": "/notes*", "status": 500})  # a failure stores nothing...
    k2 = f"f-{uuid.uuid4()}"
    spec = request_spec("/notes", "POST", {"id": "f1", "text": "later"}, headers=key(k2))
    assert app.requests(A, [spec], direct=True)[0].status == 500
    rules(app)
    assert app.requests(A, [spec], direct=True)[0].status == 201  # ...so the retry applies
    assert app.server_counts()["per_key"] == {k: 1, k2: 1}


def test_hostile_input_gets_a_4xx_and_changes_nothing(fresh):
    app = fresh
    app.push_update(A, "doc", Doc().get_update())
    before = app.fetch(A, "/docs/doc", direct=True).body
    specs = [
        request_spec("/notes", "POST", body=b"{not json", headers={"Content-Type": "x"}),
        request_spec("/notes", "POST", {"id": "a b", "text": "bad id"}),
        request_spec("/notes", "POST", {"text": 42}),
        request_spec("/notes/x", "PUT", {"id": "y", "text": "ids differ"}),
        request_spec("/notes", "POST", {"text": "k"}, headers={"Idempotency-Key": "x" * 300}),
        request_spec("/notes", "POST", body=b"x" * (2 << 20)),
        request_spec("/docs/doc", "POST", body=b"\x01\x02garbage"),
        request_spec("/docs/doc/sync", "POST", body=b"\xff\xff\xff"),
        request_spec("/docs/..%2f", "POST", body=b"\x00"),
    ]
    answers = app.requests(A, specs, direct=True)
    assert all(400 <= a.status < 500 for a in answers), [(a.path, a.status) for a in answers]
    assert app.server_counts()["applied"] == 0
    assert app.fetch(A, "/docs/doc", direct=True).body == before


# -- CRDT merge ----------------------------------------------------------------------------


def test_concurrent_offline_edits_merge(fresh):
    app = fresh
    base = Doc()
    base.get("text", type=Text).insert(0, "shared draft")
    app.push_update(A, "merge", base.get_update())
    devices = {}
    for device in (A, B):  # each device syncs the document, then goes offline
        doc = Doc()
        doc.apply_update(app.pull_missing(device, "merge", doc.get_state()).body)
        devices[device] = doc
        app.offline(device)
    devices[A].get("text", type=Text).insert(0, "Berlin: ")
    devices[B].get("text", type=Text).insert(12, " (Vienna)")
    for device, doc in devices.items():  # reconnect: send what the server lacks, get the rest
        app.online(device)
        whole = app.pull_missing(device, "merge", Doc().get_state())  # the whole document
        known = Doc()
        known.apply_update(whole.body)
        state = app.server_state(device, "merge")  # sync step 1 from the server's side
        assert state.status == 200 and state.body == known.get_state()
        assert app.push_update(device, "merge", doc.get_update(state.body)).status == 200
    for doc in devices.values():
        doc.apply_update(app.pull_missing(A, "merge", doc.get_state()).body)
    texts = {str(doc.get("text", type=Text)) for doc in devices.values()}
    assert texts == {"Berlin: shared draft (Vienna)"}


# A device's outbox, sent one operation after another, each retried until it is answered:
# with a key made when the operation was (KEYED = True), or without one.
QUEUE = """
import http.client, json, os, time
from urllib.parse import urlsplit
KEYED, OPS = {keyed}, {ops}
server = urlsplit(os.environ["SYNC_URL"])
sent = 0
for i in range(OPS):
    headers = {{"Content-Type": "application/json"}}
    if KEYED:
        headers["Idempotency-Key"] = f'"op-{{i}}"'
    body = json.dumps({{"text": f"op {{i}}"}})  # the server picks the note's id
    while True:
        sent += 1
        try:
            conn = http.client.HTTPConnection(server.hostname, server.port, timeout=1.5)
            conn.request("POST", "/notes", body, headers)
            if conn.getresponse().status < 300:
                break
        except OSError:
            pass
        time.sleep(0.1)
print(json.dumps({{"sent": sent}}), flush=True)
"""


@pytest.mark.parametrize("keyed", [True, False])
def test_a_queue_through_disconnects_applies_each_keyed_operation_once(fresh, world, keyed):
    app, ops = fresh, 25
    rules(app, {"match": "/notes*", "lose_answer": 0.3})  # and the link is cut now and then
    schedule = faults.play(world, app.disconnects(A, seed=7, duration=4, count=2))
    queue = app.start_program(A, QUEUE.format(keyed=keyed, ops=ops), name=f"queue{int(keyed)}")
    try:
        queue.proc.wait(90)
    finally:
        schedule.wait(30)
    sent = json.loads(queue.log().splitlines()[-1])["sent"]
    texts = [row[4] for row in app.applied_log()]
    per_op = [texts.count(f"op {i}") for i in range(ops)]
    assert min(per_op) == 1, "an operation was lost"
    assert sent > ops, "nothing was retried: the check would not see duplicates"
    if keyed:
        assert max(per_op) == 1 and len(app.server_counts()["per_key"]) == ops
    else:
        assert max(per_op) > 1, "a retry without a key should have been applied again"


# -- nothing left behind -------------------------------------------------------------------


def test_stop_removes_the_services_and_their_files(app, world):
    """The last test of the module's app: stop() leaves only the logs in scratch."""
    app.stop()
    assert not any(service.running for service in app.services.values())
    scratch = Path(world.record.scratch)
    left = [p.name for p in scratch.glob("*") if ".sync" in p.name or ".swproxy" in p.name]
    left += [p.name for p in scratch.glob("*.swcache*")]
    assert all(name.endswith(".log") for name in left), left


@pytest.mark.world
def test_a_killed_owner_takes_the_app_along():
    owner = subprocess.Popen(
        [sys.executable, "-c", KILLED_OWNER], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        wid = owner.stdout.readline().strip()
        assert wid, "the owner did not start its app"
        record = next(r for r in registry.load_records() if r.id == wid)
        commands = [
            Path(f"/proc/{p}/cmdline").read_bytes() for p in registry.world_processes(record)
        ]
        assert any(b"kit.services.sync" in c for c in commands)
        assert any(b"kit.services.swproxy" in c for c in commands)
    finally:
        owner.kill()
        owner.wait()
        owner.stdout.close()
    deadline = time.monotonic() + 10
    while registry.world_processes(record) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert registry.world_processes(record) == [], "a service outlived its owner"
    assert wid in [w for w, _ in registry.clean()]
    assert not Path(record.scratch).exists() and not record.path.exists()
