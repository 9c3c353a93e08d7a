"""How the control plane's instance agents hand tasks to each backend (without starting one)."""

from __future__ import annotations

from types import SimpleNamespace

from lab.tasks import LAB_IMAGE, ContainerSpec
from lab.ecs.docker_backend import DockerTaskRunner
from lab.ecs.docker_backend import redirects_for as docker_redirects
from lab.ecs.translate import container_specs
from lab.world import ContainerInstance, Task


class _Images:
    def __init__(self, present):
        self.present = present

    def get(self, image):
        if image not in self.present:
            raise LookupError(image)
        return image


class _Backend:
    def __init__(self, present=()):
        self.client = SimpleNamespace(images=_Images(set(present)))
        self.agent_image = LAB_IMAGE
        self.started = []

    def start_task(self, instance, task, specs):
        self.started.append(specs)

    def stop_task(self, arn):
        pass


def _start(runner, *images):
    inst = ContainerInstance(index=1, private_ip="172.30.1.1")
    runner.start_task(inst, Task(family="f", revision=1, containers=[]),
                      [ContainerSpec(name=f"c{i}", image=img) for i, img in enumerate(images)])


def test_docker_runs_the_emulated_agent_when_the_agent_image_is_absent():
    backend = _Backend()
    _start(DockerTaskRunner(backend), "public.ecr.aws/datadog/agent:latest", "ecs-agent-lab/lab:latest")
    assert [s.image for s in backend.started[0]] == [LAB_IMAGE, "ecs-agent-lab/lab:latest"]


def test_docker_keeps_a_real_agent_image_that_is_present():
    backend = _Backend(present={"datadog/agent:7.60.0"})
    _start(DockerTaskRunner(backend), "datadog/agent:7.60.0")
    assert backend.started[0][0].image == "datadog/agent:7.60.0"


def test_docker_redirects_leave_the_agent_its_own_netns():
    backend = SimpleNamespace(topo=SimpleNamespace(intake_url="http://169.254.170.2:8091",
                                                   ecs_agent_url="http://169.254.172.1:51678"),
                              egress_proxy_url="http://169.254.170.2:3128")
    td = {"family": "a", "containerDefinitions": [{"name": "datadog-agent", "memory": 256,
                                                   "image": "public.ecr.aws/datadog/agent:latest"}]}
    inst = ContainerInstance(index=1, private_ip="172.30.1.1")
    (spec,) = container_specs(td, redirects=docker_redirects(backend)(inst))
    assert spec.env["DD_DD_URL"] == "http://169.254.170.2:8091"
    assert spec.env["DD_ECS_AGENT_URL"] == "http://169.254.172.1:51678"
    assert "LAB_AGENT_HOST_ADDRESSES" not in spec.env and "LAB_AGENT_LOCALHOST" not in spec.env
