"""The stack as data: what a lab starts (`ecs-lab up`, the pytest plugin's labs, `EcsLab`).

A `Stack` names the number of instances, the agent features, the agent env overrides, the sample
apps (one per DD_AGENT_HOST variant) and every address/port. It is only a description: the ECS
control plane turns it into task definitions and services (`lab.ecs.stack_services`, whose agent
environment comes from `lab.ecs.agent_env` alone), and a backend runs what the control plane places.

Addressing on the local backend (docs/local_backend.md): instance N's private IP is
`<subnet>.1.N` (127.0.1.N), the agent's own "localhost" is `<subnet>.2.N` (127.0.2.N); everything
is overridable so tests and second stacks use other loopback subnets and port 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from lab.fakes.fips_proxy.ports import DEFAULT_PORT_RANGE_START

FEATURES = ("apm", "dogstatsd", "processes", "fips", "apm_non_local", "dogstatsd_non_local", "egress_proxy",
            "npm")
DEFAULT_FEATURES = frozenset({"apm", "dogstatsd", "processes", "apm_non_local", "dogstatsd_non_local",
                              "egress_proxy"})

# How the sample app finds DD_AGENT_HOST, each as in the Datadog ECS APM docs (lab/apps/entrypoints.py
# holds the `sh -c` lines).
APP_VARIANTS = ("imdsv1", "imdsv2", "metadata_file", "in_code")
# The stack's agent service: one DAEMON service per cluster, named as in the docs.
AGENT_SERVICE = "datadog-agent"
# The same agent task definition on the stack's ECS Anywhere hosts: a DAEMON service of launch type
# EXTERNAL (ECS places a service's tasks with one launch type, so external hosts need their own).
EXTERNAL_AGENT_SERVICE = "datadog-agent-external"
AGENT_SERVICES = (AGENT_SERVICE, EXTERNAL_AGENT_SERVICE)

# The image the Datadog ECS docs' task definitions name; which agent really runs for it is the
# backend's choice, recorded in the lab's status (docs/agents.md).
AGENT_IMAGE = "public.ecr.aws/datadog/agent:latest"
DEFAULT_READY_TIMEOUT = 20.0


@dataclass
class Ports:
    intake: int = 8091
    imds: int = 1338
    ecs_introspection: int = 51678
    task_metadata: int = 51679
    apm: int = 8126
    dogstatsd: int = 8125
    agent_cmd: int = 5001
    agent_expvar: int = 5000
    fips_start: int = DEFAULT_PORT_RANGE_START
    egress_proxy: int = 3128
    control_plane: int = 4566

    @classmethod
    def ephemeral(cls) -> Ports:
        """Port 0 for the shared servers (intake, task metadata, egress proxy, control plane): for
        tests."""
        return cls(intake=0, task_metadata=0, egress_proxy=0, control_plane=0)


@dataclass
class Stack:
    instances: int = 1
    features: frozenset[str] = DEFAULT_FEATURES
    agent_env: dict[str, str] = field(default_factory=dict)
    apps: tuple[str, ...] = APP_VARIANTS
    # First two octets of the instance addresses: "127.0" gives 127.0.1.N / 127.0.2.N.
    subnet: str = "127.0"
    private_octet: int = 1
    localhost_octet: int = 2
    services_host: str = "127.0.0.1"  # intake, task metadata, egress proxy
    ports: Ports = field(default_factory=Ports)
    agent_image: str = AGENT_IMAGE
    # A user's own agent command line (LAB_AGENT_COMMAND); None runs the emulated agent.
    agent_command: str | None = None
    # The emulated agent's timing profile ("" default, "real-timing": the real agent's intervals).
    agent_profile: str | None = None
    run_dir: Path = Path(".lab/run")
    # Send the agents' data to an intake the lab does not run (e.g. a datadog/fakeintake container).
    external_intake_url: str | None = None
    cluster: str = "ecs-lab"
    # A named lab's name (`ecs-lab up --name`): labs side by side tell themselves apart by it.
    name: str | None = None
    imds_tokens_required: bool = False
    health_interval: float = 5.0
    # Seconds a container may take to be ready; LAB_READY_TIMEOUT changes the default for a whole run
    # (a loaded machine, where an app's ddtrace start-up alone can take longer).
    ready_timeout: float = DEFAULT_READY_TIMEOUT
    # Deploy the stack's services (the agent DAEMON service, the apps). False: the instances join the
    # cluster with nothing on them (tests and users that register their own task definitions).
    deploy: bool = True
    # User data every instance is launched with (IMDS /latest/user-data), run at its boot (local
    # backend: lab/instance_boot.py; docker: inside the instance, lab/backends/docker_boot.py). With
    # it, the agent's task definition is registered but no DAEMON service is created: the user data
    # starts the agent (`aws ecs start-task`), as in the ECS guides that predate DAEMON services.
    user_data: str | None = None
    # ECS Anywhere hosts after the EC2 instances (instance numbers instances+1 ...): registered with a
    # managed instance id, no IMDS; the agent runs there as the DAEMON service of launch type
    # EXTERNAL (docs/ecs_anywhere.md). Local backend only.
    external_instances: int = 0

    def __post_init__(self) -> None:
        if self.instances < 0 or self.external_instances < 0:
            raise ValueError(f"instances ({self.instances}) and external_instances "
                             f"({self.external_instances}) cannot be negative")
        if self.external_instances and not self.instances and self.apps and self.deploy:
            raise ValueError("the stack's sample apps are EC2 services placed on EC2 instance 1, and this "
                             "stack has only external instances: use apps=() and run your own tasks with "
                             "launch type EXTERNAL there, or add an EC2 instance")
        if self.external_instances and self.user_data is not None:
            raise ValueError("user data is EC2's (IMDS /latest/user-data): external instances have none")
        unknown = set(self.features) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown feature(s) {sorted(unknown)}; known: {', '.join(FEATURES)}")
        bad = set(self.apps) - set(APP_VARIANTS)
        if bad:
            raise ValueError(f"unknown app variant(s) {sorted(bad)}; known: {', '.join(APP_VARIANTS)}")
        self.features = frozenset(self.features)
        self.run_dir = Path(self.run_dir)
        if self.agent_command is None:
            self.agent_command = os.environ.get("LAB_AGENT_COMMAND") or None
        # The agent under test, chosen for the whole run (docs/agents.md): an image to run for the
        # stack's agent (LAB_AGENT_IMAGE), or the emulated agent's timing profile (LAB_AGENT_PROFILE).
        chosen = os.environ.get("LAB_AGENT_IMAGE", "")
        if self.agent_image == AGENT_IMAGE and chosen not in ("", "emulated"):
            self.agent_image = chosen
        if self.agent_profile is None:
            self.agent_profile = os.environ.get("LAB_AGENT_PROFILE") or ""
        chosen_timeout = os.environ.get("LAB_READY_TIMEOUT", "").strip()
        if self.ready_timeout == DEFAULT_READY_TIMEOUT and chosen_timeout:
            try:
                self.ready_timeout = float(chosen_timeout)
            except ValueError:
                raise ValueError(f"LAB_READY_TIMEOUT={chosen_timeout!r} is not a number of seconds") from None
            if self.ready_timeout <= 0:
                raise ValueError(f"LAB_READY_TIMEOUT={chosen_timeout!r} must be more than 0 seconds")

    def with_(self, **changes) -> Stack:
        return replace(self, **changes)

    def has(self, feature: str) -> bool:
        return feature in self.features

    # -- addresses --------------------------------------------------------------------------------
    def private_ip(self, n: int) -> str:
        """Instance N's private IPv4 (IMDS local-ipv4): where apps send traces and metrics."""
        return f"{self.subnet}.{self.private_octet}.{n}"

    def agent_localhost(self, n: int) -> str:
        """What 127.0.0.1 is inside instance N's agent netns (bridge mode); apps are not told it."""
        return f"{self.subnet}.{self.localhost_octet}.{n}"

    def is_external(self, n: int) -> bool:
        """Whether instance N is one of the stack's ECS Anywhere hosts (they follow the EC2 ones)."""
        return self.instances < n <= self.instances + self.external_instances

    def imds_url(self, n: int) -> str:
        return f"http://{self.private_ip(n)}:{self.ports.imds}"

    def ecs_agent_url(self, n: int) -> str:
        return f"http://{self.private_ip(n)}:{self.ports.ecs_introspection}"


def app_service(variant: str) -> str:
    return f"web-{variant.replace('_', '-')}"
