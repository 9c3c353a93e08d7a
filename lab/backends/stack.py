"""The stack as data: what `ecs-lab up` (and each scenario) starts, with which addresses and env.

A `Stack` names the number of instances, the agent features, the agent env overrides, the sample
apps (one per DD_AGENT_HOST variant) and every address/port. Defaults follow
docs/local_backend.md#addresses-defaults-all-overridable-through-stack: instance N's private IP is
`<subnet>.1.N` (127.0.1.N), the agent's own "localhost" is `<subnet>.2.N` (127.0.2.N); everything
is overridable so tests and second stacks use other loopback subnets and port 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from lab.backends.base import LAB_IMAGE, ContainerSpec, HealthCheck, PortSpec
from lab.fakes.fips_proxy.ports import DEFAULT_PORT_RANGE_START

FEATURES = ("apm", "dogstatsd", "processes", "fips", "apm_non_local", "dogstatsd_non_local", "egress_proxy")
DEFAULT_FEATURES = frozenset({"apm", "dogstatsd", "processes", "apm_non_local", "dogstatsd_non_local",
                              "egress_proxy"})

# How the sample app finds DD_AGENT_HOST, each as in the Datadog ECS APM docs (lab/apps/entrypoints.py
# holds the `sh -c` lines).
APP_VARIANTS = ("imdsv1", "imdsv2", "metadata_file", "in_code")

AGENT_IMAGE = "public.ecr.aws/datadog/agent:latest"
# A reserved TLD (RFC 2606): nothing configured from DD_SITE can ever resolve to a real intake.
LAB_SITE = "ecs-lab.invalid"


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
    run_dir: Path = Path(".lab/run")
    # Send the agents' data to an intake the lab does not run (e.g. a datadog/fakeintake container).
    external_intake_url: str | None = None
    cluster: str = "ecs-lab"
    imds_tokens_required: bool = False
    health_interval: float = 5.0
    ready_timeout: float = 20.0
    # How the stack's agents and apps start: registered as task definitions on the lab's control
    # plane and run as services by its instance agents, as users deploy on ECS (the default); or
    # started directly by the backend (False: tests that drive the control plane themselves).
    via_control_plane: bool = True

    def __post_init__(self) -> None:
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

    def imds_url(self, n: int) -> str:
        return f"http://{self.private_ip(n)}:{self.ports.imds}"

    def ecs_agent_url(self, n: int) -> str:
        return f"http://{self.private_ip(n)}:{self.ports.ecs_introspection}"

    # -- the agent task -----------------------------------------------------------------------------
    def agent_env_for(self, n: int, intake_url: str, fips_start: int | None = None,
                      egress_proxy_url: str | None = None) -> dict[str, str]:
        """The agent container's environment: the docs' ECS settings + the lab's redirects."""
        env = {
            "DD_API_KEY": "0" * 32,
            "DD_SITE": LAB_SITE,
            "DD_HOSTNAME_TRUST_UTS_NAMESPACE": "false",
            "DD_ECS_AGENT_URL": self.ecs_agent_url(n),
            "DD_REMOTE_CONFIGURATION_ENABLED": "false",
            "DD_APM_ENABLED": str(self.has("apm")).lower(),
            "DD_APM_NON_LOCAL_TRAFFIC": str(self.has("apm_non_local")).lower(),
            "DD_APM_RECEIVER_PORT": str(self.ports.apm),
            "DD_USE_DOGSTATSD": str(self.has("dogstatsd")).lower(),
            "DD_DOGSTATSD_NON_LOCAL_TRAFFIC": str(self.has("dogstatsd_non_local")).lower(),
            "DD_DOGSTATSD_PORT": str(self.ports.dogstatsd),
            "DD_PROCESS_AGENT_ENABLED": str(self.has("processes")).lower(),
            "DD_PROCESS_CONFIG_PROCESS_COLLECTION_ENABLED": str(self.has("processes")).lower(),
            "DD_CMD_PORT": str(self.ports.agent_cmd),
            "DD_EXPVAR_PORT": str(self.ports.agent_expvar),
            # Every forwarder redirected (docs/agent_contract.md#intake-urls): an unredirected one leaks.
            "DD_DD_URL": intake_url,
            "DD_APM_DD_URL": intake_url,
            "DD_PROCESS_CONFIG_PROCESS_DD_URL": intake_url,
            "DD_LOGS_CONFIG_LOGS_DD_URL": intake_url,
            "DD_LOGS_CONFIG_USE_HTTP": "true",
            "DD_ORCHESTRATOR_EXPLORER_ORCHESTRATOR_DD_URL": intake_url,
            "DD_APM_PROFILING_DD_URL": intake_url,
            "DD_APM_TELEMETRY_DD_URL": intake_url,
            # The agent's own view of its netns
            # (docs/local_backend.md#an-instances-network-namespaces-on-loopback).
            "LAB_AGENT_LOCALHOST": self.agent_localhost(n),
            "LAB_AGENT_HOST_ADDRESSES": f"{self.private_ip(n)},{self.agent_localhost(n)}",
        }
        if egress_proxy_url:
            # Anything still bound for a real (https) Datadog host goes to the recording proxy, which
            # refuses it and remembers the host; the lab's own http:// URLs are not proxied.
            env["DD_PROXY_HTTPS"] = egress_proxy_url
        if self.has("fips"):
            env.update({
                "DD_FIPS_ENABLED": "true",
                "DD_FIPS_PORT_RANGE_START": str(fips_start or self.ports.fips_start),
                "DD_FIPS_LOCAL_ADDRESS": self.agent_localhost(n),
                "DD_FIPS_HTTPS": "false",
            })
        env.update(self.agent_env)
        return env

    def agent_spec(self, n: int, intake_url: str, fips_start: int | None = None,
                   egress_proxy_url: str | None = None) -> ContainerSpec:
        return ContainerSpec(
            name="datadog-agent",
            image=self.agent_image,
            env=self.agent_env_for(n, intake_url, fips_start, egress_proxy_url),
            ports=[PortSpec(self.ports.apm, self.ports.apm, "tcp"),
                   PortSpec(self.ports.dogstatsd, self.ports.dogstatsd, "udp")],
            # The task definition's health check from the Datadog ECS docs (docs/agent_contract.md),
            # with a shorter interval so the lab reports health within seconds.
            health_check=HealthCheck(["CMD-SHELL", "agent health"], interval=self.health_interval,
                                     timeout=5, retries=3, start_period=0),
        )

    # -- the app tasks ------------------------------------------------------------------------------
    def app_spec(self, variant: str) -> ContainerSpec:
        """One sample app container per DD_AGENT_HOST variant; service name `web-<variant>`."""
        service = f"web-{variant.replace('_', '-')}"
        return ContainerSpec(
            name="app",
            image=LAB_IMAGE,
            entry_point=None,  # filled from lab.apps.entrypoints by the backend (variant env)
            env={
                "DD_SERVICE": service,
                "DD_ENV": "lab",
                "DD_VERSION": "1.0.0",
                "LAB_APP_VARIANT": variant,
                "DD_TRACE_AGENT_PORT": str(self.ports.apm),
                "DD_DOGSTATSD_PORT": str(self.ports.dogstatsd),
            },
        )


def app_service(variant: str) -> str:
    return f"web-{variant.replace('_', '-')}"
