"""Fixtures shared by the fakes' tests."""

from __future__ import annotations

import pytest

from lab.fakes.imds.server import ImdsServer
from lab.world import World


@pytest.fixture
def imds(world: World):
    """The fake IMDS with one bound listener per instance of the test module's `world` fixture."""
    with ImdsServer(world) as server:
        server.listen("127.0.0.1", 0, world.instance(1))
        server.listen("127.0.0.1", 0, world.instance(2))
        yield server
