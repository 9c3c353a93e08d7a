"""Fixtures for the docker backend's tests: one stack per module (its subnets are fixed, so docker
tests never run two stacks at once). No skipping: without an engine these fail with images.py's
message saying how to get one."""

from __future__ import annotations

import pytest

from lab.stack import Stack


@pytest.fixture(scope="module")
def docker_ecs_lab(tmp_path_factory):
    """A docker lab started as every lab is (`EcsLab`: through the control plane)."""
    from lab.assembly import EcsLab

    stack = Stack(instances=2, apps=("imdsv1",), run_dir=tmp_path_factory.mktemp("docker-lab"))
    with EcsLab(stack, backend="docker") as lab:
        yield lab


@pytest.fixture(scope="module")
def docker_lab(docker_ecs_lab):
    """Its backend (DockerBackend)."""
    return docker_ecs_lab.backend
