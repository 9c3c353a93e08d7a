"""What the ECS agent answers on a container instance, as plain Python over `lab.world.World`.

Two surfaces, both served by the real ECS agent (amazon-ecs-agent `agent/handlers`):

- Introspection (port 51678 on each instance): `/` lists `AvailableCommands`, `/v1/metadata`
  names the cluster, instance and agent version, `/v1/tasks` lists the instance's tasks with the
  real docker ids. The Datadog agent detects ECS through `/` and tags data through `/v1/tasks`
  (pkg/util/ecs/metadata/v1).
- Task metadata (169.254.170.2 on EC2): v4 and v3 under `/v4|v3/<token>` (container, `/task`,
  `/taskWithTags`, `/stats`, `/task/stats`), v2 resolved by the caller's address, task-role
  credentials at `/v2/credentials/<id>` and the agent API (`ECS_AGENT_URI`) task-protection state.

Every method returns an `Answer` (status + JSON body); the wire layer only copies it onto HTTP.
Nothing here opens a socket: tests drive it directly.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import tempfile
import threading
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import urlparse

from lab.world import ECS_AGENT_VERSION, Container, ContainerInstance, Task, World

from .stats import AutoStats, StatsSource, StatsUnavailable

# What the ECS agent lists at `/` (introspection_server_setup.go: metadata, tasks, license; the
# pprof paths only with ECS_ENABLE_RUNTIME_STATS).
AVAILABLE_COMMANDS = ["/v1/metadata", "/v1/tasks", "/license"]
LICENSE_TEXT = (
    "Amazon Elastic Container Service Agent (emulated by ecs-agent-lab)\n"
    "Licensed under the Apache License, Version 2.0.\n"
)
CREDENTIALS_LIFETIME = timedelta(hours=6)
# The ECS agent hands out fresh credentials well before the old ones expire.
CREDENTIALS_REFRESH_BEFORE = timedelta(minutes=30)
TASK_METADATA_IP = "169.254.170.2"
METADATA_FILE_NAME = "ecs-container-metadata.json"


@dataclass
class Answer:
    status: int
    body: object
    # "json" (body is serialised) or "text" (body is a str sent as text/plain)
    kind: str = "json"

    def json_bytes(self) -> bytes:
        return json.dumps(self.body).encode()


@dataclass
class TaskRoleCredentials:
    """One task's IAM role credentials, the JSON the ECS agent serves (IAMRoleCredentials)."""

    credentials_id: str
    role_arn: str
    access_key_id: str
    secret_access_key: str
    token: str
    expiration: datetime

    def as_json(self) -> dict:
        return {
            "RoleArn": self.role_arn,
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.token,
            "Expiration": self.expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def _mint(role_arn: str, credentials_id: str) -> TaskRoleCredentials:
    upper = string.ascii_uppercase + string.digits
    return TaskRoleCredentials(
        credentials_id=credentials_id,
        role_arn=role_arn,
        # Temporary (STS) keys start with ASIA; the shapes match what STS issues.
        access_key_id="ASIA" + "".join(secrets.choice(upper) for _ in range(16)),
        secret_access_key=secrets.token_urlsafe(30)[:40],
        token="IQoJb3JpZ2luX2VjE" + secrets.token_urlsafe(96),
        expiration=datetime.now(UTC).replace(microsecond=0) + CREDENTIALS_LIFETIME,
    )


def _cluster_of(task: Task, container: Container | None = None) -> str:
    c = container or (task.containers[0] if task.containers else None)
    if c and "com.amazonaws.ecs.cluster" in c.labels:
        return c.labels["com.amazonaws.ecs.cluster"]
    # task ARN: arn:aws:ecs:<region>:<account>:task/<cluster>/<id>
    parts = task.arn.split(":task/", 1)
    return parts[1].split("/")[0] if len(parts) == 2 and "/" in parts[1] else ""


def _ts(value: str | None) -> str | None:
    return value or None


def _drop_none(d: dict) -> dict:
    # The ECS agent marshals with `omitempty`: absent beats null.
    return {k: v for k, v in d.items() if v is not None}


class EcsMetadata:
    """The ECS agent's answers for every instance of `world`. Thread-safe; counts what it serves."""

    def __init__(self, world: World, stats_source: StatsSource | None = None) -> None:
        self.world = world
        self.stats_source: StatsSource = stats_source or AutoStats()
        self._credentials: dict[str, TaskRoleCredentials] = {}
        self._role_arns: dict[str, str] = {}
        self._protection: dict[str, dict] = {}
        self._lock = threading.Lock()
        self.served: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.recent_rejections: deque[dict] = deque(maxlen=200)

    # -- bookkeeping ----------------------------------------------------------------------------
    def _ok(self, route: str, body: object, kind: str = "json") -> Answer:
        with self._lock:
            self.served[route] += 1
        return Answer(200, body, kind)

    def _reject(self, route: str, status: int, body: object, reason: str) -> Answer:
        with self._lock:
            self.rejected[route] += 1
            self.recent_rejections.append({"route": route, "status": status, "reason": reason,
                                           "at": datetime.now(UTC).isoformat()})
        return Answer(status, body)

    def counters(self) -> dict:
        with self._lock:
            return {"served": dict(self.served), "rejected": dict(self.rejected),
                    "recent_rejections": list(self.recent_rejections)}

    # -- introspection (51678) ------------------------------------------------------------------
    def introspection(self, instance: ContainerInstance, path: str, query: dict[str, str]) -> Answer:
        path = path.rstrip("/") or "/"
        if path == "/v1/metadata":
            return self._ok("introspection:/v1/metadata", {
                "Cluster": self.world.cluster.name,
                "ContainerInstanceArn": instance.arn,
                "Version": ECS_AGENT_VERSION,
            })
        if path == "/v1/tasks":
            return self._v1_tasks(instance, query)
        if path == "/license":
            return self._ok("introspection:/license", LICENSE_TEXT, "text")
        # Go's ServeMux sends every other path to the "/" handler: the command list, 200.
        return self._ok("introspection:/", {"AvailableCommands": list(AVAILABLE_COMMANDS)})

    def _v1_task(self, task: Task) -> dict:
        known, desired = task.known_status, task.desired_status
        # NewTaskResponse hides a desired status that contradicts the known one.
        if (known == "STOPPED" and desired != "STOPPED") or (known == "RUNNING" and desired == "PENDING"):
            desired = ""
        containers = []
        for c in task.containers:
            entry = {"DockerId": c.docker_id, "DockerName": c.docker_name, "Name": c.name}
            ports = [self._port(p, task) for p in c.ports]
            if ports:
                entry["Ports"] = ports
            if task.network_mode == "awsvpc" and c.ipv4_addresses:
                entry["Networks"] = [{"NetworkMode": "awsvpc", "IPv4Addresses": list(c.ipv4_addresses)}]
            containers.append(entry)
        out = {"Arn": task.arn, "DesiredStatus": desired, "KnownStatus": known,
               "Family": task.family, "Version": str(task.revision), "Containers": containers}
        if not desired:
            del out["DesiredStatus"]
        return out

    def _v1_tasks(self, instance: ContainerInstance, query: dict[str, str]) -> Answer:
        route = "introspection:/v1/tasks"
        docker_id, task_arn = query.get("dockerid"), query.get("taskarn")
        if docker_id is not None and task_arn is not None:
            return self._reject(route, 400, "", "both dockerid and taskarn given; expect at most one")
        tasks = list(instance.tasks)
        if docker_id is not None:
            if len(docker_id) > 12:
                found = [t for t in tasks if any(c.docker_id == docker_id for c in t.containers)]
            else:
                found = [t for t in tasks if any(c.docker_id[:12] == docker_id for c in t.containers)]
            if len(found) > 1:
                return self._reject(route, 400, "", f"several tasks match short docker id {docker_id}")
            if not found:
                return self._reject(route, 404, {"Arn": "", "KnownStatus": "", "Family": "", "Version": "",
                                                 "Containers": None},
                                    f"no task on {instance.instance_id} runs docker id {docker_id}")
            return self._ok(route, self._v1_task(found[0]))
        if task_arn is not None:
            for t in tasks:
                if t.arn == task_arn:
                    return self._ok(route, self._v1_task(t))
            return self._reject(route, 404, {"Arn": "", "KnownStatus": "", "Family": "", "Version": "",
                                             "Containers": None},
                                f"no task {task_arn} on {instance.instance_id}")
        return self._ok(route, {"Tasks": [self._v1_task(t) for t in tasks]})

    # -- task metadata shapes -------------------------------------------------------------------
    def _port(self, p, task: Task) -> dict:
        out = {"ContainerPort": p.container_port, "Protocol": p.protocol}
        # awsvpc: the host port is the container port (NewPortBindingsResponse).
        out["HostPort"] = p.container_port if task.network_mode == "awsvpc" else (
            p.host_port if p.host_port is not None else p.container_port)
        out["HostIp"] = p.host_ip
        return out

    def _limits(self, c: Container) -> dict:
        return {"CPU": c.cpu, "Memory": c.memory or 0}

    def _task_limits(self, task: Task) -> dict | None:
        limits = {}
        if task.cpu:
            limits["CPU"] = task.cpu / 1024  # task CPU units -> vCPUs, as the agent reports them
        if task.memory:
            limits["Memory"] = task.memory
        return limits or None

    def container_json(self, instance: ContainerInstance, task: Task, c: Container, version: int) -> dict:
        region = instance.region
        out = {
            "DockerId": c.docker_id,
            "Name": c.name,
            "DockerName": c.docker_name,
            "Image": c.image,
            "ImageID": c.image_id,
            "Ports": [self._port(p, task) for p in c.ports] or None,
            "Labels": dict(c.labels) or None,
            "DesiredStatus": c.desired_status,
            "KnownStatus": c.known_status,
            "ExitCode": c.exit_code,
            "Limits": self._limits(c),
            "CreatedAt": _ts(c.created_at),
            "StartedAt": _ts(c.started_at),
            "Type": "NORMAL",
        }
        if c.volumes:  # `Volumes ... json:",omitempty"` (tmds handlers v2 ContainerResponse)
            out["Volumes"] = [dict(v) for v in c.volumes]
        # The ECS agent writes `Health` for every container whose definition has a health check
        # (`HealthStatusShouldBeReported` in aws/amazon-ecs-agent's v2 container response), UNKNOWN
        # before the first check; `statusSince` only once the status has changed.
        if c.health_checked or (c.health_status and c.health_status != "UNKNOWN"):
            out["Health"] = {"status": c.health_status or "UNKNOWN"}
            if c.health_status and c.health_status != "UNKNOWN":
                out["Health"]["statusSince"] = c.started_at or c.created_at
        networks = None
        if c.ipv4_addresses or task.network_mode in ("bridge", "host", "awsvpc"):
            net = {"NetworkMode": task.network_mode}
            if c.ipv4_addresses:
                net["IPv4Addresses"] = list(c.ipv4_addresses)
            networks = [net]
        out["Networks"] = networks
        if version >= 4:
            task_id = task.arn.rsplit("/", 1)[-1]
            # The control plane's ARN for the container (describe-tasks); a stable one when the task
            # was not placed through it (unit tests of this server).
            container_id = _stable_uuid(c.metadata_token)
            out["ContainerARN"] = c.arn or (f"arn:aws:ecs:{region}:{instance.account_id}:container/"
                                            f"{_cluster_of(task, c)}/{task_id}/{container_id}")
            out["LogDriver"] = "json-file"
            out["LogOptions"] = {"max-file": "1", "max-size": "10m"}
        return _drop_none(out)

    def task_json(self, instance: ContainerInstance, task: Task, version: int,
                  with_tags: bool = False) -> dict:
        fargate = instance.launch_type == "FARGATE"
        out = {
            # Fargate's task metadata names the cluster by its ARN; the ECS agent on EC2 by its name.
            "Cluster": self.world.cluster.arn if fargate else self.world.cluster.name,
            "TaskARN": task.arn,
            "Family": task.family,
            "Revision": str(task.revision),
            "DesiredStatus": task.desired_status,
            "KnownStatus": task.known_status,
            "Containers": [self.container_json(instance, task, c, version) for c in task.containers],
            "Limits": self._task_limits(task),
            "PullStartedAt": _ts(task.pull_started_at),
            "PullStoppedAt": _ts(task.pull_stopped_at or task.pull_started_at),
            # The ECS agent learns its zone from RegisterContainerInstance's answer: an external
            # instance has none, and the field is `omitempty` (ecs-agent/tmds/handlers/v2/response.go).
            "AvailabilityZone": instance.availability_zone or None,
        }
        if version >= 4:
            out["LaunchType"] = instance.launch_type
            if task.service_name:
                out["ServiceName"] = task.service_name
            if not instance.external:
                # In external mode the ECS agent never asks EC2 for its VPC (agent/app/agent.go skips
                # setVPCSubnet when cfg.External is enabled): no VPCID.
                out["VPCID"] = instance.vpc_id
            if not fargate:  # the ECS agent's v4 TaskResponse writes it always, false included
                out["FaultInjectionEnabled"] = task.fault_injection_enabled
            out["ClockDrift"] = {"ClockErrorBound": 0.5, "ReferenceTimestamp":
                                 datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                 "ClockSynchronizationStatus": "SYNCHRONIZED"}
        if with_tags and not fargate and instance.tags:
            # `omitempty` too: an external instance has no EC2 tags to show.
            out["ContainerInstanceTags"] = dict(instance.tags)
        if with_tags and task.tags:
            # The ECS agent's TaskResponse has `TaskTags ... json:",omitempty"`: none, no key.
            out["TaskTags"] = dict(task.tags)
        return _drop_none(out)

    # -- stats ----------------------------------------------------------------------------------
    def _stats_of(self, c: Container, version: int) -> dict:
        stats = dict(self.stats_source.container_stats(c))
        if version < 4:
            stats.pop("network_rate_stats", None)
        return stats

    def container_stats(self, c: Container, version: int) -> Answer:
        route = f"v{version}:/stats"
        try:
            return self._ok(route, self._stats_of(c, version))
        except StatsUnavailable as exc:
            return self._reject(route, 500, f"V{version} container stats handler: {exc}", str(exc))

    def task_stats(self, task: Task, version: int) -> Answer:
        out: dict[str, object] = {}
        for c in task.containers:
            try:
                out[c.docker_id] = self._stats_of(c, version)
            except StatsUnavailable:
                # NewV4TaskStatsResponse: a container without stats gets an empty object.
                out[c.docker_id] = {}
        return self._ok(f"v{version}:/task/stats", out)

    # -- task metadata dispatch ----------------------------------------------------------------
    def task_metadata(self, method: str, path: str, query: dict[str, str], caller_ip: str | None,
                      body: bytes = b"") -> Answer:
        """Route one request to the task metadata server (v2, v3, v4, credentials, agent API)."""
        parts = [p for p in path.split("/") if p]
        if not parts:
            return self._reject("task-metadata:/", 404, "404 page not found", "no path")
        head = parts[0]
        if head in ("v3", "v4") and len(parts) >= 2:
            return self._v3v4(int(head[1]), parts[1], parts[2:])
        if head == "v2" and len(parts) >= 2 and parts[1] == "credentials":
            return self.credentials(parts[2] if len(parts) > 2 else "", "v2")
        if head == "v1" and len(parts) >= 2 and parts[1] == "credentials":
            return self.credentials(query.get("id", ""), "v1")
        if head == "v2" and len(parts) >= 2 and parts[1] in ("metadata", "stats"):
            return self._v2(parts[1], parts[2:], caller_ip)
        if head == "api" and len(parts) >= 2:
            return self._agent_api(method, parts[1], parts[2:], body)
        return self._reject(f"task-metadata:/{head}", 404, "404 page not found", f"unknown path {path}")

    def _v3v4(self, version: int, token: str, rest: list[str]) -> Answer:
        found = self.world.find_container(metadata_token=token)
        sub = "/" + "/".join(rest) if rest else ""
        route = f"v{version}:{sub or '/'}"
        if found is None:
            msg = (f"V{version} metadata handler: unable to find a container for endpoint id '{token}' "
                   "(not a metadata token this lab issued, or the task has stopped)")
            return self._reject(route, 404, msg, f"unknown metadata token {token}")
        instance, task, c = found
        if sub == "":
            return self._ok(route, self.container_json(instance, task, c, version))
        if sub == "/task":
            return self._ok(route, self.task_json(instance, task, version))
        if sub == "/taskWithTags":
            return self._ok(route, self.task_json(instance, task, version, with_tags=True))
        if sub == "/stats":
            return self.container_stats(c, version)
        if sub == "/task/stats":
            return self.task_stats(task, version)
        return self._reject(route, 404, "404 page not found", f"unknown v{version} path {sub}")

    def _v2(self, kind: str, rest: list[str], caller_ip: str | None) -> Answer:
        route = f"v2:/{kind}"
        found = self.world.find_container(ip=caller_ip) if caller_ip else None
        if found is None:
            msg = (f"V2 {kind} handler: unable to associate '{caller_ip}' with a task: v2 resolves the "
                   "caller by its source address (awsvpc task ENI); no container of this lab has it")
            return self._reject(route, 404, msg, f"no task for caller {caller_ip}")
        instance, task, caller = found
        if rest:
            target = next((c for c in task.containers
                           if c.docker_id == rest[0] or c.docker_id.startswith(rest[0])), None)
            if target is None:
                return self._reject(route, 404, f"V2 {kind} handler: unable to find container '{rest[0]}'",
                                    f"no container {rest[0]} in task {task.arn}")
            if kind == "metadata":
                return self._ok(route, self.container_json(instance, task, target, 2))
            return self.container_stats(target, 2)
        if kind == "metadata":
            return self._ok(route, self.task_json(instance, task, 2))
        return self.task_stats(task, 2)

    # -- credentials ----------------------------------------------------------------------------
    def grant_task_role(self, task: Task, role_arn: str | None = None) -> str:
        """Give `task` a task role; returns the credentials id its containers' env points at."""
        with self._lock:
            if not task.task_role_credentials_id:
                task.task_role_credentials_id = secrets.token_hex(16)
            if role_arn:
                self._role_arns[task.task_role_credentials_id] = role_arn
                self._credentials.pop(task.task_role_credentials_id, None)
        self.world.touch()
        return task.task_role_credentials_id

    def _task_for_credentials(self, credentials_id: str) -> Task | None:
        for _inst, task, _c in self.world.iter_containers():
            if task.task_role_credentials_id == credentials_id:
                return task
        return None

    def credentials(self, credentials_id: str, api: str = "v2") -> Answer:
        route = f"{api}:/credentials"
        prefix = f"CredentialsV{api[1]}Request: "
        if not credentials_id:
            return self._reject(route, 400, {"code": "NoIdInRequest",
                                             "message": prefix + "No Credential ID in the request"},
                                "no credentials id")
        task = self._task_for_credentials(credentials_id)
        if task is None:
            return self._reject(route, 400, {"code": "InvalidIdInRequest",
                                             "message": prefix + "Credentials not found"},
                                f"unknown credentials id {credentials_id}")
        with self._lock:
            creds = self._credentials.get(credentials_id)
            now = datetime.now(UTC)
            if creds is None or creds.expiration - now < CREDENTIALS_REFRESH_BEFORE:
                role = self._role_arns.get(credentials_id) or (
                    f"arn:aws:iam::{self.world.cluster.account_id}:role/{task.family}-task-role")
                creds = _mint(role, credentials_id)
                self._credentials[credentials_id] = creds
        return self._ok(route, creds.as_json())

    # -- agent API (ECS_AGENT_URI): task scale-in protection ------------------------------------
    def _agent_api(self, method: str, token: str, rest: list[str], body: bytes) -> Answer:
        route = "agent-api:/task-protection/v1/state"
        found = self.world.find_container(metadata_token=token)
        if found is None:
            return self._reject(route, 404, {"error": {"Code": "ResourceNotFoundException",
                                                       "Message": f"unknown endpoint id {token}"}},
                                f"unknown agent API token {token}")
        if rest != ["task-protection", "v1", "state"]:
            return self._reject(route, 404, "404 page not found", "unknown agent API path")
        _inst, task, _c = found
        with self._lock:
            state = self._protection.setdefault(task.arn, {"ProtectionEnabled": False,
                                                           "ExpirationDate": None, "TaskArn": task.arn})
        if method == "PUT":
            try:
                req = json.loads(body or b"{}")
                enabled = req["ProtectionEnabled"]
                if not isinstance(enabled, bool):
                    raise TypeError("ProtectionEnabled must be a boolean")
            except (ValueError, KeyError, TypeError) as exc:
                return self._reject(route, 400, {"error": {"Code": "InvalidParameterException",
                                                           "Message": f"invalid request: {exc}"}},
                                    f"bad task protection request: {exc}")
            minutes = int(req.get("ExpiresInMinutes") or 120)
            with self._lock:
                state["ProtectionEnabled"] = enabled
                state["ExpirationDate"] = ((datetime.now(UTC) + timedelta(minutes=minutes))
                                           .strftime("%Y-%m-%dT%H:%M:%SZ") if enabled else None)
        return self._ok(route, {"protection": dict(state)})


def _stable_uuid(seed: str) -> str:
    h = seed.ljust(32, "0")[:32]
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


# -- what ECS puts inside each container ----------------------------------------------------------
def _is_loopback_url(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def container_env(instance: ContainerInstance, task: Task, container: Container, *, base_url: str,
                  relative_credentials: bool, metadata_file: str | None = None) -> dict[str, str]:
    """The environment the ECS agent injects into a task's container.

    `base_url` is where the task metadata server is reachable from inside the container
    (`http://169.254.170.2` on docker, a loopback URL on the local backend). Credentials use
    `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` when the container reaches 169.254.170.2 (SDKs
    prepend that host themselves) and `..._FULL_URI` otherwise; botocore accepts a full URI only
    on loopback or a few AWS addresses, so a non-loopback full URI is refused here, not later.
    """
    base = base_url.rstrip("/")
    token = container.metadata_token
    env = {
        "ECS_CONTAINER_METADATA_URI": f"{base}/v3/{token}",
        "ECS_CONTAINER_METADATA_URI_V4": f"{base}/v4/{token}",
        # Agent API (task scale-in protection), injected by ECS agents since 1.66.
        "ECS_AGENT_URI": f"{base}/api/{token}",
        "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE" if instance.launch_type == "FARGATE" else "AWS_ECS_EC2",
        "AWS_REGION": instance.region,
        "AWS_DEFAULT_REGION": instance.region,
    }
    if instance.external:
        # ECS sends AWS_EXECUTION_ENV with EC2 and Fargate tasks only: on ECS Anywhere containers
        # have none (what mackerelio/mackerel-container-agent#188 found and works around).
        del env["AWS_EXECUTION_ENV"]
    if task.task_role_credentials_id:
        rel = f"/v2/credentials/{task.task_role_credentials_id}"
        if relative_credentials:
            env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = rel
        else:
            if not _is_loopback_url(base):
                raise ValueError(
                    f"AWS_CONTAINER_CREDENTIALS_FULL_URI on {base} would be refused by botocore "
                    "(only loopback or 169.254.170.2/.23 over http); use relative_credentials=True "
                    "where 169.254.170.2 is the lab's")
            env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = base + rel
    if metadata_file:
        env["ECS_CONTAINER_METADATA_FILE"] = metadata_file
    return env


def metadata_file_json(instance: ContainerInstance, task: Task, container: Container,
                       status: str = "READY") -> dict:
    """The container metadata file (ECS_ENABLE_CONTAINER_METADATA), agent/containermetadata/types.go."""
    out = {
        "Cluster": _cluster_of(task, container),
        "ContainerInstanceARN": instance.arn,
        "TaskARN": task.arn,
        "TaskDefinitionFamily": task.family,
        "TaskDefinitionRevision": str(task.revision),
        "ContainerID": container.docker_id,
        "ContainerName": container.name,
        "DockerContainerName": "/" + container.docker_name,
        "ImageID": container.image_id,
        "ImageName": container.image,
        "PortMappings": [{"ContainerPort": p.container_port,
                          "HostPort": p.host_port if p.host_port is not None else p.container_port,
                          "BindIp": p.host_ip, "Protocol": p.protocol} for p in container.ports] or None,
        "Networks": [{"NetworkMode": task.network_mode,
                      **({"IPv4Addresses": list(container.ipv4_addresses)} if container.ipv4_addresses
                         else {})}],
        "MetadataFileStatus": status,
        "AvailabilityZone": instance.availability_zone or None,
        "HostPrivateIPv4Address": instance.private_ip,
        "HostPublicIPv4Address": instance.public_ip,
    }
    if instance.external:
        # In external mode the ECS agent's EC2 metadata client is a black hole
        # (ec2.NewBlackholeEC2MetadataClient in agent/app/agent.go): the host addresses it would
        # read from IMDS stay empty, and agent/containermetadata/types.go omits empty fields.
        out["HostPrivateIPv4Address"] = None
        out["HostPublicIPv4Address"] = None
    return _drop_none(out)


def write_metadata_file(path: str | os.PathLike, instance: ContainerInstance, task: Task,
                        container: Container) -> dict:
    """Write the container metadata file at `path` (a file, or a directory to put it in).

    Like the ECS agent, write a temporary file and rename it, so a reader never sees half a file.
    Returns the JSON written.
    """
    target = Path(path)
    if target.is_dir():
        target = target / METADATA_FILE_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    data = metadata_file_json(instance, task, container)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix="temp_metadata_file")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return data
