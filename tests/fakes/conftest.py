"""Fixtures shared by the fakes' tests."""

from __future__ import annotations

import pytest

from lab.fakes.imds.server import ImdsServer
from lab.fakes.intake.client import IntakeClient
from lab.fakes.intake.server import IntakeServer
from lab.world import World


@pytest.fixture
def imds(world: World):
    """The fake IMDS with one bound listener per instance of the test module's `world` fixture."""
    with ImdsServer(world) as server:
        server.listen("127.0.0.1", 0, world.instance(1))
        server.listen("127.0.0.1", 0, world.instance(2))
        yield server


@pytest.fixture
def intake():
    """A fake intake on a free loopback port (a module that needs other settings defines its own)."""
    with IntakeServer() as server:
        server.listen("127.0.0.1", 0)
        yield server


@pytest.fixture
def client(intake):
    """A fakeintake-style client of `intake`, once it answers."""
    c = IntakeClient(intake.url, poll_interval=0.05).wait_ready()
    yield c
    c.close()
