"""What a backend runs, and the contract every backend offers: the layer below both the ECS
control plane (`lab.ecs`) and the backends (`lab.backends`), so neither imports the other.

A task reaches a backend as the world's `Task` (identity, ECS labels, metadata token per container)
plus one `ContainerSpec` per container: the container definition after the control plane's
translation (secrets resolved, the lab's redirects applied). The backend makes it real (processes
on loopback, or docker containers), then writes back what it learned (pid, docker id, addresses,
status) into the world and calls `world.touch()`.

A backend also *hosts* the instances: it serves each one's IMDS and ECS agent introspection before
any task lands on it, and says where the lab's own services are as seen from inside it
(`InstanceEndpoints`), which the control plane turns into the agent's redirects.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

from lab.world import ContainerInstance, Task

# What a container runtime grants a container, written into the environment of an agent that runs as
# a process (the local backend) where it cannot read its own: Docker's default capability set (moby
# oci/caps/defaults.go) plus the task's linuxParameters.capabilities.add, and the container paths of
# the task's mount points (lab.agent.network checks system-probe's requirements against them).
DOCKER_DEFAULT_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
                               "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL",
                               "AUDIT_WRITE")
CAPABILITIES_ENV = "LAB_CONTAINER_CAPABILITIES"
MOUNTS_ENV = "LAB_CONTAINER_MOUNTS"
# The name of the instance an agent process runs on, as that host's docker daemon reports it (`docker
# info` Name): what the agent's container hostname provider reads (lab.agent.hostname).
INSTANCE_HOSTNAME_ENV = "LAB_INSTANCE_HOSTNAME"

# The lab's own image: the fakes, the emulated agent and the sample apps (docker/Dockerfile).
LAB_IMAGE = "ecs-agent-lab/lab:latest"
# The Node sample app's image on the docker backend (docker/node-app.Dockerfile: Debian's Node and the
# app's npm modules); the local backend runs that app with the host's node from the lab image instead.
NODE_APP_IMAGE = "ecs-agent-lab/node-app:latest"
# Images that are the Datadog Agent, as the Datadog ECS docs name them.
AGENT_IMAGE_PREFIXES = ("public.ecr.aws/datadog/agent", "datadog/agent", "gcr.io/datadoghq/agent",
                        "docker.io/datadog/agent")
# The serverless-compat agent image the lab builds (`ecs-lab images build --agent serverless-compat`).
SERVERLESS_COMPAT_REPOSITORY = "ecs-agent-lab/agent-serverless-compat"
# Images that are Datadog's FIPS proxy (the docs' FIPS task definition's sidecar).
FIPS_PROXY_IMAGE_PREFIXES = ("datadog/fips-proxy", "public.ecr.aws/datadog/fips-proxy",
                             "gcr.io/datadoghq/fips-proxy", "docker.io/datadog/fips-proxy")


def repository(image: str) -> str:
    """`repo[:tag][@digest]` -> repo (a registry host's port is not a tag)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


def is_agent_image(image: str) -> bool:
    """An agent of some kind: a Datadog Agent image (any tag or digest), or an agent the lab builds
    (`lab.agent_images` says which kind and how each runs)."""
    repo = repository(image)
    return repo.startswith(AGENT_IMAGE_PREFIXES) or repo == SERVERLESS_COMPAT_REPOSITORY


def is_fips_proxy_image(image: str) -> bool:
    return repository(image).startswith(FIPS_PROXY_IMAGE_PREFIXES)


def is_lab_image(image: str) -> bool:
    return repository(image) == repository(LAB_IMAGE)


def is_node_app_image(image: str) -> bool:
    return repository(image) == repository(NODE_APP_IMAGE)


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
class LogConfiguration:
    """A container definition's `logConfiguration`: which log driver gets its stdout/stderr."""

    driver: str  # awslogs, awsfirelens, json-file, ...
    options: dict[str, str] = field(default_factory=dict)


# Lines a container wrote, in order, as they were read: [(stream "stdout"|"stderr", the line without
# its newline), ...]. One call per read, so a consumer can ship them together.
OutputLines = Callable[[list[tuple[str, str]]], None]


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
    log_configuration: LogConfiguration | None = None
    # FireLens: this container is the task's log router (`firelensConfiguration`): its generated
    # fluent-bit configuration text, written by the control plane's translation.
    log_router_config: str | None = None


# What the ECS agent adds to the environment of a container on the `awsfirelens` driver, so that a
# fluent-logger library in it reaches the task's log router (amazon-ecs-agent, agent/engine
# docker_task_engine.go, createContainer): FLUENT_HOST is 127.0.0.1 in awsvpc mode (the task's one
# namespace) and the router container's IP in bridge mode; FLUENT_PORT is the forward input's 24224.
# Nothing is added in host mode.
FLUENT_PORT = 24224


def with_fluent_address(spec: ContainerSpec, host: str) -> ContainerSpec:
    """`spec` with FLUENT_HOST/FLUENT_PORT as the ECS agent sets them (its values win over the
    definition's), when it logs with `awsfirelens`; otherwise `spec` unchanged."""
    if not ships_to_log_router(spec):
        return spec
    return replace(spec, env={**spec.env, "FLUENT_HOST": host, "FLUENT_PORT": str(FLUENT_PORT)})


def ships_to_log_router(spec: ContainerSpec) -> bool:
    return spec.log_configuration is not None and spec.log_configuration.driver == "awsfirelens"


class UnsupportedField(ValueError):
    """A container definition field this backend cannot honour; raised with the field's name."""


class LabStopping(RuntimeError):
    """A task start the backend refused or gave up because its lab is stopping (`StartGate`)."""


class StartGate:
    """A backend's task starts in flight, and the moment its lab stops taking new ones.

    The ECS instance agents start each task on a thread of its own, so a lab stopped during its
    deploy (Ctrl-C, a failed fixture) can have starts still creating containers or processes while
    the backend tears down: what such a start made after the teardown looked stays behind. A backend
    enters the gate for each start (`starting`), checks it between steps (`check`: raises
    `LabStopping`), and when it stops, closes it and waits for the starts in flight to give up and
    remove what they made (`drain`) before it removes the rest."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._in_flight = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    def check(self, what: str) -> None:
        if self._closed:
            raise LabStopping(f"{what}: the lab is stopping")

    @contextlib.contextmanager
    def starting(self, what: str) -> Iterator[None]:
        with self._cond:
            self.check(what)
            self._in_flight += 1
        try:
            yield
        except Exception as exc:
            # What a start in flight meets once the lab stops (a container removed under it, a
            # readiness probe that can no longer pass) is the stop, not the task's failure.
            if self._closed and not isinstance(exc, LabStopping):
                raise LabStopping(f"{what}: the lab is stopping ({exc})") from exc
            raise
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def close(self) -> None:
        """No new start from now on; the ones in flight fail at their next check."""
        with self._cond:
            self._closed = True

    def drain(self, timeout: float) -> int:
        """Close, then wait up to `timeout` for the starts in flight to end; returns how many are
        still running then (0: none)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closed = True
            while self._in_flight and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            return self._in_flight


class CannotPullContainerError(RuntimeError):
    """The task names an image the backend does not have and cannot get. The text is what ECS puts
    in the task's stoppedReason (`CannotPullContainerError: ...`), with how to get the image."""


@dataclass
class InstanceEndpoints:
    """Where the lab's services are, as seen from inside one instance's containers: what the control
    plane writes into that instance's agent containers at deploy time (`lab.ecs.agent_env`)."""

    intake_url: str
    egress_proxy_url: str | None = None
    ecs_agent_url: str | None = None
    imds_url: str | None = None
    # Local backend only: the address that is "127.0.0.1" inside the agent's network namespace.
    agent_localhost: str | None = None
    private_ip: str | None = None  # the instance's IP: reachable only through published host ports
    extra_env: dict[str, str] = field(default_factory=dict)
    # Datadog site -> the intake listener standing for it (lab.datadog_sites, docs/intake.md).
    site_intake_urls: dict[str, str] = field(default_factory=dict)


class TaskRunner(Protocol):
    """What the ECS instance agents drive: run, stop and look into a task's containers."""

    def start_task(self, instance: ContainerInstance, task: Task, specs: list[ContainerSpec]) -> None:
        """Start every container of `task` on `instance`; raise with a clear reason if it cannot."""

    def stop_task(self, task_arn: str) -> None:
        """Stop the task's containers and mark them STOPPED in the world."""

    def exec_in_container(self, task_arn: str, container: str, argv: list[str],
                          timeout: float = 30) -> tuple[int, str]:
        """Run `argv` inside a running container (`docker exec`); (exit code, output)."""

    def container_logs(self, task_arn: str, container: str, lines: int = 50) -> str:
        """The last `lines` of a container's output."""

    def follow_output(self, task_arn: str, container: str, on_lines: OutputLines,
                      stop: threading.Event) -> None:
        """Call `on_lines` with every line the container writes, from its start, until it has stopped
        and everything it wrote was delivered, or `stop` is set: what a docker log driver receives."""


class InstanceHost(TaskRunner, Protocol):
    """A backend: a task runner that also hosts the cluster's instances."""

    def refuse_new_tasks(self) -> None:
        """Its lab is stopping: start no task from now on, and give up the starts in flight
        (`StartGate`); what is running keeps running until the backend stops."""

    def serve_instance(self, instance: ContainerInstance) -> None:
        """Serve the instance's IMDS and ECS agent introspection before any task lands on it."""

    def instance_endpoints(self, instance: ContainerInstance) -> InstanceEndpoints:
        """The lab's services as seen from inside this instance."""
