"""Shared fixtures. ``world`` is one running default world for a whole test session:
tests that inject faults undo them, so the next test finds the world as described."""

import pytest

from kit.net import World


@pytest.fixture(scope="session")
def world():
    with World() as w:
        yield w
