"""Fixtures for the ECS control plane tests: an embedded control plane on a free port, a fresh
cluster per test, and a fake TaskRunner that records what the instance agents ask of a backend."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator

import pytest

from lab.ecs.control_plane import ControlPlane
from lab.ecs.stack_services import remove_cluster
from lab.tasks import ContainerSpec, UnsupportedField
from lab.world import Cluster, ContainerInstance, Task, World


class FakeRunner:
    """A TaskRunner that 'runs' containers by marking them RUNNING in the world."""

    name = "fake"

    def __init__(self, world: World, *, unknown_images: tuple[str, ...] = ()) -> None:
        self.world = world
        self.started: list[tuple[int, str, list[ContainerSpec]]] = []
        self.stopped: list[str] = []
        self.unknown_images = unknown_images
        self._lock = threading.Lock()

    def start_task(self, instance: ContainerInstance, task: Task, specs: list[ContainerSpec]) -> None:
        for spec in specs:
            if spec.image.startswith(self.unknown_images):
                raise UnsupportedField(f"image {spec.image!r} is not known to the fake backend")
        with self._lock:
            self.started.append((instance.index, task.arn, specs))
        for c in task.containers:
            c.mark_running()
        task.known_status = "RUNNING"
        self.world.touch()

    def stop_task(self, task_arn: str) -> None:
        with self._lock:
            self.stopped.append(task_arn)
        found = self.world.find_task(task_arn)
        if found:
            for c in found[1].containers:
                c.mark_stopped(0)
            self.world.touch()

    def running_on(self, index: int) -> list[str]:
        return [arn for i, arn, _ in self.started if i == index and arn not in self.stopped]


@pytest.fixture(scope="session")
def control_plane():
    with ControlPlane(port=0) as cp:
        yield cp


@pytest.fixture
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    world = World(Cluster(name=f"test-{uuid.uuid4().hex[:8]}"))
    yield world
    if "control_plane" in request.fixturenames:
        # The control plane is the session's and moto's model the process's: a cluster left in it
        # is walked by every service scheduler of the worker, for every later test and lab.
        remove_cluster(request.getfixturevalue("control_plane").clients.ecs, world.cluster.name)


@pytest.fixture
def fake_runner(world: World) -> FakeRunner:
    return FakeRunner(world)


@pytest.fixture
def aws_env(control_plane: ControlPlane) -> dict[str, str]:
    """Environment for the real `aws` CLI: dummy credentials, the lab's region, no user config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_DEFAULT_REGION": control_plane.region, "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_PAGER": ""})
    return env
