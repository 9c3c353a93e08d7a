"""What a user's own test suite reads off a running lab (`EcsLab.agents`, `.apps`, `.endpoints`).

Each is a snapshot of the lab's status when it was asked for, plus readers that go through what a
real deployment offers: an agent is read by exec'ing its own CLI in its container (`agent health`,
`agent status -j`, `agent config`, as `docker exec` / ECS Exec would), never through an endpoint
only the lab's emulated agent serves, so the same test holds for a real agent image
(docs/public_api.md).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# (task arn, container name, argv, timeout) -> (exit code, output): the backend's exec_in_container.
Exec = Callable[[str, str, list[str], float], tuple[int, str]]

AGENT_CONTAINER = "datadog-agent"  # the container name in the docs' agent task definition


class AgentCommandError(RuntimeError):
    """An agent CLI command exited non-zero or printed something that is not what it documents."""


@dataclass(frozen=True)
class RunningAgent:
    """The agent of one instance, as apps on that instance reach it, and its own CLI."""

    instance_index: int
    instance_id: str
    private_ip: str
    apm_url: str
    dogstatsd: tuple[str, int]
    task_arn: str | None
    container: str
    status_when_read: str
    _exec: Exec = field(repr=False, compare=False)
    # "EC2", or "EXTERNAL" for an ECS Anywhere host (instance_id is then its managed instance id).
    launch_type: str = "EC2"
    # The host's own name (what its docker daemon says), where the agent's hostname comes from on a
    # host without IMDS.
    host_name: str = ""

    @property
    def hostname(self) -> str:
        """What the agent reports as its host: on ECS EC2 the IMDS instance-id; on an ECS Anywhere
        host, which has no IMDS, the host's own name (docs/ecs_anywhere.md#the-agents-hostname)."""
        return self.host_name if self.launch_type == "EXTERNAL" else self.instance_id

    def exec(self, argv: list[str], timeout: float = 30) -> tuple[int, str]:
        """Run a command in the agent's container (`docker exec`): (exit code, output)."""
        if not self.task_arn:
            raise LookupError(f"instance {self.instance_index} runs no agent task")
        return self._exec(self.task_arn, self.container, list(argv), timeout)

    @property
    def probe(self) -> Any:
        """The agent read only through what the real agent offers (`lab.agent_probe.AgentProbe`):
        `agent status`, `agent health`, `agent config` in its container, the trace-agent's /info."""
        from lab.agent_probe import AgentProbe

        return AgentProbe(lambda argv: self.exec(argv), self.apm_url)

    def health(self, timeout: float = 30) -> tuple[int, str]:
        """`agent health`: exit 0 and "Agent health: PASS" when every component is healthy."""
        return self.exec(["agent", "health"], timeout)

    def is_healthy(self, timeout: float = 30) -> bool:
        return bool(self.probe.health())

    def status(self, timeout: float = 30) -> dict:
        """`agent status -j`: the agent's status document."""
        try:
            return self.probe.status()
        except Exception as exc:  # noqa: BLE001 - the probe's parse or exec error, said as ours
            raise AgentCommandError(str(exc)) from exc

    def config(self, timeout: float = 30) -> dict:
        """`agent config`: the agent's runtime configuration (YAML), as a dict."""
        try:
            return self.probe.config()
        except Exception as exc:  # noqa: BLE001
            raise AgentCommandError(str(exc)) from exc


@dataclass(frozen=True)
class RunningApp:
    """A sample app's task, and its HTTP address as a client of the service reaches it."""

    variant: str
    service: str
    task_arn: str
    instance_index: int
    url: str | None
    docker_id: str | None
    status_when_read: str

    def get(self, path: str = "/", timeout: float = 10.0) -> Any:
        """GET a path of the app (it answers JSON); `/work` makes a trace and returns its id."""
        if not self.url:
            raise LookupError(f"app {self.variant} has no address (status {self.status_when_read})")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback/lab only
        with opener.open(f"{self.url}{path}", timeout=timeout) as resp:
            return json.loads(resp.read())


@dataclass(frozen=True)
class LabEndpoints:
    """Where the lab's parts answer, from the machine that runs the tests."""

    control_plane: str | None  # the ECS API (boto3/awscli `--endpoint-url`)
    intake: str  # the fake intake (fakeintake's query API)
    task_metadata: str | None
    # Instance index -> IMDS base URL and ECS agent introspection URL. The local backend serves them on
    # loopback; on docker they are the link-local addresses the instance's containers use.
    imds: dict[int, str]
    ecs_agent: dict[int, str]


def agents_from_status(status: dict, exec_in_container: Exec) -> list[RunningAgent]:
    out = []
    for inst in status.get("instances", []):
        host, _, port = inst["dogstatsd"].rpartition(":")
        agent = inst.get("agent") or {}
        out.append(RunningAgent(
            instance_index=inst["index"], instance_id=inst["instance_id"], private_ip=inst["private_ip"],
            apm_url=inst["apm_url"], dogstatsd=(host, int(port)), task_arn=agent.get("task_arn"),
            container=agent.get("container") or AGENT_CONTAINER,
            status_when_read=agent.get("status", "UNKNOWN"), _exec=exec_in_container,
            launch_type=inst.get("launch_type", "EC2"), host_name=inst.get("host_name", "")))
    return out


def apps_from_status(status: dict) -> dict[str, RunningApp]:
    return {variant: RunningApp(variant=variant, service=a["service"], task_arn=a["task_arn"],
                                instance_index=a.get("instance", 1), url=a.get("url"),
                                docker_id=a.get("docker_id"), status_when_read=a.get("status", "UNKNOWN"))
            for variant, a in status.get("apps", {}).items()}


def endpoints_from_status(status: dict, control_plane: str | None) -> LabEndpoints:
    instances = status.get("instances", [])
    return LabEndpoints(control_plane=control_plane, intake=status["intake_url"],
                        task_metadata=status.get("task_metadata_url"),
                        imds={i["index"]: i["imds_url"] for i in instances if i.get("imds_url")},
                        ecs_agent={i["index"]: i["ecs_endpoint"] for i in instances if i.get("ecs_endpoint")})
