"""The ECS control plane driving the docker backend.

    with DockerBackend(Stack(instances=2, apps=()), world=world, start_stack_tasks=False) as backend, \\
         EcsCluster.for_backend(backend) as cluster:
        ...  # users register task definitions / services on :4566

On docker an instance is a bridge network fixed when the backend starts, so the cluster adopts the
backend's instances (the control plane's EC2 records take their ids) rather than adding new ones.
Agent containers get the lab's redirects with the URLs as seen from inside an instance; the agent
has its own network namespace there, so 127.0.0.1 and 0.0.0.0 mean what they say and only
published host ports reach it, as on EC2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from lab.backends.base import LAB_IMAGE, ContainerSpec
from lab.ecs.translate import Redirects, is_agent_image, is_fips_proxy_image
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

    def _map(self, instance: ContainerInstance, spec: ContainerSpec) -> ContainerSpec:
        if is_agent_image(spec.image) and not self._present(spec.image):
            return replace(spec, image=self.backend.agent_image or LAB_IMAGE)
        if is_fips_proxy_image(spec.image) and not self._present(spec.image):
            # The backend's FIPS proxy stand-in (HAProxy with the lab's config, relaying every port to
            # the intake), under the user's container name, ports and env.
            stand_in = self.backend.fips_proxy_spec(instance.index)
            return replace(spec, image=stand_in.image, entry_point=stand_in.entry_point,
                           command=stand_in.command, mounts=[*spec.mounts, *stand_in.mounts])
        return spec

    def start_task(self, instance: ContainerInstance, task: Task, specs: list[ContainerSpec]) -> None:
        self.backend.start_task(instance, task, [self._map(instance, s) for s in specs])

    def stop_task(self, task_arn: str) -> None:
        self.backend.stop_task(task_arn)


def docker_runner(backend: Any) -> DockerTaskRunner:
    return DockerTaskRunner(backend)
