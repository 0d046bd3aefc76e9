"""Shared fixtures. ``world`` is one running default world for a whole test session:
tests that inject faults undo them, so the next test finds the world as described."""

import pytest

from kit.net import World


@pytest.fixture(scope="session")
def world():
    with World() as w:
        yield w


@pytest.fixture(scope="session")
def origin_url(world):
    """A plain HTTP/1.1 file server on the origin host of the session world."""
    world.start_service(
        "origin",
        ["python", "-m", "http.server", "8080", "--protocol", "HTTP/1.1"],
        name="http.server",
        health_url="http://127.0.0.1:8080/",
    )
    return f"http://{world.ip('origin')}:8080/"
