"""The ECS control plane driving the docker backend.

    with DockerBackend(Stack(instances=2, apps=()), world=world, start_stack_tasks=False) as backend, \\
         EcsCluster(world, docker_runner(backend), redirects_for=redirects_for(backend),
                    on_instance=adopt_routes(backend)) as cluster:
        ...  # users register task definitions / services on :4566

On docker an instance is a bridge network fixed when the backend starts, so the cluster adopts the
backend's instances (their instance ids become the control plane's EC2 ids) rather than adding new
ones. Agent containers get the lab's redirects with the URLs as seen from inside an instance; the
agent has its own network namespace there, so 127.0.0.1 and 0.0.0.0 mean what they say and only
published host ports reach it, as on EC2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from lab.backends.base import LAB_IMAGE, ContainerSpec
from lab.ecs.translate import Redirects, is_agent_image
from lab.world import ContainerInstance, Task


def redirects_for(backend: Any) -> Callable[[ContainerInstance], Redirects]:
    topo = backend.topo

    def redirects(inst: ContainerInstance) -> Redirects:
        return Redirects(intake_url=topo.intake_url, egress_proxy_url=backend.egress_proxy_url,
                         ecs_agent_url=topo.ecs_agent_url,
                         extra_env={"AWS_EXECUTION_ENV": "AWS_ECS_EC2",
                                    # 169.254.x is the lab's own network here.
                                    "LAB_AGENT_ALLOW_LINK_LOCAL_IMDS": "1"})

    return redirects


def adopt_routes(backend: Any) -> Callable[[ContainerInstance], None]:
    """After an instance's id became the control plane's, the backend's IMDS must answer with it."""

    def adopt(inst: ContainerInstance) -> None:
        routes = getattr(backend, "_routes", None)
        if routes is None:
            return
        routes[backend.topo.instance_block(inst.index)] = inst.instance_id
        backend._wait_world(backend._publish_world())

    return adopt


class DockerTaskRunner:
    """The docker backend as the instance agents' TaskRunner, with the agent image mapped.

    The Datadog agent image cannot be pulled on a machine without a registry; unless it is present
    locally, an agent container runs the lab image (the emulated agent, its default command),
    exactly as the backend's own agents do.
    """

    name = "docker"

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def _present(self, image: str) -> bool:
        try:
            self.backend.client.images.get(image)
            return True
        except Exception:  # noqa: BLE001 - docker.errors.ImageNotFound and API errors alike
            return False

    def _map(self, spec: ContainerSpec) -> ContainerSpec:
        if is_agent_image(spec.image) and not self._present(spec.image):
            return replace(spec, image=self.backend.agent_image or LAB_IMAGE)
        return spec

    def start_task(self, instance: ContainerInstance, task: Task, specs: list[ContainerSpec]) -> None:
        self.backend.start_task(instance, task, [self._map(s) for s in specs])

    def stop_task(self, task_arn: str) -> None:
        self.backend.stop_task(task_arn)


def docker_runner(backend: Any) -> DockerTaskRunner:
    return DockerTaskRunner(backend)
