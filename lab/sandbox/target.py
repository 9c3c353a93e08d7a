"""A running lab as the sandbox sees it: through what a user of a real cluster has.

`LabTarget` is built from the lab's status (`EcsLab.status()`, or the state file `ecs-lab up` writes),
so the CLI (`ecs-lab exercise`, `ecs-lab doctor`) in its own process and the dashboard inside the
supervisor drive the same lab the same way: the control plane's ECS API (register a task definition
revision, `update-service`, `describe-tasks`), the intake's query API, the apps' own HTTP endpoints
and the instances' metadata endpoints. Nothing here reads the lab's in-process objects.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lab.stack import AGENT_SERVICE

# The route each data type of the agent arrives on (docs/agent_contract.md#intake-routes-and-payloads).
DATA_ROUTES = {
    "traces": "/api/v0.2/traces",
    "apm stats": "/api/v0.2/stats",
    "series": "/api/v2/series",
    "sketches": "/api/beta/sketches",
    "check runs": "/api/v1/check_run",
    "processes": "/api/v1/collector",
    "metadata": "/intake/",
}
# The sample app's DogStatsD metrics (lab/apps/web.py) and the tag the client library adds from DD_SERVICE.
APP_METRIC = "ecs_lab.app.requests"


class TargetError(RuntimeError):
    """The lab cannot be driven (not running, not deployed by the lab, control plane gone)."""


@dataclass
class AppEndpoint:
    variant: str
    service: str
    url: str | None
    instance: int


def http_get(
    url: str,
    timeout: float = 2.0,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    data: bytes | None = None,
) -> tuple[int, str]:
    """(status, body) of one request; status 0 and the error's text when nothing answered."""
    req = urllib.request.Request(url, headers=headers or {}, method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (OSError, ValueError) as exc:
        return 0, str(getattr(exc, "reason", exc))


class LabTarget:
    """One running lab: its control plane, cluster, intake, apps and instances (see module doc)."""

    def __init__(self, status: dict, refresh: Callable[[], dict | None] | None = None) -> None:
        if not status.get("control_plane") or not status.get("cluster"):
            raise TargetError("the lab has no ECS control plane in its status: start it with `ecs-lab up`")
        self.status = status
        self.cluster = status["cluster"]
        self.intake_url = status["intake_url"]
        # Where a fresh status comes from (app addresses change when their tasks are replaced).
        self._refresh = refresh
        self._clients: Any = None

    @classmethod
    def of_lab(cls, lab: Any) -> LabTarget:
        """An `EcsLab` in this process (tests, the dashboard inside the supervisor)."""
        return cls(lab.status(), refresh=lab.status)

    @classmethod
    def from_state_file(cls) -> LabTarget:
        from lab.state_file import read_state

        state = read_state()
        if state is None:
            raise TargetError("no running lab (start one with `ecs-lab up --detach`)")
        if not state.get("ready", False) and state.get("error"):
            raise TargetError(f"the lab failed to start: {state['error']}")
        return cls(state, refresh=read_state)

    # -- clients --------------------------------------------------------------------------------
    @property
    def ecs(self) -> Any:
        return self._control_plane().ecs

    @property
    def secretsmanager(self) -> Any:
        return self._control_plane().secretsmanager

    @property
    def iam(self) -> Any:
        return self._control_plane().iam

    def _control_plane(self) -> Any:
        if self._clients is None:
            from lab.ecs.client import ControlPlaneClients

            self._clients = ControlPlaneClients(self.status["control_plane"])
        return self._clients

    @property
    def intake(self) -> Any:
        from lab.fakes.intake.client import IntakeClient

        return IntakeClient(self.intake_url, timeout=5.0)

    # -- the stack --------------------------------------------------------------------------------
    def apps(self) -> dict[str, AppEndpoint]:
        return {
            v: AppEndpoint(v, a["service"], a.get("url"), int(a.get("instance") or 1))
            for v, a in (self.status.get("apps") or {}).items()
        }

    def instances(self) -> list[dict]:
        return list(self.status.get("instances") or [])

    @property
    def backend(self) -> str:
        """Which backend runs the lab ("local" or "docker")."""
        return str(self.status.get("backend") or "local")

    @property
    def features(self) -> frozenset[str]:
        from lab.stack import DEFAULT_FEATURES

        return frozenset((self.status.get("stack") or {}).get("features") or DEFAULT_FEATURES)

    def refresh(self) -> None:
        """Re-read the lab's status: an app's address changes when its task is replaced."""
        fresh = self._refresh() if self._refresh else None
        if fresh and fresh.get("cluster") == self.cluster:
            self.status = {**fresh, "stack": fresh.get("stack") or self.status.get("stack")}

    # -- ECS, as a user drives it ---------------------------------------------------------------
    def service(self, name: str) -> dict:
        got = self.ecs.describe_services(cluster=self.cluster, services=[name])["services"]
        if not got:
            raise TargetError(f"service {name} is not in cluster {self.cluster}")
        return got[0]

    def service_task_definition(self, name: str) -> dict:
        arn = self.service(name)["taskDefinition"]
        return self.ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]

    def deploy_revision(self, service: str, change: Callable[[dict], None]) -> str:
        """What a user does to change a service: take its task definition, edit it, register it as a
        new revision, `update-service` to it. Returns the new revision's ARN."""
        td = self.service_task_definition(service)
        change(td)
        arn = self.ecs.register_task_definition(**registrable(td))["taskDefinition"]["taskDefinitionArn"]
        self.ecs.update_service(cluster=self.cluster, service=service, taskDefinition=arn)
        return arn

    def tasks(self, service: str | None = None, desired: str = "RUNNING") -> list[dict]:
        kwargs: dict[str, Any] = {"cluster": self.cluster, "desiredStatus": desired}
        if service:
            kwargs["serviceName"] = service
        arns = self.ecs.list_tasks(**kwargs)["taskArns"]
        out: list[dict] = []
        for i in range(0, len(arns), 100):
            out.extend(self.ecs.describe_tasks(cluster=self.cluster, tasks=arns[i : i + 100])["tasks"])
        return out

    @property
    def roll_timeout(self) -> float:
        """How long a service's roll may take: past the backends' bound on one task's start (3x the
        lab's readiness bound; on docker a new agent task is started only once Docker's health check
        passes, and ECS's launch throttling may hold a relaunch back up to 30 s), as the lab itself
        waits for a deployment (`EcsLab.wait_deployed`)."""
        ready = self.status.get("ready_timeout") or (self.status.get("stack") or {}).get("ready_timeout")
        return max(60.0, 4 * float(ready or 0))

    def wait_rolled(
        self, service: str, task_definition: str, timeout: float | None = None, need_running: bool = True
    ) -> None:
        """Until the service runs only tasks of `task_definition` (or, when it cannot start them,
        until the old ones are gone): what `aws ecs wait services-stable` waits for. `timeout`:
        `roll_timeout` unless given."""
        timeout = self.roll_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tasks = self.tasks(service)
            old = [t for t in tasks if t["taskDefinitionArn"] != task_definition]
            new_running = [
                t
                for t in tasks
                if t["taskDefinitionArn"] == task_definition and t.get("lastStatus") == "RUNNING"
            ]
            if not old and new_running:
                return
            # A DAEMON deployment stops the old task before it starts the new one: "old gone" alone
            # is the gap between them. Without a running one, settled means a new task has stopped.
            stopped = [] if old or need_running else self.tasks(service, desired="STOPPED")
            if any(t["taskDefinitionArn"] == task_definition for t in stopped):
                return
            time.sleep(0.25)
        raise TargetError(
            f"service {service} did not roll to {task_definition.rsplit('/', 1)[-1]} within {timeout:.0f}s"
        )

    def stopped_reasons(self, service: str) -> list[str]:
        return [
            t.get("stoppedReason", "")
            for t in self.tasks(service, desired="STOPPED")
            if t.get("stoppedReason")
        ]

    def failing_to_start(self, service: str) -> bool:
        """Whether the service's newest stopped task stopped before it ever ran (no `startedAt`: a
        secret or an image ECS could not fetch), so the tasks it keeps placing will fail as well."""
        stopped = self.tasks(service, desired="STOPPED")
        if not stopped:
            return False

        def when(t: dict) -> float:
            at = t.get("stoppedAt") or t.get("createdAt")
            return at.timestamp() if hasattr(at, "timestamp") else 0.0

        return not max(stopped, key=when).get("startedAt")

    def agent_containers(self) -> list[tuple[str, str, str]]:
        """(task ARN, task lastStatus, ECS healthStatus) of each agent container of the service's
        tasks (those ECS still lists as wanted: PROVISIONING, PENDING or RUNNING)."""
        out = []
        for t in self.tasks(AGENT_SERVICE):
            for c in t.get("containers") or []:
                if c.get("name") == "datadog-agent":
                    out.append((t["taskArn"], t.get("lastStatus", ""), c.get("healthStatus", "UNKNOWN")))
        return out

    # -- the intake -------------------------------------------------------------------------------
    def cursor(self) -> int:
        """The intake's cursor now: only payloads after it are 'new'."""
        page = self.intake.payloads_page("/api/v2/series", fmt="raw", since=2**62)
        return int(page.get("next_since") or 0)

    def poke_apps(self, variants: list[str] | None = None, requests: int = 3) -> dict[str, str]:
        """Send each app a few requests (a user's traffic), so it has traces and metrics to send;
        returns the variants whose app did not answer, with the reason."""
        failed = {}
        for v, app in self.apps().items():
            if variants is not None and v not in variants:
                continue
            if not app.url:
                failed[v] = "the app has no address (its task is not running)"
                continue
            for _ in range(requests):
                code, body = http_get(app.url + "/work?ms=1&depth=1", timeout=3)
                if code != 200:
                    failed[v] = f"GET {app.url}/work -> {code or body}"
                    break
        return failed


def instance_url(inst: dict, kind: str) -> str | None:
    """Instance `inst`'s (a status `instances[]` entry) IMDS (`kind` "imds"), IMDS at a bridge-mode
    container's distance ("imds_bridge") or ECS agent introspection ("ecs"), as this machine reaches
    it. The docker backend lists what its containers call (169.254.x, the lab's link-local network)
    and, apart, what the host calls (`*_host` keys); the local backend's addresses serve both. A
    169.254.x address is never called from here: on this machine it belongs to someone else."""
    keys = {"imds": ("imds_host_url", "imds_url"), "imds_bridge": ("imds_bridge_url",),
            "ecs": ("ecs_endpoint_host", "ecs_endpoint")}[kind]
    url = next((inst[k] for k in keys if inst.get(k)), None)
    if url is None:
        return None
    host = urllib.parse.urlsplit(url).hostname or ""
    if host.startswith("169.254."):
        raise TargetError(f"instance {inst.get('index')}: the lab's status gives no address for its {kind} "
                          f"endpoint that this machine may call (only {url}, which is the lab's own "
                          "link-local network inside docker): restart the lab with this version")
    return url.rstrip("/")


def registrable(td: dict) -> dict:
    """A described task definition as `register-task-definition` takes it (without what ECS adds)."""
    keep = (
        "family",
        "taskRoleArn",
        "executionRoleArn",
        "networkMode",
        "containerDefinitions",
        "volumes",
        "placementConstraints",
        "requiresCompatibilities",
        "cpu",
        "memory",
        "tags",
        "pidMode",
        "ipcMode",
        "proxyConfiguration",
        "inferenceAccelerators",
        "ephemeralStorage",
        "runtimePlatform",
    )
    return json.loads(json.dumps({k: td[k] for k in keep if td.get(k) not in (None, [], {})}))


def container(td: dict, name: str | None = None, *, agent: bool = False) -> dict:
    """One container definition of `td`, by name or (agent=True) the Datadog agent's."""
    from lab.tasks import is_agent_image

    for c in td["containerDefinitions"]:
        if (agent and is_agent_image(c.get("image", ""))) or (name and c["name"] == name):
            return c
    raise TargetError(
        f"task definition {td.get('family')} has no container "
        f"{'running the agent image' if agent else repr(name)}"
    )


def set_env(c: dict, name: str, value: str | None) -> None:
    """Set (or with None remove) one variable of a container definition's environment."""
    env = [e for e in c.get("environment") or [] if e["name"] != name]
    if value is not None:
        env.append({"name": name, "value": value})
    c["environment"] = env


def get_env(c: dict, name: str) -> str | None:
    for e in c.get("environment") or []:
        if e["name"] == name:
            return e.get("value")
    return None
