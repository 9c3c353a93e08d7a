"""The agent container's environment: the one place the lab writes it.

Two parts, written at two moments, as on ECS:
- `agent_settings(stack)`: what a user writes into the agent's task definition for the stack's
  features (the Datadog ECS docs' settings: APM and DogStatsD with non-local traffic, process
  collection, FIPS), plus the stack's own `agent_env`. It is registered on the control plane, so
  `aws ecs describe-task-definition` shows it.
- `Redirects`: what the lab adds when an instance agent starts an agent container, never part of the
  registered definition: every intake URL pointed at the lab, the recording egress proxy, remote
  configuration off, and the instance's own IMDS and ECS agent endpoints (from the backend's
  `InstanceEndpoints`).

DD_SITE: a documented Datadog site the user set (lab.datadog_sites) is honoured: the agent keeps it
(`agent config` shows it) and every intake URL points at the intake listener standing for that
site, which records the site and the host the agent would have reached on each payload and can be
given that site's valid API keys (403 for any other). The agent keeps a real site only behind the
recording egress proxy, so that a sender the redirects missed still cannot leave the machine;
without the proxy, and when DD_SITE is unset or not a documented site, it gets an unresolvable
site (`LAB_SITE`) instead. A setting the user got wrong (no
  DD_DOGSTATSD_NON_LOCAL_TRAFFIC, no 8126 hostPort) stays wrong, so the lab shows what ECS would.

Which keys the agent reads, and why each intake URL must be redirected: docs/agent_contract.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from lab.datadog_sites import is_documented
from lab.log_router.firelens import Redirect
from lab.stack import Stack
from lab.tasks import InstanceEndpoints

# Every URL the agent sends data to, by env name (docs/agent_contract.md#intake-urls): a forwarder
# nobody redirects would leave the machine.
# These take a base URL (the agent appends the route); the EVP proxy's is a domain to the real agent,
# a URL only to the emulated one (docs/tracer_surface.md#evp-proxy). profiling_dd_url is a full URL
# (PROFILING_URL_KEY below).
INTAKE_URL_KEYS = ("DD_DD_URL", "DD_APM_DD_URL", "DD_PROCESS_CONFIG_PROCESS_DD_URL",
                   "DD_LOGS_CONFIG_LOGS_DD_URL", "DD_ORCHESTRATOR_EXPLORER_ORCHESTRATOR_DD_URL",
                   "DD_APM_TELEMETRY_DD_URL", "DD_APM_EVP_PROXY_CONFIG_DD_URL")
PROFILING_URL_KEY = "DD_APM_PROFILING_DD_URL"
# The route the profiling intake serves (the agent's default profiling_dd_url ends with it).
PROFILING_ROUTE = "/api/v2/profile"
# A reserved TLD (RFC 2606): whatever the agent derives from DD_SITE can never resolve.
LAB_SITE = "ecs-lab.invalid"
# A dummy key of the right length (the agent checks the length, never the key, before sending).
LAB_API_KEY = "0" * 32
# Set per instance at deploy time: never part of a registered definition.
PER_INSTANCE_ENV = ("DD_ECS_AGENT_URL", "LAB_AGENT_LOCALHOST", "LAB_AGENT_HOST_ADDRESSES")


def _flag(on: bool) -> str:
    return str(on).lower()


def agent_settings(stack: Stack) -> dict[str, str]:
    """The agent container's `environment` in the stack's task definition (see module docstring)."""
    p = stack.ports
    env = {
        "DD_API_KEY": LAB_API_KEY,
        # Inside a container the agent would otherwise take the UTS hostname (the container id);
        # on ECS it takes the instance id from IMDS.
        "DD_HOSTNAME_TRUST_UTS_NAMESPACE": "false",
        "DD_APM_ENABLED": _flag(stack.has("apm")),
        "DD_APM_NON_LOCAL_TRAFFIC": _flag(stack.has("apm_non_local")),
        "DD_APM_RECEIVER_PORT": str(p.apm),
        "DD_USE_DOGSTATSD": _flag(stack.has("dogstatsd")),
        "DD_DOGSTATSD_NON_LOCAL_TRAFFIC": _flag(stack.has("dogstatsd_non_local")),
        "DD_DOGSTATSD_PORT": str(p.dogstatsd),
        "DD_PROCESS_AGENT_ENABLED": _flag(stack.has("processes")),
        "DD_PROCESS_CONFIG_PROCESS_COLLECTION_ENABLED": _flag(stack.has("processes")),
        "DD_CMD_PORT": str(p.agent_cmd),
        "DD_EXPVAR_PORT": str(p.agent_expvar),
    }
    if stack.has("fips"):
        # As the docs' FIPS task definition has it: the proxy on the agent's own 127.0.0.1, one port
        # per data type from the range start (docs/fips_proxy.md).
        env.update({"DD_FIPS_ENABLED": "true", "DD_FIPS_PORT_RANGE_START": str(p.fips_start),
                    "DD_FIPS_LOCAL_ADDRESS": "127.0.0.1", "DD_FIPS_HTTPS": "false"})
    if stack.agent_profile:
        # Read by the emulated agent only (docs/agent.md#profiles-lab_agent_profile); a real agent ignores it.
        env["LAB_AGENT_PROFILE"] = stack.agent_profile
    env.update({k: v for k, v in stack.agent_env.items() if k not in PER_INSTANCE_ENV})
    return env


# The agent's OTLP receiver settings (otlp_config.receiver.protocols.{grpc,http}.endpoint), gRPC first.
OTLP_ENDPOINT_KEYS = ("DD_OTLP_CONFIG_RECEIVER_PROTOCOLS_GRPC_ENDPOINT",
                      "DD_OTLP_CONFIG_RECEIVER_PROTOCOLS_HTTP_ENDPOINT")


def otlp_receiver_ports(env: dict[str, str]) -> list[int]:
    """The TCP ports the agent's OTLP receiver listens on with this environment (docs: 4317 gRPC, 4318
    HTTP), in key order, each once; none without the settings. A value that is not `host:port` gets
    no port here: the agent refuses it at start with the reason (docs/otlp.md#enabling-it)."""
    ports: list[int] = []
    for key in OTLP_ENDPOINT_KEYS:
        _host, sep, port = (env.get(key) or "").strip().rpartition(":")
        if sep and port.isdigit() and 0 < int(port) < 65536 and int(port) not in ports:
            ports.append(int(port))
    return ports


def fips_proxy_settings(stack: Stack) -> dict[str, str]:
    """The FIPS proxy sidecar's `environment` (the docs' FIPS task definition)."""
    return {"DD_FIPS_PORT_RANGE_START": str(stack.ports.fips_start), "DD_FIPS_LOCAL_ADDRESS": "127.0.0.1"}


@dataclass
class Redirects:
    """The lab's deploy-time settings for one instance's agent containers (never the user's file)."""

    intake_url: str
    egress_proxy_url: str | None = None
    ecs_agent_url: str | None = None
    imds_url: str | None = None
    agent_localhost: str | None = None  # LAB_AGENT_LOCALHOST (local backend: docs/local_backend.md)
    private_ip: str | None = None  # the instance's IP: reachable only through published host ports
    extra_env: dict[str, str] = field(default_factory=dict)
    site_intake_urls: dict[str, str] = field(default_factory=dict)  # Datadog site -> its listener

    @classmethod
    def for_instance(cls, endpoints: InstanceEndpoints) -> Redirects:
        return cls(intake_url=endpoints.intake_url, egress_proxy_url=endpoints.egress_proxy_url,
                   ecs_agent_url=endpoints.ecs_agent_url, imds_url=endpoints.imds_url,
                   agent_localhost=endpoints.agent_localhost, private_ip=endpoints.private_ip,
                   extra_env=dict(endpoints.extra_env),
                   site_intake_urls=dict(endpoints.site_intake_urls))

    def agent_env(self, user_env: dict[str, str], reachable_on_host: bool = True) -> dict[str, str]:
        """`reachable_on_host`: whether apps can reach the agent at the instance's private IP (host
        mode, or bridge mode with its 8126/8125 host ports published)."""
        env = dict(user_env)
        site = (env.get("DD_SITE") or "").strip()
        site_url = self.site_intake_urls.get(site) if is_documented(site) else None
        for key in INTAKE_URL_KEYS:
            env[key] = site_url or self.intake_url
        env[PROFILING_URL_KEY] = (site_url or self.intake_url) + PROFILING_ROUTE
        env["DD_LOGS_CONFIG_USE_HTTP"] = "true"
        # See the module docstring: a documented site stays only where the egress proxy catches misses.
        env["DD_SITE"] = site if (site_url and self.egress_proxy_url) else LAB_SITE
        env["DD_REMOTE_CONFIGURATION_ENABLED"] = "false"
        if self.egress_proxy_url:
            # Real intakes are https: whatever the redirects missed goes to the recording proxy. The
            # lab's own intake is plain http and must not (proxy.http would send it there too).
            env["DD_PROXY_HTTPS"] = self.egress_proxy_url
            env.pop("DD_PROXY_HTTP", None)
        if self.ecs_agent_url:
            env["DD_ECS_AGENT_URL"] = self.ecs_agent_url
        if self.imds_url:
            env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = self.imds_url
        if self.agent_localhost:
            env["LAB_AGENT_LOCALHOST"] = self.agent_localhost
            # FIPS: the docs' sidecar listens on 127.0.0.1; in the agent's netns that is this address.
            if env.get("DD_FIPS_LOCAL_ADDRESS") in ("127.0.0.1", "localhost"):
                env["DD_FIPS_LOCAL_ADDRESS"] = self.agent_localhost
            # "All interfaces" of the agent's netns: the instance's IP only when published/host mode.
            addresses = [self.private_ip] if (reachable_on_host and self.private_ip) else []
            env["LAB_AGENT_HOST_ADDRESSES"] = ",".join([*addresses, self.agent_localhost])
        env.update(self.extra_env)
        return env

    def log_router_redirect(self) -> Redirect:
        """Where a FireLens log router's datadog outputs send (their Host/Port; TLS off): the lab's
        intake, as for the agent's logs_dd_url. The user's task definition keeps its Host."""
        parts = urlsplit(self.intake_url)
        return Redirect(host=parts.hostname or "127.0.0.1", port=parts.port or 80)

    def fips_proxy_env(self, user_env: dict[str, str]) -> dict[str, str]:
        env = dict(user_env)
        env["LAB_INTAKE_URL"] = self.intake_url
        if self.agent_localhost and env.get("DD_FIPS_LOCAL_ADDRESS") in ("127.0.0.1", "localhost", None):
            env["DD_FIPS_LOCAL_ADDRESS"] = self.agent_localhost
        return env
