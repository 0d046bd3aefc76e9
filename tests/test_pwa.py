"""The offline-first app in a real browser on a world: online, offline, back online.

Chromium runs on user-berlin, the app's server on the origin in Ashburn, and
"offline" is the user's own link cut in the world (``browser.offline()``), unless a
test says it uses DevTools' emulation. What the server received is counted by the
sync service itself (its log of applied writes), never inferred from the page.

The checks of the offline reload and of the offline writes are functions, so that
``test_the_checks_reject_wrong_service_workers`` can show that each fails, with a
message naming the mistake, on a Service Worker that gets it wrong (``WRONG``).
"""

import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from kit.net import World, registry
from kit.net.topology import default_world
from kit.pwa import PORT, serve_pwa, start_browser
from kit.pwa.server import APP, SHELL

pytestmark = pytest.mark.world
ROOT = Path(__file__).resolve().parents[1]
USER = "user-berlin"


def wait_for(condition, timeout: float, what: str):
    """Poll ``condition`` until it returns something true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.2)
    return found


@pytest.fixture(scope="module")
def setup():
    with World(replace(default_world(), name="pwa")) as world:
        app = serve_pwa(world)
        browser = start_browser(world, USER, app.url)
        try:
            yield world, app, browser
        finally:
            browser.stop()


def test_the_app_loads_online_and_a_service_worker_controls_it(setup):
    world, app, browser = setup
    before = app.metrics()["static"]
    assert browser.open(app.url) > 0
    assert browser.do(lambda page: page.evaluate("isSecureContext")), "not a secure context"
    assert browser.wait_controlled() == f"{app.url}/sw.js"
    # Workbox precached the shell at install, each file with its revision.
    cached = browser.do(
        lambda page: page.evaluate(
            """async () => {
                const names = await caches.keys();
                const urls = [];
                for (const name of names) {
                    for (const r of await (await caches.open(name)).keys()) urls.push(r.url);
                }
                return {names, urls};
            }"""
        )
    )
    assert any(n.startswith("workbox-precache") for n in cached["names"]), cached["names"]
    for name in SHELL:
        assert any(f"/{name}?__WB_REVISION__=" in u for u in cached["urls"]), name
    assert app.metrics()["static"] > before, "the server served none of the app's files"


class Wrong(AssertionError):
    """A check of the app failed; the message names what the app got wrong."""


def expect(condition: object, message: str) -> None:
    if not condition:
        raise Wrong(message)


def check_offline_reload(world: World, app, browser) -> None:
    """A reload with the user's link cut shows the app and its notes, and GET /notes
    is answered from the Service Worker's cache (the browser is online on entry)."""
    text = f"before the cut {uuid.uuid4().hex[:8]}"
    expect(browser.add_note(text) == "synced", "a note written online did not sync")
    expect([text] in app.applied().values(), "a note written online is not on the server")
    browser.reload()  # controlled now: the icon goes through the Service Worker's CacheFirst
    browser.wait_settled()  # and its GET /notes is in NetworkFirst's cache
    browser.offline()
    try:
        # The cut is real: a new connection from the user's host fails at once...
        with pytest.raises(Exception, match="Couldn't connect|failed"):
            world.run(browser.host, f"curl -sS -m 2 -o /dev/null {app.url}/")
        # ...and Chromium sees it: navigator.onLine follows the interface.
        expect(browser.do(lambda page: page.evaluate("navigator.onLine")) is False, "onLine")
        try:
            browser.reload(timeout=4)
        except Exception as error:  # noqa: BLE001 - any failure to open is the finding
            raise Wrong(f"the app did not open with the link cut (precache?): {error}") from None
        shown = [n["text"] for n in browser.shown()]
        expect(text in shown, f"offline, the page lost a note it had: {shown}")
        listed = browser.do(
            lambda page: page.evaluate(
                "fetch('/notes', {signal: AbortSignal.timeout(6000)})"
                ".then(r => r.json()).then(b => b.notes).catch(() => null)"
            )
        )
        expect(
            listed is not None and text in [n["text"] for n in listed],
            f"offline, GET /notes was not answered from the cache (NetworkFirst?): {listed}",
        )
    finally:
        browser.online()


def check_offline_writes(app, browser, count: int = 3) -> None:
    """Notes written with the link cut are queued, and after reconnecting each is
    applied at the server exactly once, with its idempotency key."""
    browser.offline()
    texts = [f"offline {i} {uuid.uuid4().hex[:8]}" for i in range(count)]
    try:
        for t in texts:  # stop at the first that is not queued: the rest would wait too
            state = browser.add_note(t, timeout=5)
            expect(state == "queued", f"a note written offline was not queued: {state}")
        on_server = {t for written in app.applied().values() for t in written}
        expect(not on_server & set(texts), "a note reached the server while the link was cut")
        shown = {n["text"]: n["state"] for n in browser.shown()}
        expect(all(shown.get(t) == "queued" for t in texts), f"not shown as queued: {shown}")
    finally:
        browser.online()

    def synced():
        applied = app.applied()
        ids = {written[0]: note_id for note_id, written in applied.items()}
        return applied if all(t in ids for t in texts) else None

    applied = wait_for(synced, 30, "the queued notes on the server after reconnecting")
    for t in texts:
        times = sum(written.count(t) for written in applied.values())
        expect(times == 1, f"{t!r} was applied {times} times")
    # Each came with its idempotency key, so a second delivery would have been answered
    # from the key's stored answer instead of applied again.
    rows = [row for row in app.sync.applied_log() if row[4] in texts]
    expect(all(row[3] for row in rows), f"replayed without its Idempotency-Key: {rows}")
    wait_for(
        lambda: all(n["state"] == "synced" for n in browser.shown() if n["text"] in texts),
        10,
        "the page showing the notes synced",
    )


def test_offline_a_reload_still_shows_the_app_and_its_notes(setup):
    check_offline_reload(*setup)


def test_notes_written_offline_reach_the_server_once_after_reconnect(setup):
    world, app, browser = setup
    check_offline_writes(app, browser)
    # Chromium's Background Sync woke the Service Worker, and the page caught up.
    events = browser.events()
    assert {"type": "synced", "how": "sync-event"} in events, events


# Plausible wrong Service Workers: (name, what to change in sw.js, check, the message).
WRONG = [
    (
        "no precache: the shell is cached only by the browser's HTTP cache",
        [("precacheAndRoute(self.PRECACHE);", "void self.PRECACHE;")],
        "reload",
        "did not open with the link cut",
    ),
    (
        "NetworkOnly for GET /notes: no copy for when the network fails",
        [
            (
                "new NetworkFirst({cacheName: 'api', networkTimeoutSeconds: 3})",
                "new workbox.strategies.NetworkOnly()",
            )
        ],
        "reload",
        "GET /notes was not answered from the cache",
    ),
    (
        "no route for writes: a POST offline fails in the page",
        [("for (const method of ['POST', 'PUT', 'DELETE'])", "for (const method of [])")],
        "writes",
        "was not queued",
    ),
    (
        "the queued copy rebuilt without the request's headers",
        [
            (
                "await queue.pushRequest({request});",
                "await queue.pushRequest({request: new Request(request.url, {"
                "method: request.method, body: await request.clone().text(),"
                " headers: {'Content-Type': 'application/json'}})});",
            )
        ],
        "writes",
        "without its Idempotency-Key",
    ),
    (
        "a write waits for the network with no timeout (on a cut link's open connection)",
        [
            ("if (!navigator.onLine) throw new Error('offline');", ""),
            (
                "return await fetch(request.clone(), "
                "{signal: AbortSignal.timeout(WRITE_TIMEOUT_MS)});",
                "return await fetch(request.clone());",
            ),
        ],
        "writes",
        "was not queued",
    ),
]


def test_the_checks_reject_wrong_service_workers(setup, tmp_path):
    world, app, _ = setup
    ports = [PORT + 1 + i for i in range(len(WRONG))]
    served = []
    for (name, changes, _check, _msg), port in zip(WRONG, ports, strict=True):
        folder = tmp_path / f"app-{port}"
        shutil.copytree(APP, folder)
        sw = (folder / "sw.js").read_text()
        for old, new in changes:
            assert sw.count(old) == 1, f"{name}: the change no longer applies to sw.js"
            sw = sw.replace(old, new)
        (folder / "sw.js").write_text(sw)
        served.append(serve_pwa(world, port=port, app=folder, sync=app.sync))
    other = start_browser(world, "user-london", *(w.url for w in served))
    try:
        for (name, _change, check, message), wrong in zip(WRONG, served, strict=True):
            other.fresh()
            other.open(wrong.url)
            other.wait_controlled()
            other.wait_settled()
            with pytest.raises(Wrong, match=message) as caught:
                if check == "reload":
                    check_offline_reload(world, wrong, other)
                else:
                    check_offline_writes(wrong, other, count=2)
            print(f"{name}: rejected: {caught.value}")
    finally:
        other.online()
        other.stop()
        for wrong in served:
            wrong.stop()


def test_devtools_offline_emulation_reaches_the_service_worker_too(setup):
    world, app, browser = setup
    browser.offline(emulate=True)
    text = f"emulated {uuid.uuid4().hex[:8]}"
    try:
        assert (
            browser.do(lambda page: page.context.service_workers[0].evaluate("navigator.onLine"))
            is False
        )
        failed = browser.do(
            lambda page: page.context.service_workers[0].evaluate(
                "fetch('/notes?from-the-worker').then(() => 'answered', e => String(e))"
            )
        )
        assert "Failed to fetch" in failed, failed
        assert browser.add_note(text) == "queued"
    finally:
        browser.online()
    wait_for(
        lambda: [text] in app.applied().values(),
        30,
        "the note queued under emulation, on the server",
    )
    assert sum(written.count(text) for written in app.applied().values()) == 1


def test_world_stop_ends_chromium_and_the_driver(setup):
    world, app, browser = setup
    pids = browser.processes()
    assert pids, "no Chromium process found in the world"
    scratch = Path(world.record.scratch)
    world.stop()
    # The first process is the world's (marked) and is killed; the ones it started
    # (zygotes, renderers, the network service) notice and exit within a second.
    wait_for(lambda: not any(registry.running(p) for p in pids), 10, "Chromium's processes ending")
    assert not scratch.exists()
    # Its driver notices the browser is gone, and the browser's thread ends.
    browser._thread.join(timeout=10)
    assert not browser._thread.is_alive(), "the Playwright driver outlived the world"


# Two hosts are enough to see Chromium end with its owner, and start in a second.
OWNER = """
import time
from kit.net import World
from kit.pwa import serve_pwa, start_browser
world = World({
    "name": "pwa-killed",
    "regions": {"a": {"city": "A", "country": "DE"}, "b": {"city": "B", "country": "US"}},
    "backbone": [{"a": "a", "b": "b", "rtt_ms": 20}],
    "nodes": {"origin": {"kind": "origin", "region": "b"},
              "user-a": {"kind": "client", "region": "a"}},
}).start()
app = serve_pwa(world)
browser = start_browser(world, "user-a", app.url)
browser.open(app.url)
print(world.record.id, *browser.processes(), flush=True)
time.sleep(600)
"""


def test_a_killed_owner_takes_chromium_along():
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        wid, *pids = owner.stdout.readline().split()
        assert pids, "the owner started no browser"
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        owner.stdout.close()
    rec = next(r for r in registry.load_records() if r.id == wid)
    wait_for(
        lambda: not any(registry.running(int(p)) for p in pids),
        10,
        "Chromium ending with its killed owner",
    )
    assert registry.world_processes(rec) == []
    registry.clean()  # what the next world does first: the record goes
    assert not rec.path.exists()
