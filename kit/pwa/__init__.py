"""An offline-first app on a world: the PWA served from the origin, and a real
browser on a user's host.

    from kit.pwa import serve_pwa, start_browser

    app = serve_pwa(world)                        # kit/pwa/app/ and the sync service, on origin
    browser = start_browser(world, "user-berlin", app.url)
    browser.open(app.url)                         # ms to interactive, as the page measured it
    browser.do(lambda page: page.title())         # any Playwright call, with the Page
    browser.offline(); browser.online()           # the device's own link, cut and restored
    app.applied()                                 # what the sync service applied, per note
    browser.stop()                                # world.stop() stops it too

The app (``kit/pwa/app/``) is a notes list: ``store.js`` keeps notes in IndexedDB,
``api.js`` is the one module that calls the server, ``sw.js`` is the Service Worker,
built from Workbox's own files vendored beside it (``kit/pwa/vendor.sh``). The
server (``kit/pwa/server.py``) serves those files and passes the notes API on to
the sync service (``kit.services.sync``, started with ``kit.offline``), which
applies each idempotency key once and logs every write it applied.

The browser
-----------
Chromium (Debian's ``/usr/bin/chromium``) runs inside the user's network namespace
and reaches the origin over the world's links. Playwright (the Python package, only
a driver: ``playwright install`` is never run) launches it through a small script
that enters the namespace (``mnexec -a``) and execs Chromium. Playwright talks to
it over a pipe (``--remote-debugging-pipe``), so no debugging port exists for any
world host to reach.

Clean-up: the browser's first process carries the world's mark and lives in the
world's namespace, so ``world.stop()`` and a later ``python -m kit clean`` end it
like any process of the world. The processes it starts (zygotes, renderers, the
network service) get an environment without the mark and end within a second of
it. Its parent is Playwright's driver, which closes it and removes its profile
folder when the Python process that owns it exits, killed or not.

Playwright's synchronous API refuses to run where an asyncio loop runs (a Jupyter
kernel's main thread), and its objects belong to the thread that made them. So a
``Browser`` runs Playwright in a thread of its own, and ``browser.do(fn)`` runs
``fn(page)`` there and returns its result: the same call works in a notebook and
in pytest.

A secure context
----------------
A Service Worker registers only in a secure context: ``https://``, or
``http://localhost``. The app is served from the origin's world address
(``http://10.x.y.z:8080``), which is neither, so the browser is started with
Chromium's ``--unsafely-treat-insecure-origin-as-secure=http://10.x.y.z:8080``:
that one origin is treated as secure, and the page still talks to the origin over
the world's network, through the user's own link. (The other way, a relay on the
user's host from ``localhost``, would put a process between the browser and the
link whose cut we want the browser to see.)

Offline, three ways
-------------------
``browser.offline()`` cuts the user's access link in the world: its interface goes
down, and Chromium sees it (``navigator.onLine`` turns false in the page and in the
Service Worker; when the link is restored the page gets ``online`` and the Service
Worker Background Sync's ``sync`` event, measured about 2 s later). A new
connection fails at once, but a request on a connection that was open before the
cut neither fails nor finishes: the interface keeps its address, so Chromium keeps
its idle connections. That is why ``sw.js`` does not wait for the network when
``navigator.onLine`` is false, and gives a write 4 s when it is true.

``offline(emulate=True)`` is DevTools' emulation (Playwright's
``context.set_offline``): with this Chromium it reaches the Service Worker too, and
every request fails at once. It is the kinder case: the hanging connection above
never happens there.

Lie-fi, the link up and every packet lost (``world.set_link(host, loss_pct=100)``),
is the case Background Sync does not cover. The browser thinks it is online, so a
registered sync fires at once and fails (the replay times out); Chromium retries a
failed sync with exponential backoff (its "Intent to Ship" says so, without the
intervals), and here the next try did not come within 90 s of the link healing.
The page therefore asks the Service Worker to replay every 15 s while a note is
queued (measured: on the server 2.5-2.7 s after the link healed).
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import shlex
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kit.control import call
from kit.net import registry
from kit.net.procs import Service, wait_healthy
from kit.pwa.server import CONTROL_FILES

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from kit.net.world import World

PORT = 8080
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
CHROMIUM_ARGS += ["--disable-background-networking", "--disable-component-update"]
T = TypeVar("T")


class Pwa:
    """The app's server on one world host, and the sync service behind it."""

    def __init__(
        self,
        world: World,
        host: str,
        port: int,
        service: Service,
        socket: Path,
        sync: Any,
        own: bool,
    ) -> None:
        self.world, self.host, self.port, self.service = world, host, port, service
        self.target = f"unix:{socket}"
        self.sync = sync  # kit.offline's OfflineApp: server_counts(), applied_log(), ...
        self._own_sync = own  # started with this app: stopped with it

    @property
    def url(self) -> str:
        return f"http://{self.world.ip(self.host)}:{self.port}"

    def applied(self) -> dict[str, list[str]]:
        """What the sync service applied: each note id with the texts written to it, in
        order (a note applied twice shows twice)."""
        writes: dict[str, list[str]] = {}
        for _seq, method, note_id, _key, text in self.sync.applied_log():
            if method in ("POST", "PUT"):
                writes.setdefault(note_id, []).append(text)
        return writes

    def files(self) -> dict[str, int]:
        """Requests this server answered per file of the app."""
        return call(self.target, "GET", CONTROL_FILES)

    def metrics(self) -> dict[str, Any]:
        return call(self.target, "GET", "/_kit/metrics")

    def stop(self) -> None:
        self.world.stop_service(self.service)
        if self._own_sync:
            self.sync.stop()

    def __repr__(self) -> str:
        return f"<Pwa on {self.host}:{self.port}>"


def serve_pwa(
    world: World,
    host: str = "origin",
    *,
    port: int = PORT,
    app: Path | None = None,
    sync: Any = None,
    timeout: float = 20.0,
) -> Pwa:
    """Serve the app from ``host`` on ``port``, its notes API from the sync service.

    ``sync`` is a running ``kit.offline`` app whose service to use; without it one is
    started on ``origin`` (``kit.offline`` keeps one app per world: starting it stops
    one already running, so a chapter that has one passes it here). ``app`` serves
    another folder than ``kit/pwa/app`` (a changed copy of it).
    """
    from kit.offline import start_offline

    own = sync is None
    if own:
        sync = start_offline(world, devices=(), timeout=timeout)
    socket = Path(world.record.scratch) / f"{host}.pwa-{port}.sock"
    argv = ["python", "-m", "kit.pwa.server", "--host", "0.0.0.0", "--port", str(port)]
    argv += ["--log-sample", "0", "--unix", str(socket), "--api", sync.sync_url]
    if app is not None:
        argv += ["--app", str(app)]
    service = world.launch_service(host, argv, name=f"pwa-{port}", health_url=f"unix:{socket}")
    wait_healthy([service], timeout)
    return Pwa(world, host, port, service, socket, sync, own)


class Browser:
    """Headless Chromium on a world host, driven by Playwright from a thread of its own."""

    def __init__(self, world: World, host: str, secure_origins: list[str]) -> None:
        self.world, self.host = world, host
        self.secure_origins = secure_origins
        self.emulated_offline = False
        self._jobs: queue.Queue[tuple[Callable[[Any], Any], Future] | None] = queue.Queue()
        self._started: Future[None] = Future()
        self._host_pid = world.host(host).pid  # its shell: the namespace's anchor
        self._launcher = self._write_launcher()
        self._thread = threading.Thread(target=self._run, name=f"browser-{host}", daemon=True)
        self._thread.start()
        atexit.register(self.stop)  # before the interpreter drops its threads mid-cleanup
        self._started.result(timeout=60)

    def _write_launcher(self) -> Path:
        """A script that runs Chromium inside the host's namespace, with the world's mark."""
        pid = self._host_pid
        path = Path(self.world.record.scratch) / f"{self.host}.chromium.sh"
        path.write_text(
            "#!/bin/sh\n"
            f"export {registry.MARK}={shlex.quote(self.world.record.id)}\n"
            f'exec mnexec -a {pid} {CHROMIUM} "$@"\n'
        )
        path.chmod(stat.S_IRWXU)
        return path

    def _run(self) -> None:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as driver:
                args = [*CHROMIUM_ARGS]
                if self.secure_origins:
                    origins = ",".join(self.secure_origins)
                    args.append(f"--unsafely-treat-insecure-origin-as-secure={origins}")
                chromium = driver.chromium.launch(
                    executable_path=str(self._launcher), args=args, env=dict(os.environ)
                )
                self._chromium = chromium
                self._new_context()
                self._started.set_result(None)
                while chromium.is_connected():  # world.stop() ends it too
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        # Playwright hears from the browser only during a call: make one.
                        try:
                            self.page.wait_for_timeout(200)
                        except PlaywrightError:
                            time.sleep(0.2)
                        continue
                    if job is None:
                        break
                    fn, done = job
                    try:
                        done.set_result(fn(self.page))
                    except BaseException as error:  # noqa: BLE001 - handed to the caller
                        done.set_exception(error)
                if chromium.is_connected():
                    chromium.close()
        except BaseException as error:  # noqa: BLE001 - handed to start_browser's caller
            if not self._started.done():
                self._started.set_exception(error)
            while True:  # whoever waits gets the error, not a hang
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job[1].set_exception(error)

    def _new_context(self) -> None:
        self.context = self._chromium.new_context(service_workers="allow")
        self.page = self.context.new_page()

    def fresh(self) -> None:
        """A new profile: no Service Worker, no caches, no IndexedDB (a first visit again)."""

        def renew(page: Page) -> None:
            page.context.close()
            self._new_context()
            self.emulated_offline = False

        self.do(renew)

    def do(self, fn: Callable[[Page], T], timeout: float = 60) -> T:
        """Run ``fn(page)`` in the browser's thread and return what it returns."""
        if not self._thread.is_alive():
            raise RuntimeError("the browser has stopped")
        done: Future[T] = Future()
        self._jobs.put((fn, done))
        return done.result(timeout=timeout)

    # -- the app, as a person uses it ------------------------------------------------

    def open(self, url: str, timeout: float = 30) -> float:
        """Open the app; the ms from navigation to interactive, as the page measured it."""

        def go(page: Page) -> float:
            page.goto(url, wait_until="commit", timeout=timeout * 1000)
            return _ready(page, timeout)

        return self.do(go, timeout + 5)

    def reload(self, timeout: float = 30) -> float:
        """Reload the page; the ms to interactive (``open``'s measure)."""

        def again(page: Page) -> float:
            page.reload(wait_until="commit", timeout=timeout * 1000)
            return _ready(page, timeout)

        return self.do(again, timeout + 5)

    def wait_settled(self, timeout: float = 15) -> None:
        """Wait until the page's start-up talk with the server is over (or gave up)."""
        self.do(lambda page: page.wait_for_selector("body[data-settled]", timeout=timeout * 1000))

    def wait_controlled(self, timeout: float = 15) -> str:
        """Wait until a Service Worker controls the page; its script's URL."""
        return self.do(
            lambda page: page.wait_for_function(
                "navigator.serviceWorker.controller?.scriptURL", timeout=timeout * 1000
            ).json_value()
        )

    def add_note(self, text: str, timeout: float = 10) -> str:
        """Type a note and add it; its state once settled ("synced", "queued" or "local")."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        def add(page: Page) -> str:
            page.fill("#text", text)
            page.click("#add button")
            settled = f"""() => {{
                const item = [...document.querySelectorAll('#notes li')]
                    .find((li) => li.textContent === {json.dumps(text)});
                return item && item.dataset.state !== 'local' && item.dataset.state;
            }}"""
            try:
                return page.wait_for_function(settled, timeout=timeout * 1000).json_value()
            except PlaywrightTimeout:
                return "local"

        return self.do(add, timeout + 5)

    def shown(self) -> list[dict[str, str]]:
        """The notes on screen, in order: id, text and state."""
        return self.do(
            lambda page: page.eval_on_selector_all(
                "#notes li",
                "items => items.map(li => ({id: li.dataset.id, text: li.textContent,"
                " state: li.dataset.state}))",
            )
        )

    def events(self) -> list[dict[str, Any]]:
        """What the page saw happen: online, offline, and the Service Worker's messages."""
        return self.do(lambda page: page.evaluate("window.appEvents"))

    def offline(self, emulate: bool = False) -> None:
        """Cut the host's link in the world, or (``emulate``) only DevTools' emulation."""
        if emulate:
            self.do(lambda page: page.context.set_offline(True))
            self.emulated_offline = True
        else:
            self.world.cut_link(self.host)

    def online(self) -> None:
        """Undo ``offline``: the link restored, and the emulation turned off."""
        if self.emulated_offline:
            self.do(lambda page: page.context.set_offline(False))
            self.emulated_offline = False
        if self.world._link_key(self.host, None) in self.world.cut:
            self.world.restore_link(self.host)

    def processes(self) -> list[int]:
        """Chromium's processes: every process in the host's namespace that runs it.

        Only the first carries the world's mark: the processes Chromium starts
        (zygotes, renderers, the network service, the GPU process) get an
        environment of their own. They end when it ends; this finds them all.
        """
        netns = registry.netns_inode(self._host_pid)
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                continue
            if "/chromium/" in exe and netns is not None and registry.netns_inode(pid) == netns:
                found.append(pid)
        return found

    def stop(self) -> None:
        """Close the browser (safe to call twice)."""
        atexit.unregister(self.stop)
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(timeout=15)
        self._launcher.unlink(missing_ok=True)


def _ready(page: Page, timeout: float) -> float:
    """Wait for the app to say it is interactive; when that was, in ms from navigation."""
    page.wait_for_selector("body[data-ready]", timeout=timeout * 1000)
    return page.evaluate("window.readyAt")


def start_browser(world: World, host: str, *secure: str) -> Browser:
    """Headless Chromium on ``host``; ``secure`` are origins to treat as secure contexts."""
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"no browser at {CHROMIUM}: run `sudo make setup` (Debian's chromium)")
    return Browser(world, host, list(secure))


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children...), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def pss_mb(pids: list[int]) -> float:
    """The proportional set size of these processes together, in MB (shared pages split)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024
