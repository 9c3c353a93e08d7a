"""The docker backend's world layout as data: networks, addresses, host ports, the services.

One description, two readers: `DockerBackend` creates exactly these networks and containers, and
`compose()` renders the same topology as `docker-compose.yml` (the root file is this function's
output; a test keeps them equal). Addresses: docs/docker_backend.md#the-emulated-instance:

- `linklocal` 169.254.168.0/22: the fake IMDS holds 169.254.169.254 and task metadata
  169.254.170.2, as on EC2; every lab container that may call them joins it before it starts.
  Docker refuses overlapping subnets, so all instances share it; instance N's containers get
  addresses from their own /26 block (`instance_block`), which is how the IMDS and introspection
  tell instances apart by caller address.
- `lab` 172.30.0.0/24: the services' second leg, where the host reaches the intake and the
  control APIs (never through 169.254.x).
- `instance N` 172.30.N.0/24 whose gateway 172.30.N.1 is the instance's private IP: IMDS
  `local-ipv4` answers it and the agent's host ports are served on it.

- `fargate` 172.30.100.0/24 (made when the first Fargate task starts): the Fargate tasks' subnet,
  where each task's ENI (its pause container) has its private IP; the task's link-local leg has an
  address from 169.254.170.128/25, a block no instance routes, so the IMDS and introspection know
  no instance for it (docs/fargate.md#on-the-docker-backend).

Every network is `internal`: no container has a way out (not even DNS). Docker publishes no ports
for containers on internal networks, so host ports are played by the lab's userland forwarder
(`docker_services --role ports`) in the docker host's network namespace, bound on 172.30.N.1.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from lab.docker_engine import LABEL, ROLE_LABEL, RUN_LABEL  # noqa: E402,F401 - the backend reads them here
from lab.tasks import LAB_IMAGE, InstanceEndpoints

PROJECT = "ecs-agent-lab"

LINK_LOCAL_SUBNET = "169.254.168.0/22"
LINK_LOCAL_GATEWAY = "169.254.168.1"
IMDS_IP = "169.254.169.254"
TASK_METADATA_IP = "169.254.170.2"
LAB_SUBNET = "172.30.0.0/24"
LAB_GATEWAY = "172.30.0.1"
SERVICES_LAB_IP = "172.30.0.2"
IMDS_LAB_IP = "172.30.0.3"
MAX_INSTANCES = 8
# Link-local blocks for instance containers: 169.254.168.0/24 and 169.254.171.0/24 in /26s
# (169.254.169.0/24 and 169.254.170.0/24 stay for the services).
_BLOCK_BASES = ("169.254.168.0", "169.254.168.64", "169.254.168.128", "169.254.168.192",
                "169.254.171.0", "169.254.171.64", "169.254.171.128", "169.254.171.192")

# Fargate tasks: their subnet (one ENI address each) and their link-local block (task metadata only).
FARGATE_SUBNET = "172.30.100.0/24"
FARGATE_GATEWAY = "172.30.100.1"
FARGATE_LINK_LOCAL_BLOCK = "169.254.170.128/25"

INTAKE_PORT = 8091
EGRESS_PROXY_PORT = 3128
INTROSPECTION_PORT = 51678
WORLD_DIR = "/run/ecs-lab"
WORLD_FILE = f"{WORLD_DIR}/world.json"


@dataclass(frozen=True)
class Topology:
    instances: int = 1
    image: str = LAB_IMAGE
    # ECS Anywhere hosts, numbered after the EC2 instances: an instance network and a link-local
    # block each, like an EC2 instance, but the IMDS container has no route back to their block
    # (`external_blocks`), so nothing answers them at 169.254.169.254 (docs/ecs_anywhere.md).
    external_instances: int = 0

    def __post_init__(self) -> None:
        # 0: a lab of Fargate tasks only (no EC2 instance at all).
        if self.external_instances < 0 or not 0 <= self.hosts <= MAX_INSTANCES:
            raise ValueError(f"the docker backend runs 0..{MAX_INSTANCES} instances (EC2 and external "
                             f"together), not {self.instances} + {self.external_instances}")

    @property
    def hosts(self) -> int:
        """Every host with an instance network: the EC2 instances, then the external ones."""
        return self.instances + self.external_instances

    def external_blocks(self) -> list[str]:
        """The link-local blocks of the external hosts: the IMDS container routes them nowhere."""
        return [self.instance_block(n) for n in range(self.instances + 1, self.hosts + 1)]

    # -- addresses --------------------------------------------------------------------------------
    @staticmethod
    def instance_subnet(n: int) -> str:
        return f"172.30.{n}.0/24"

    @staticmethod
    def private_ip(n: int) -> str:
        """Instance N's private IP: its bridge network's gateway (the docker host plays it)."""
        return f"172.30.{n}.1"

    @staticmethod
    def instance_block(n: int) -> str:
        return f"{_BLOCK_BASES[n - 1]}/26"

    def block_addresses(self, n: int) -> list[str]:
        """Link-local addresses the backend hands instance N's containers, in order."""
        hosts = [str(h) for h in ipaddress.ip_network(self.instance_block(n)).hosts()]
        return [h for h in hosts if h != LINK_LOCAL_GATEWAY]

    def routes(self, instance_ids: dict[int, str]) -> dict[str, str]:
        """{link-local block: instance id}: the IMDS and introspection answer callers by these."""
        return {self.instance_block(n): iid for n, iid in instance_ids.items()}

    # -- lab-side URLs (what the agent is told) ----------------------------------------------------
    @property
    def intake_url(self) -> str:
        return f"http://{TASK_METADATA_IP}:{INTAKE_PORT}"

    @property
    def egress_proxy_url(self) -> str:
        return f"http://{TASK_METADATA_IP}:{EGRESS_PROXY_PORT}"

    @property
    def ecs_agent_url(self) -> str:
        return f"http://{TASK_METADATA_IP}:{INTROSPECTION_PORT}"

    def instance_endpoints(self, egress_proxy: bool) -> InstanceEndpoints:
        """The lab's services as an agent container on any instance reaches them. The agent has its
        own network namespace, so 127.0.0.1 and 0.0.0.0 mean what they say; 169.254.x is the lab's own
        link-local network (which the emulated agent otherwise refuses to call)."""
        sites = {site: f"http://{TASK_METADATA_IP}:{port}" for port, site in site_intake_ports().items()}
        return InstanceEndpoints(intake_url=self.intake_url,
                                 egress_proxy_url=self.egress_proxy_url if egress_proxy else None,
                                 ecs_agent_url=self.ecs_agent_url, site_intake_urls=sites,
                                 extra_env={"AWS_EXECUTION_ENV": "AWS_ECS_EC2",
                                            "LAB_AGENT_ALLOW_LINK_LOCAL_IMDS": "1"})

    @property
    def host_intake_url(self) -> str:
        """Where the host (tests, `ecs-lab status`) reads the intake: the lab network leg."""
        return f"http://{SERVICES_LAB_IP}:{INTAKE_PORT}"

    # -- the parts ---------------------------------------------------------------------------------
    def networks(self) -> dict[str, dict]:
        """Network key -> {subnet, gateway[, ip_range]}; every one internal.

        On an instance network docker hands out addresses from the upper half (`ip_range`) only, so
        a container with a docker-chosen address (an app, the `host`-mode instance netns) can never
        take the agent's fixed .2: switching an instance's agent between host and bridge mode would
        otherwise fail with "Address already in use" while the instance netns holds it."""
        nets = {"linklocal": {"subnet": LINK_LOCAL_SUBNET, "gateway": LINK_LOCAL_GATEWAY},
                "lab": {"subnet": LAB_SUBNET, "gateway": LAB_GATEWAY}}
        for n in range(1, self.hosts + 1):
            nets[f"instance{n}"] = {"subnet": self.instance_subnet(n), "gateway": self.private_ip(n),
                                    "ip_range": f"172.30.{n}.128/25"}
        return nets

    def service_containers(self) -> dict[str, dict]:
        """The lab's own containers: key -> {command, networks {key: ipv4}}."""
        return {
            "imds": {"networks": {"linklocal": IMDS_IP, "lab": IMDS_LAB_IP}},
            "services": {"networks": {"linklocal": TASK_METADATA_IP, "lab": SERVICES_LAB_IP}},
        }

    def imds_blackholes(self) -> list[list[str]]:
        """What the IMDS container runs (it starts with NET_ADMIN for this) once it is on its networks:
        an `unreachable` route to each external host's link-local block, so its replies to them go
        nowhere and for those hosts nothing answers at 169.254.169.254. Run after docker joined its
        networks, as docker's own route updates on a join do not expect routes it did not make."""
        return [["ip", "route", "add", "unreachable", block] for block in self.external_blocks()]

    def service_argv(self, role: str) -> list[str]:
        return ["python", "-m", "lab.backends.docker_services", "--role", role, "--world-file", WORLD_FILE,
                "--instances", str(self.instances)]

    def agent_addresses(self, n: int) -> dict[str, str]:
        """The agent of instance N: first address of its link-local block, .2 on its bridge."""
        return {"linklocal": self.block_addresses(n)[0], f"instance{n}": f"172.30.{n}.2"}

    # -- compose -----------------------------------------------------------------------------------
    def compose(self, agent_env: dict[str, dict[str, str]] | None = None,
                agent_image: str = "${LAB_AGENT_IMAGE:-" + LAB_IMAGE + "}",
                apps: dict[str, dict] | None = None) -> dict:
        """The same world for `docker compose up`: networks, services, one agent per instance.

        Compose cannot run the lab's Python owner, so its world file is static (`world.json` made
        by `ecs-lab` or the services' `--instances` default): IMDS and introspection answer, tasks
        started by compose are not in the world.
        """
        labels = {LABEL: "1", RUN_LABEL: "compose"}
        networks = {key: {"name": f"{PROJECT}-{key}", "internal": True, "labels": dict(labels),
                          "ipam": {"config": [{k: v[k] for k in ("subnet", "gateway", "ip_range")
                                               if k in v}]}}
                    for key, v in self.networks().items()}
        services: dict[str, dict] = {}
        for key, svc in self.service_containers().items():
            services[key] = {
                "image": self.image,
                "command": self.service_argv(key),
                "entrypoint": [],
                "labels": {**labels, ROLE_LABEL: key},
                "volumes": ["./.lab/compose:" + WORLD_DIR + ":ro"],
                "networks": {net: {"ipv4_address": ip} for net, ip in svc["networks"].items()},
            }
        for n in range(1, self.instances + 1):
            addrs = self.agent_addresses(n)
            services[f"datadog-agent-{n}"] = {
                "image": agent_image,
                "labels": {**labels, ROLE_LABEL: "agent"},
                "environment": dict((agent_env or {}).get(str(n), {})),
                "volumes": ["/var/run/docker.sock:/var/run/docker.sock:ro", "/proc/:/host/proc/:ro",
                            "/sys/fs/cgroup/:/host/sys/fs/cgroup:ro"],
                "networks": {net: {"ipv4_address": ip} for net, ip in addrs.items()},
                "healthcheck": {"test": ["CMD-SHELL", "agent health"], "interval": "30s",
                                "timeout": "5s", "retries": 3, "start_period": "15s"},
                "depends_on": ["imds", "services"],
            }
            services[f"host-ports-{n}"] = {
                "image": self.image,
                "entrypoint": [],
                "network_mode": "host",
                "labels": {**labels, ROLE_LABEL: "host-ports"},
                "command": ["python", "-m", "lab.backends.docker_services", "--role", "ports",
                            *self.port_map_args(n, addrs[f"instance{n}"], [(8126, "tcp"), (8125, "udp")])],
                "depends_on": [f"datadog-agent-{n}"],
            }
        for name, app in (apps or {}).items():
            n = app.get("instance", 1)
            services[name] = {
                "image": self.image,
                "labels": {**labels, ROLE_LABEL: "app"},
                "environment": dict(app.get("environment", {})),
                "networks": {"linklocal": {"ipv4_address": app["linklocal"]}, f"instance{n}": {}},
                "depends_on": ["imds", f"datadog-agent-{n}"],
            }
            for key in ("entrypoint", "command"):
                if app.get(key) is not None:
                    # Compose interpolates `$VAR`; the task definition's shell line needs `$$`.
                    services[name][key] = [a.replace("$", "$$") for a in app[key]]
        # File format 2.4: both docker-compose 1.x (Debian's) and the `docker compose` plugin read it,
        # with fixed addresses, internal networks and `start_period`.
        return {"version": "2.4", "services": services, "networks": networks}

    def port_map_args(self, n: int, target_ip: str, ports: list[tuple[int, str]],
                      host_ports: list[int] | None = None) -> list[str]:
        args = []
        for i, (port, proto) in enumerate(ports):
            hp = host_ports[i] if host_ports else port
            args += ["--map", f"{self.private_ip(n)}:{hp}/{proto}={target_ip}:{port}"]
        return args


def site_intake_ports() -> dict[int, str]:
    """Port -> Datadog site of the services container's per-site intake listeners: clear of the
    intake's own port and of the services' control port (8092)."""
    from lab.datadog_sites import SITES

    return {INTAKE_PORT + 10 + i: site for i, site in enumerate(SITES)}
