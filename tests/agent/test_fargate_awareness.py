"""The agent as a Fargate sidecar learns every container of its task from task metadata v4 alone.

On Fargate the task's containers are separate containers: the sidecar sees none of their processes
(no shared /proc, no docker socket), and still tags each one's data, because `/task` names them all.
Here no process carries the app container's metadata URI, as on the docker backend."""

from __future__ import annotations

import pytest

from lab.agent.config import AgentConfig
from lab.agent.ecs import EcsAwareness
from lab.fakes.ecs_metadata.model import container_env
from lab.fakes.ecs_metadata.server import EcsMetadataServer
from lab.world import Container, Task, World


@pytest.fixture
def fargate_task():
    world = World()
    host = world.add_fargate_host("127.0.0.1", "us-east-1a")
    task = world.add_task(host, Task(family="web", revision=2, network_mode="awsvpc", containers=[
        Container(name="web", image="ecs-agent-lab/lab:latest"),
        Container(name="datadog-agent", image="public.ecr.aws/datadog/agent:latest")]))
    with EcsMetadataServer(world) as ecs:
        ecs.listen_task_metadata("127.0.0.1", 0)
        yield world, host, task, ecs.task_metadata_url


def test_the_sidecar_tags_a_container_whose_processes_it_cannot_see(fargate_task):
    _world, host, task, base = fargate_task
    agent = task.container("datadog-agent")
    env = container_env(host, task, agent, base_url=base, relative_credentials=False)
    config = AgentConfig.from_env({**env, "ECS_FARGATE": "true", "DD_API_KEY": "x" * 32})
    awareness = EcsAwareness(config)
    awareness.refresh()
    web = task.container("web")
    tags = set(awareness.tags_for_container(web.docker_id, "high"))
    assert {"ecs_container_name:web", "task_family:web", "task_version:2", f"task_arn:{task.arn}",
            "availability_zone:us-east-1a", "ecs_launch_type:fargate"} <= tags, sorted(tags)
    assert awareness.tags_for_container("0" * 64, "high") == [], "a container not in the task"
