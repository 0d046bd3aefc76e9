"""Run a chapter the way a learner does: in JupyterLab, in a real browser.

    with Lab(root=ROOT, env={"EDGELAB_STATE": "..."}) as lab:
        run = lab.run("solutions/03-api-gateway.ipynb", screenshot=Path("03.png"))
        run.errors, run.images, run.images_broken, run.widgets, run.notebook

Not a test module itself: `tests/test_notebooks.py` uses it for the solution run
of every chapter, so that run is the browser's.

The pieces:

- `Lab` starts a JupyterLab server of this venv on a free local port with a
  random token, its own user-settings folder (notebooks are rendered whole,
  `windowingMode: none`, so every output is in the page, not only those on
  screen) and `expose_app_in_browser`, which gives the page's scripts the
  application object. The server's environment is the kernels': a test passes
  `EDGELAB_STATE` there, so the worlds a chapter starts are told apart.
- `Lab.run` copies the notebook next to itself (so its relative paths work),
  opens the copy in headless Chromium (Debian's `/usr/bin/chromium`, driven by
  Playwright's Python package; `playwright install` is never run, it would
  download another browser) and runs the command behind *Run → Run All Cells*.
  That command's promise settles when the last cell has run or the first error
  stopped the rest.
- What is counted comes from the notebook's model in the page: the outputs the
  kernel sent. An error output there is an `error` message of the kernel, which
  the DOM cannot tell apart from text on stderr. Plots and widgets are counted
  twice: as outputs of the kernel, and as what the page rendered (an `<img>`
  that decoded, a widget view that is not an error box), so a plot that did
  not render or a widget whose model was lost is a failure.
- A screenshot of the whole notebook is saved, and the executed notebook is
  returned as nbformat JSON (the book is built from it).
- Afterwards the session is deleted (its kernel is shut down, and with it the
  chapter's world), the copy and the workspace are removed, and the server is
  stopped.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
CHROMIUM_ARGS += ["--disable-background-networking", "--disable-component-update"]
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml")

# The page's side, given the application object JupyterLab exposes.
READY = """() => {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  const session = panel && panel.sessionContext;
  return !!(session && session.isReady && session.session && session.session.kernel
            && session.session.kernel.status === 'idle' && panel.content.widgets.length);
}"""
RUN_ALL = """() => {
  window.__edgelabRun = null;
  window.jupyterapp.commands.execute('notebook:run-all-cells').then(
    ok => { window.__edgelabRun = {ok: ok !== false}; },
    error => { window.__edgelabRun = {ok: false, error: String(error)}; });
}"""
DONE = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return window.__edgelabRun !== null && (!kernel || kernel.status === 'idle'
    || kernel.status === 'dead');
}"""
TO_TOP = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  window.jupyterapp.shell.collapseLeft();
  (panel.node.querySelector('.jp-WindowedPanel-outer') || panel.node).scrollTop = 0;
}"""
REPORT = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const outs = Array.from(panel.node.querySelectorAll('.jp-OutputArea-output'));
  const imgs = outs.flatMap(o => Array.from(o.querySelectorAll('img')));
  const widgetOuts = outs.filter(o => o.querySelector('.jupyter-widgets')
      || o.getAttribute('data-mime-type') === 'application/vnd.jupyter.widget-view+json');
  const broken = widgetOuts.filter(o => o.querySelector('.widget-error, .jupyter-widgets-error')
      || /Error displaying widget|model not found/.test(o.innerText));
  const scroller = panel.node.querySelector('.jp-WindowedPanel-outer') || panel.node;
  return {
    notebook: panel.content.model.toJSON(),
    run: window.__edgelabRun,
    images_rendered: imgs.filter(i => i.complete && i.naturalWidth > 0).length
      + outs.filter(o => o.querySelector(':scope > svg, .jp-RenderedSVG svg')).length,
    images_broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length,
    widgets_rendered: widgetOuts.length - broken.length,
    widgets_broken: broken.length,
    height: scroller.scrollHeight,
  };
}"""


@dataclass
class BrowserRun:
    """What a run in the browser left: the executed notebook and what the page showed."""

    notebook: dict[str, Any]
    seconds: float
    completed: bool
    errors: list[str] = field(default_factory=list)  # "cell N: EName: value", from the kernel
    image_outputs: int = 0  # plots the kernel sent
    images: int = 0  # plots the page rendered
    images_broken: int = 0
    widget_outputs: int = 0
    widgets: int = 0
    widgets_broken: int = 0
    screenshot: Path | None = None

    @property
    def code_cells(self) -> int:
        return sum(1 for c in self.notebook["cells"] if c["cell_type"] == "code")

    def problems(self) -> list[str]:
        """Why this run does not pass: errors, plots or widgets that did not render."""
        found = list(self.errors)
        if not self.completed:
            found.append("Run All Cells did not complete")
        if self.images_broken or self.images < self.image_outputs:
            found.append(
                f"{self.image_outputs} plots sent, {self.images} rendered, "
                f"{self.images_broken} broken"
            )
        if self.widgets_broken or self.widgets < self.widget_outputs:
            found.append(
                f"{self.widget_outputs} widgets sent, {self.widgets} rendered, "
                f"{self.widgets_broken} broken"
            )
        return found


class LabError(RuntimeError):
    """JupyterLab or the browser could not be started or did not answer."""


class Lab:
    """A JupyterLab server of this venv, for browser runs (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        env: dict[str, str] | None = None,
        config: dict[str, Any] | None = None,
        args: list[str] | None = None,
    ) -> None:
        self.root, self.env, self.args = root, env or {}, args or []
        self.token = secrets.token_hex(16)
        self.settings = Path(tempfile.mkdtemp(prefix="edgelab-lab-settings-"))
        tracker = self.settings / "@jupyterlab" / "notebook-extension"
        tracker.mkdir(parents=True)
        (tracker / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
        (self.settings / "server.json").write_text(json.dumps(config or {}))
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}/"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Lab:
        jupyter = Path(sys.executable).parent / "jupyter"
        argv = [str(jupyter), "lab", "--no-browser", "--allow-root", f"--port={self.port}"]
        argv += ["--ip=127.0.0.1", f"--ServerApp.root_dir={self.root}"]
        argv += [f"--IdentityProvider.token={self.token}", "--LabApp.expose_app_in_browser=True"]
        argv += [f"--LabApp.user_settings_dir={self.settings}", "--ServerApp.open_browser=False"]
        argv += [f"--config={self.settings / 'server.json'}", *self.args]
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            argv,
            env={**os.environ, **self.env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its kernels are stopped with it
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.api("GET", "api/status")
                return self
            except (OSError, urllib.error.URLError):
                if self.process.poll() is not None:
                    break
                time.sleep(0.3)
        self.__exit__()
        raise LabError(f"JupyterLab did not start:\n{self.server_log()}")

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the server shuts its kernels down
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for path in sorted(self.settings.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        self.settings.rmdir()

    def server_log(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            self.base + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            raw = answer.read()
        return json.loads(raw) if raw else None

    def run(
        self, notebook: str, *, timeout_s: float = 1800, screenshot: Path | None = None
    ) -> BrowserRun:
        """Run every cell of `notebook` (a path under the root) in the browser."""
        from playwright.sync_api import sync_playwright

        if not os.path.exists(CHROMIUM):
            raise LabError(f"no browser at {CHROMIUM}: run `sudo make setup` (Debian's chromium)")
        # The copy sits beside the notebook (its relative paths work) under a name that
        # is not a chapter's (NN-name.ipynb), so nothing mistakes it for one.
        copy = str(Path(notebook).with_suffix(".browser.ipynb"))
        model = self.api("GET", f"api/contents/{_quote(notebook)}?type=notebook&content=1")
        self.api("PUT", f"api/contents/{_quote(copy)}", {"type": "notebook", **_only(model)})
        workspace = f"edgelab-{secrets.token_hex(4)}"
        started = time.monotonic()
        try:
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1280, "height": 900})
                    url = f"{self.base}lab/workspaces/{workspace}/tree/{_quote(copy)}"
                    page.goto(f"{url}?reset&token={self.token}", timeout=60_000)
                    page.wait_for_function(READY, timeout=120_000, polling=250)
                    page.evaluate(RUN_ALL)
                    left_ms = max(1000, (timeout_s - (time.monotonic() - started)) * 1000)
                    page.wait_for_function(DONE, timeout=left_ms, polling=500)
                    page.wait_for_timeout(1500)  # let the last outputs render
                    report = page.evaluate(REPORT)
                    if screenshot is not None:
                        screenshot.parent.mkdir(parents=True, exist_ok=True)
                        height = min(max(900, report["height"] + 120), 16000)
                        page.set_viewport_size({"width": 1280, "height": height})
                        page.evaluate(TO_TOP)
                        page.wait_for_timeout(500)
                        page.screenshot(path=str(screenshot))
                finally:
                    browser.close()
        finally:
            self._forget(copy, workspace)
        return _report(report, time.monotonic() - started, screenshot)

    def _forget(self, copy: str, workspace: str) -> None:
        """Stop the copy's kernel (and with it its world), delete the copy and the workspace."""
        for session in self.api("GET", "api/sessions") or []:
            if session.get("path") == copy:
                self.api("DELETE", f"api/sessions/{session['id']}")
        for path in (f"api/contents/{_quote(copy)}", f"lab/api/workspaces/{workspace}"):
            try:
                self.api("DELETE", path)
            except urllib.error.HTTPError:
                pass


def _report(report: dict[str, Any], seconds: float, screenshot: Path | None) -> BrowserRun:
    notebook = report["notebook"]
    for cell in notebook["cells"]:  # the page's model says null where nbformat has nothing
        if cell.get("attachments") is None:
            cell.pop("attachments", None)
    run = BrowserRun(
        notebook,
        seconds,
        completed=bool(report["run"] and report["run"]["ok"]),
        images=report["images_rendered"],
        images_broken=report["images_broken"],
        widgets=report["widgets_rendered"],
        widgets_broken=report["widgets_broken"],
        screenshot=screenshot,
    )
    for index, cell in enumerate(notebook["cells"]):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if output["output_type"] == "error":
                run.errors.append(f"cell {index}: {output['ename']}: {output['evalue'][:300]}")
            elif WIDGET_MIME in data:
                run.widget_outputs += 1
            elif any(mime in data for mime in IMAGE_MIMES):
                run.image_outputs += 1
    return run


def _only(model: dict[str, Any]) -> dict[str, Any]:
    return {"format": "json", "content": model["content"]}


def _quote(path: str) -> str:
    return urllib.parse.quote(path.strip("/"), safe="/")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
