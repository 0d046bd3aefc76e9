"""Locust's web UI of a load on the world, opened through JupyterLab (kit/load/ui.py).

The browser asks JupyterLab's server for `/locust/`; jupyter-server-proxy passes
it to the relay's Unix socket, the relay to Locust on a world host. The test
reads what the page loaded: Locust's page and every asset under `/locust/`
answered 200 (none fell back to `/assets/...` at the server's root), and the
UI rendered the running test: its user count and a request count that grows.
"""

from __future__ import annotations

import re

import pytest
from browser_lab import CHROMIUM, CHROMIUM_ARGS, Lab

from kit.load.ui import jupyter_proxy_config, locust_ui


@pytest.fixture
def origin(world):
    service = world.start_service(
        "origin",
        ["python", "-m", "kit.services.origin", "--host", "0.0.0.0", "--port", "8000"],
        name="origin-ui-test",
        health_url="http://127.0.0.1:8000/",
    )
    yield f"http://{world.ip('origin')}:8000"
    world.stop_service(service)


def test_the_ui_of_a_running_load_opens_under_the_labs_address(
    world, origin, tmp_path, monkeypatch
):
    from playwright.sync_api import sync_playwright

    sock = tmp_path / "locust-ui.sock"
    monkeypatch.setenv("EDGELAB_LOCUST_UI", str(sock))
    ui = locust_ui(world, "user-london", origin, users=3, spawn_rate=3)
    try:
        with Lab(tmp_path, config=jupyter_proxy_config(sock)) as lab:
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page()
                answers: list[tuple[int, str]] = []
                page.on("response", lambda r: answers.append((r.status, r.url)))
                page.goto(f"{lab.base}locust/?token={lab.token}", wait_until="networkidle")
                page.wait_for_function(
                    "() => /Users/i.test(document.body.innerText)", timeout=30_000
                )
                page.wait_for_timeout(3000)  # the page polls Locust's stats every 2 s
                text = page.inner_text("body")
                browser.close()
    finally:
        ui.stop()
    ours = [(status, url) for status, url in answers if "/locust/" in url]
    assert ours and all(status == 200 for status, _ in ours), ours
    assets = [url for _, url in ours if "/assets/" in url]
    assert assets, "Locust's scripts and styles come from under /locust/"
    strays = [url for _, url in answers if re.search(r"//[^/]+/assets/", url)]
    assert not strays, f"assets asked at the server's root: {strays}"
    assert "RUNNING" in text.upper() and re.search(r"\b3\b", text), text[:500]
