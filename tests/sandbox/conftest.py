"""A private local-backend lab for the sandbox tests (own loopback subnet, ephemeral ports)."""

from __future__ import annotations

import pytest

from lab.sandbox.target import LabTarget


@pytest.fixture(scope="module")
def sandbox_lab(tmp_path_factory):
    from lab.pytest_plugin import start_lab

    # The apps the exercises use (in_code has none): one app process less to start on a loaded machine,
    # where a traced app's start (ddtrace's imports) can take longer than the default 20 s.
    lab = start_lab(
        "local",
        apps=("imdsv1", "imdsv2", "metadata_file"),
        run_dir=tmp_path_factory.mktemp("sandbox-run"),
        ready_timeout=45,
    )
    try:
        yield lab.ecs_lab
    finally:
        lab.ecs_lab.stop()


@pytest.fixture(scope="module")
def target(sandbox_lab) -> LabTarget:
    return LabTarget.of_lab(sandbox_lab)
