"""A private local-backend lab for the sandbox tests (own loopback subnet, ephemeral ports)."""

from __future__ import annotations

import pytest

from lab.sandbox.target import LabTarget

from .exercise_flow import exercise_lab


@pytest.fixture(scope="module")
def sandbox_lab(tmp_path_factory):
    # A traced app's start (ddtrace's imports) can take longer than the default 20 s on a loaded machine.
    with exercise_lab("local", tmp_path_factory.mktemp("sandbox-run"), ready_timeout=45) as lab:
        yield lab


@pytest.fixture(scope="module")
def target(sandbox_lab) -> LabTarget:
    return LabTarget.of_lab(sandbox_lab)
