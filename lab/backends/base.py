"""What every backend can do, whoever asks: the stack's own start-up or the ECS instance agent.

A task reaches a backend as the world's `Task` (identity, ECS labels, metadata token per container)
plus one `ContainerSpec` per container: the container definition after the lab's translation
(secrets resolved, the lab's redirects applied). Backends make it real (processes on loopback, or
docker containers), then write back what they learned (pid, docker id, addresses, status) into the
world and call `world.touch()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from lab.world import ContainerInstance, Task

# Images the lab knows how to run on the local backend (as processes) and builds for docker.
LAB_IMAGE = "ecs-agent-lab/lab:latest"
AGENT_IMAGE_PREFIXES = ("public.ecr.aws/datadog/agent", "datadog/agent", "gcr.io/datadoghq/agent",
                        "docker.io/datadog/agent")


@dataclass
class Mount:
    source: str  # host path
    target: str  # container path
    read_only: bool = False


@dataclass
class HealthCheck:
    """ECS `healthCheck`: command is ["CMD-SHELL", "..."] or ["CMD", exe, args...]."""

    command: list[str]
    interval: float = 30.0
    timeout: float = 5.0
    retries: int = 3
    start_period: float = 0.0


@dataclass
class PortSpec:
    container_port: int
    host_port: int | None = None
    protocol: str = "tcp"


@dataclass
class ContainerSpec:
    name: str
    image: str
    entry_point: list[str] | None = None
    command: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    ports: list[PortSpec] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    health_check: HealthCheck | None = None
    essential: bool = True
    # ECS dependsOn: [(container name, condition START|COMPLETE|SUCCESS|HEALTHY)]
    depends_on: list[tuple[str, str]] = field(default_factory=list)
    cpu: int = 0
    memory: int | None = None
    memory_reservation: int | None = None
    capabilities_add: list[str] = field(default_factory=list)
    pid_mode: str | None = None
    working_directory: str | None = None
    user: str | None = None
    docker_labels: dict[str, str] = field(default_factory=dict)


class UnsupportedField(ValueError):
    """A container definition field this backend cannot honour; raised with the field's name."""


class TaskRunner(Protocol):
    """Implemented by each backend."""

    name: str

    def start_task(self, instance: ContainerInstance, task: Task, specs: list[ContainerSpec]) -> None:
        """Start every container of `task` on `instance`; raise with a clear reason if it cannot."""

    def stop_task(self, task_arn: str) -> None:
        """Stop the task's containers and mark them STOPPED in the world."""
