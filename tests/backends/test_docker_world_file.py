"""What the docker backend's services read: the world file carries Fargate tasks' hosts (task
metadata answers their containers), and docker's health words become ECS's. No engine needed."""

from __future__ import annotations

from lab.backends.docker import ecs_health
from lab.backends.docker_services import world_from_json, world_to_json
from lab.world import Container, Task, World


def test_fargate_hosts_and_their_tasks_survive_the_world_file():
    world = World()
    world.add_instance("172.30.1.1")
    host = world.add_fargate_host("172.30.100.2", "us-east-1b")
    task = world.add_task(host, Task(family="web", revision=1, network_mode="awsvpc",
                                     containers=[Container(name="web", image="ecs-agent-lab/lab:latest")]))
    loaded = world_from_json(world_to_json(world))
    assert [h.private_ip for h in loaded.fargate_hosts] == ["172.30.100.2"]
    assert loaded.fargate_hosts[0].launch_type == "FARGATE"
    assert loaded.fargate_hosts[0].availability_zone == "us-east-1b"
    token = task.container("web").metadata_token
    found = loaded.find_container(metadata_token=token)
    assert found and found[1].arn == task.arn and found[0].launch_type == "FARGATE"
    assert len(loaded.instances) == 1


def test_docker_health_in_ecs_words():
    assert [ecs_health(s) for s in ("healthy", "unhealthy", "starting", "none")] == [
        "HEALTHY", "UNHEALTHY", "UNKNOWN", "UNKNOWN"]
