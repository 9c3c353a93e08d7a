"""Ownership: what the backend creates carries lab labels and is gone after exit."""

from __future__ import annotations

import contextlib

import pytest

from lab.backends import images
from lab.stack import Stack

pytestmark = pytest.mark.docker


def test_missing_engine_fails_with_a_way_to_get_one(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(images.DockerUnavailable, match="docker-engine.sh"):
        images.docker_client(timeout=2)


def test_exit_removes_every_container_and_network(tmp_path):
    from lab.backends.docker import DockerBackend

    client = images.docker_client()
    with DockerBackend(Stack(run_dir=tmp_path)) as backend:
        run = f"ecs-agent-lab.run={backend.run_id}"
        assert client.api.containers(filters={"label": run})
        assert client.api.networks(filters={"label": run})
        # The networks and the services are testcontainers objects, which keep the lab's labels.
        testcontainers_made = [run, "org.testcontainers=true"]
        services = {c["Labels"]["ecs-agent-lab.role"]
                    for c in client.api.containers(filters={"label": testcontainers_made})}
        assert {"imds", "services"} <= services, services
        networks = {n["Name"] for n in client.api.networks(filters={"label": testcontainers_made})}
        assert {"ecs-lab-linklocal", "ecs-lab-lab", "ecs-lab-instance1"} <= networks, networks
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


def _ecs_lab(*args: str, env: dict):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "lab.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_down_all_sweeps_what_a_crashed_docker_run_left(tmp_path):
    import os
    import socket

    from lab.backends.docker_topology import LABEL, RUN_LABEL

    client = images.docker_client()
    crashed = f"{socket.gethostname()}-{2**22 + 7}-dead00"  # an owner pid that cannot exist
    net = client.networks.create(f"ecs-lab-crashed-{os.getpid()}", internal=True,
                                 labels={LABEL: "1", RUN_LABEL: crashed})
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
        env["LAB_HOME"] = str(tmp_path / "home")
        out = _ecs_lab("down", "--all", env=env)
        assert out.returncode == 0, out.stderr
        assert client.api.networks(filters={"label": f"{RUN_LABEL}={crashed}"}) == [], out.stdout
        assert "left by crashed runs" in out.stdout
    finally:
        with contextlib.suppress(Exception):
            net.remove()


def test_down_all_without_a_docker_engine_still_succeeds(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env.update(LAB_HOME=str(tmp_path / "home"), DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock")
    out = _ecs_lab("down", "--all", env=env)
    assert out.returncode == 0, out.stderr
    assert "no lab is running" in out.stdout
