"""Ownership: what the backend creates carries lab labels and is gone after exit."""

from __future__ import annotations

import pytest

from lab.backends import images
from lab.backends.stack import Stack

pytestmark = pytest.mark.docker


def test_missing_engine_fails_with_a_way_to_get_one(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(images.DockerUnavailable, match="docker-engine.sh"):
        images.docker_client(timeout=2)


def test_exit_removes_every_container_and_network(tmp_path):
    from lab.backends.docker import DockerBackend

    client = images.docker_client()
    with DockerBackend(Stack(run_dir=tmp_path), start_stack_tasks=False) as backend:
        run = f"ecs-agent-lab.run={backend.run_id}"
        assert client.api.containers(filters={"label": run})
        assert client.api.networks(filters={"label": run})
    assert client.api.containers(all=True, filters={"label": run}) == []
    assert client.api.networks(filters={"label": run}) == []


def test_failure_during_start_leaves_nothing(tmp_path):
    from lab.backends.docker import DockerBackend

    client = images.docker_client()
    backend = DockerBackend(Stack(run_dir=tmp_path, apps=()), agent_image="ecs-lab-test/no-such-agent:0",
                            pull=False)
    with pytest.raises(images.ImageBuildError, match="docker load"):
        backend.__enter__()
    assert client.api.containers(all=True, filters={"label": f"ecs-agent-lab.run={backend.run_id}"}) == []
