"""The offline-first app in a real browser on a world: online, offline, back online.

Chromium runs on user-berlin, the app's server on the origin in Ashburn, and
"offline" is the user's own link cut in the world (``browser.offline()``), unless a
test says it uses DevTools' emulation. What the server received is counted by the
server itself (its control socket), never inferred from the page.
"""

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
from kit.pwa import serve_pwa, start_browser
from kit.pwa.server import SHELL

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


def test_offline_a_reload_still_shows_the_app_and_its_notes(setup):
    world, app, browser = setup
    text = f"before the cut {uuid.uuid4().hex[:8]}"
    assert browser.add_note(text) == "synced"
    assert [text] in app.applied().values()
    browser.reload()  # controlled now: the icon goes through the Service Worker's CacheFirst
    browser.wait_settled()  # and its GET /notes is in NetworkFirst's cache
    browser.offline()
    try:
        # The cut is real: a new connection from the user's host fails at once...
        with pytest.raises(Exception, match="Couldn't connect|failed"):
            world.run(USER, f"curl -sS -m 2 -o /dev/null {app.url}/")
        # ...and Chromium sees it: navigator.onLine follows the interface.
        assert browser.do(lambda page: page.evaluate("navigator.onLine")) is False
        assert browser.reload() > 0
        shown = browser.shown()
        assert text in [n["text"] for n in shown], f"the note is gone offline: {shown}"
        # NetworkFirst answers the API's GET from its cache when the network fails.
        listed = browser.do(
            lambda page: page.evaluate("fetch('/notes').then(r => r.json()).then(b => b.notes)")
        )
        assert text in [n["text"] for n in listed], "GET /notes did not come from the cache"
    finally:
        browser.online()


def test_notes_written_offline_reach_the_server_once_after_reconnect(setup):
    world, app, browser = setup
    browser.offline()
    texts = [f"offline {i} {uuid.uuid4().hex[:8]}" for i in range(3)]
    try:
        states = [browser.add_note(t) for t in texts]
        assert states == ["queued"] * 3, f"the Service Worker did not queue them: {states}"
        on_server = {t for written in app.applied().values() for t in written}
        assert not on_server & set(texts), "a note reached the server while the link was cut"
        shown = {n["text"]: n["state"] for n in browser.shown()}
        assert all(shown.get(t) == "queued" for t in texts), shown
    finally:
        browser.online()

    def synced():
        applied = app.applied()
        ids = {written[0]: note_id for note_id, written in applied.items()}
        return applied if all(t in ids for t in texts) else None

    applied = wait_for(synced, 30, "the queued notes on the server after reconnecting")
    for t in texts:
        times = sum(written.count(t) for written in applied.values())
        assert times == 1, f"{t!r} was applied {times} times"
    # Each came with its idempotency key, so a second delivery would have been answered
    # from the key's stored answer instead of applied again.
    rows = [row for row in app.sync.applied_log() if row[4] in texts]
    assert len(rows) == 3 and all(row[3] for row in rows), rows
    # Chromium's Background Sync woke the Service Worker, and the page caught up.
    events = browser.events()
    assert {"type": "synced", "how": "sync-event"} in events, events
    wait_for(
        lambda: all(n["state"] == "synced" for n in browser.shown() if n["text"] in texts),
        10,
        "the page showing the notes synced",
    )


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
