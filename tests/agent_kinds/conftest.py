"""Fixtures for the agent-kind tests: the lab's intake and recording egress proxy on loopback."""

from __future__ import annotations

import pytest


@pytest.fixture
def intake():
    from lab.fakes.intake.server import IntakeServer

    with IntakeServer() as server:
        server.listen("127.0.0.1", 0)
        yield server


@pytest.fixture
def egress():
    from lab.fakes.egress_proxy import EgressProxy

    with EgressProxy() as proxy:
        yield proxy
