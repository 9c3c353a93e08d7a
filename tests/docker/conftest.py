"""Fixtures for the docker backend's tests: one stack per module (its subnets are fixed, so docker
tests never run two stacks at once). No skipping: without an engine these fail with images.py's
message saying how to get one."""

from __future__ import annotations

import pytest

from lab.stack import Stack


@pytest.fixture(scope="module")
def docker_lab(tmp_path_factory):
    from lab.backends.docker import DockerBackend

    stack = Stack(instances=2, apps=("imdsv1",), run_dir=tmp_path_factory.mktemp("docker-lab"))
    with DockerBackend(stack) as backend:
        yield backend
