"""The ECS world as data: cluster -> container instances -> tasks -> containers.

This is the one source of truth. The fakes (IMDS, ECS introspection, task metadata) answer from
it; the backends (local, docker) and the instance agent fill it with what really runs (process
ids, real docker container ids, addresses, ports). Nothing here opens a socket.

Values follow the shapes AWS documents (docs/imds.md#what-clients-rely-on,
docs/ecs_metadata.md#what-the-datadog-agent-relies-on): an EC2 instance's identity
document, `local-ipv4`, `hostname`, MAC tree and AZ all describe the same instance.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_CLUSTER = "ecs-lab"
# What the ECS agent reports in /v1/metadata; the Datadog agent uses task metadata v4 from 1.39.0.
ECS_AGENT_VERSION = "Amazon ECS Agent - v1.89.2 (labc0ffe)"


def now_iso() -> str:
    """Now, as the world's times are written (UTC, microseconds, `Z`)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_now_iso = now_iso


def parse_iso(text: str) -> datetime:
    """A world time (`now_iso`) back as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _stable_hex(seed: str, length: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:length]


@dataclass
class PortMapping:
    container_port: int
    host_port: int | None = None
    protocol: str = "tcp"
    host_ip: str = "0.0.0.0"

    def as_ecs(self) -> dict:
        """The `Ports` entry of task metadata v4."""
        return {
            "ContainerPort": self.container_port,
            "Protocol": self.protocol,
            "HostPort": self.host_port if self.host_port is not None else self.container_port,
            "HostIp": self.host_ip,
        }


@dataclass
class Container:
    """One container of a task. On the local backend it is a process; on docker, a container."""

    name: str
    image: str
    docker_id: str = ""
    docker_name: str = ""
    image_id: str = ""
    pid: int | None = None
    ipv4_addresses: list[str] = field(default_factory=list)
    network_mode: str = "bridge"
    ports: list[PortMapping] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    cpu: int = 0
    memory: int | None = None
    desired_status: str = "RUNNING"
    known_status: str = "PENDING"
    health_status: str = "UNKNOWN"
    # Its container definition has a `healthCheck`: the ECS agent then reports its health (task
    # metadata `Health`), UNKNOWN included, until the first check.
    health_checked: bool = False
    created_at: str = field(default_factory=_now_iso)
    started_at: str | None = None
    exit_code: int | None = None
    # The token that appears in ECS_CONTAINER_METADATA_URI(_V4): it identifies the container.
    metadata_token: str = field(default_factory=lambda: uuid.uuid4().hex)
    # The control plane's container ARN (describe-tasks `containers[].containerArn`), when known.
    arn: str = ""
    # Host volumes mounted into it, as task metadata lists them: {"Source": host path,
    # "Destination": container path} (the task definition's mountPoints joined with its volumes).
    volumes: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.docker_id:
            self.docker_id = _stable_hex(self.metadata_token, 64)
        if not self.image_id:
            self.image_id = "sha256:" + _stable_hex(self.image, 64)

    def mark_running(self) -> None:
        self.known_status = "RUNNING"
        self.started_at = _now_iso()

    def mark_stopped(self, exit_code: int | None) -> None:
        self.known_status = "STOPPED"
        self.exit_code = exit_code


@dataclass
class Task:
    family: str
    revision: int
    containers: list[Container]
    arn: str = ""
    network_mode: str = "bridge"
    service_name: str = ""
    desired_status: str = "RUNNING"
    known_status: str = "PENDING"
    cpu: int | None = None
    memory: int | None = None
    pull_started_at: str = field(default_factory=_now_iso)
    # When the runner had every image of the task (before it created the containers). The ECS agent
    # keeps both pull times in its task state, writes them into task metadata and reports them with
    # the task's state change, which is what describe-tasks then shows.
    pull_stopped_at: str | None = None
    task_role_credentials_id: str | None = None
    # Task tags (RunTask/CreateService `tags`), served by task metadata v4 /taskWithTags.
    tags: dict[str, str] = field(default_factory=dict)
    # The task definition's `enableFaultInjection` (task metadata v4 `FaultInjectionEnabled`).
    fault_injection_enabled: bool = False

    def container(self, name: str) -> Container:
        for c in self.containers:
            if c.name == name:
                return c
        raise KeyError(f"task {self.family}:{self.revision} has no container named {name!r}")


def default_availability_zone(region: str, index: int) -> str:
    """Instance N's zone when none is asked for: the lab spreads instances over a, b, c."""
    return region + "abc"[(index - 1) % 3]


@dataclass
class ContainerInstance:
    """An emulated EC2 instance registered in the cluster. Its IMDS identity lives here too."""

    index: int
    private_ip: str
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT
    availability_zone: str = ""
    instance_id: str = ""
    instance_type: str = "m5.large"
    ami_id: str = "ami-0ab1ec5a0000c0ffe"
    public_ip: str | None = None
    mac: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    # IMDS policy of this instance (HttpTokens=required, HttpPutResponseHopLimit, HttpEndpoint).
    imds_tokens_required: bool = False
    imds_hop_limit: int = 2
    imds_enabled: bool = True
    # InstanceMetadataTags: whether tags/instance is served (AWS default disabled; the lab serves them).
    imds_tags_enabled: bool = True
    # The ECS agent's ECS_ENABLE_CONTAINER_METADATA (/etc/ecs/ecs.config): whether it writes each
    # container's metadata file. The ECS default is false; the lab's instances have it on.
    container_metadata_enabled: bool = True
    # The ECS agent's ECS_AWSVPC_BLOCK_IMDS: whether awsvpc tasks get no route to 169.254.169.254
    # (the ECS default is false: an awsvpc task's ENI reaches IMDS as the instance does).
    awsvpc_block_imds: bool = False
    iam_role: str | None = "ecs-lab-instance-role"
    arn: str = ""
    # "EC2" for a container instance; "FARGATE" for the micro-VM one Fargate task runs on: its
    # private_ip is the task's ENI address as the backend gives it, and it has no IMDS, no ECS
    # agent introspection and no container instance ARN (docs/fargate.md); "EXTERNAL" for an ECS
    # Anywhere host: a managed instance id (`mi-...`) instead of an EC2 one, no IMDS, no zone, no
    # EC2 tags, its ECS agent's introspection as on EC2 (docs/ecs_anywhere.md).
    launch_type: str = "EC2"
    tasks: list[Task] = field(default_factory=list)
    launched_at: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    # The instance's EC2 network identity, one source for IMDS, task metadata (VPCID) and the
    # control plane's DescribeInstances: stable placeholders until the control plane launches the
    # EC2 instance, whose own ids then replace them (`take_ec2_identity`).
    vpc_id: str = ""
    subnet_id: str = ""
    eni_id: str = ""
    reservation_id: str = ""
    security_group_id: str = ""
    security_group_name: str = "ecs-lab-instances"
    instance_profile_id: str = ""
    # The registration's user data (/latest/user-data; None: IMDS answers 404 there, as EC2 does).
    user_data: str | None = None

    def __post_init__(self) -> None:
        if self.external:
            # An on-premises host: what SSM activation gives it (a managed instance id) and nothing
            # of EC2's (no zone, no instance tags, no IMDS, no instance profile).
            self.instance_id = self.instance_id or "mi-" + _stable_hex(
                f"managed-{self.index}-{self.private_ip}", 17)
            self.imds_enabled = False
            self.iam_role = None
        if not self.availability_zone and not self.external:
            self.availability_zone = default_availability_zone(self.region, self.index)
        if not self.instance_id:
            self.instance_id = "i-0" + _stable_hex(f"instance-{self.index}-{self.private_ip}", 16)
        if not self.mac:
            h = _stable_hex(self.instance_id, 10)
            self.mac = "0e:" + ":".join(h[i : i + 2] for i in range(0, 10, 2))
        if not self.tags and not self.external:
            self.tags = {"Name": f"ecs-lab-instance-{self.index}"}
        # One VPC and security group per account and region (the lab's instances share them).
        self.vpc_id = self.vpc_id or "vpc-0" + _stable_hex(f"{self.account_id}/{self.region}/vpc", 16)
        self.security_group_id = self.security_group_id or "sg-0" + _stable_hex(
            f"{self.account_id}/{self.region}/sg", 16)
        self.subnet_id = self.subnet_id or "subnet-0" + _stable_hex(
            f"{self.account_id}/{self.availability_zone}/subnet", 16)
        self.eni_id = self.eni_id or "eni-0" + _stable_hex(self.instance_id + "/eni", 16)
        self.reservation_id = self.reservation_id or "r-0" + _stable_hex(
            self.instance_id + "/reservation", 16)
        self.instance_profile_id = self.instance_profile_id or "AIPA" + _stable_hex(
            f"{self.account_id}/{self.iam_role}", 17).upper()

    def take_ec2_identity(self, ec2_instance: dict, reservation_id: str) -> None:
        """Adopt the ids the control plane's EC2 gave this instance (a `DescribeInstances` /
        `RunInstances` instance and its reservation id), so every surface tells one story."""
        eni = (ec2_instance.get("NetworkInterfaces") or [{}])[0]
        groups = ec2_instance.get("SecurityGroups") or []
        self.vpc_id = ec2_instance.get("VpcId") or self.vpc_id
        self.subnet_id = ec2_instance.get("SubnetId") or self.subnet_id
        self.eni_id = eni.get("NetworkInterfaceId") or self.eni_id
        self.mac = eni.get("MacAddress") or self.mac
        self.reservation_id = reservation_id or self.reservation_id
        if groups:
            self.security_group_id = groups[0]["GroupId"]
            self.security_group_name = groups[0]["GroupName"]
        profile = ec2_instance.get("IamInstanceProfile") or {}
        self.instance_profile_id = profile.get("Id") or self.instance_profile_id

    @property
    def external(self) -> bool:
        """An ECS Anywhere host (launch type EXTERNAL)."""
        return self.launch_type == "EXTERNAL"

    @property
    def os_hostname(self) -> str:
        """The host's own name, as its OS (and its docker daemon's `docker info`) says it: EC2's
        private DNS name, or for an on-premises host the name its owner gave it."""
        return f"onprem-host-{self.index}" if self.external else self.hostname

    @property
    def hostname(self) -> str:
        """EC2's IP-based private DNS name (ip-10-0-0-1.ec2.internal style)."""
        dashed = "ip-" + self.private_ip.replace(".", "-")
        suffix = "ec2.internal" if self.region == "us-east-1" else f"{self.region}.compute.internal"
        return f"{dashed}.{suffix}"

    def identity_document(self) -> dict:
        """The instance identity document, as /latest/dynamic/instance-identity/document returns it."""
        return {
            "accountId": self.account_id,
            "architecture": "x86_64",
            "availabilityZone": self.availability_zone,
            "billingProducts": None,
            "devpayProductCodes": None,
            "marketplaceProductCodes": None,
            "imageId": self.ami_id,
            "instanceId": self.instance_id,
            "instanceType": self.instance_type,
            "kernelId": None,
            "pendingTime": self.launched_at,
            "privateIp": self.private_ip,
            "ramdiskId": None,
            "region": self.region,
            "version": "2017-09-30",
        }


@dataclass
class Cluster:
    name: str = DEFAULT_CLUSTER
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT

    @property
    def arn(self) -> str:
        return f"arn:aws:ecs:{self.region}:{self.account_id}:cluster/{self.name}"


class World:
    """Thread-safe registry of the emulated cluster. Fakes read it; backends write it."""

    def __init__(self, cluster: Cluster | None = None) -> None:
        self.cluster = cluster or Cluster()
        self.instances: list[ContainerInstance] = []
        # One per Fargate task (its own micro-VM); never a container instance of the cluster.
        self.fargate_hosts: list[ContainerInstance] = []
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self.generation = 0

    # -- building -------------------------------------------------------------------------------
    def add_instance(self, private_ip: str, **kwargs) -> ContainerInstance:
        with self._lock:
            inst = ContainerInstance(index=len(self.instances) + 1, private_ip=private_ip,
                                     region=self.cluster.region, account_id=self.cluster.account_id,
                                     **kwargs)
            if not inst.arn:
                inst.arn = (f"arn:aws:ecs:{self.cluster.region}:{self.cluster.account_id}:"
                            f"container-instance/{self.cluster.name}/{_stable_hex(inst.instance_id, 32)}")
            self.instances.append(inst)
            self._bump()
            return inst

    def add_fargate_host(self, private_ip: str, availability_zone: str = "") -> ContainerInstance:
        """The host of one Fargate task: its address is the task's ENI address (see ContainerInstance)."""
        with self._lock:
            host = ContainerInstance(index=10_000 + len(self.fargate_hosts) + 1, private_ip=private_ip,
                                     region=self.cluster.region, account_id=self.cluster.account_id,
                                     availability_zone=availability_zone, launch_type="FARGATE",
                                     iam_role=None, imds_enabled=False, tags={"launch_type": "FARGATE"})
            self.fargate_hosts.append(host)
            self._bump()
            return host

    def remove_fargate_host(self, host: ContainerInstance) -> None:
        with self._lock:
            self.fargate_hosts = [h for h in self.fargate_hosts if h is not host]
            self._bump()

    def hosts(self) -> list[ContainerInstance]:
        """Every place a task runs: the container instances, then the Fargate tasks' hosts."""
        with self._lock:
            return [*self.instances, *self.fargate_hosts]

    def add_task(self, instance: ContainerInstance, task: Task) -> Task:
        with self._lock:
            if not task.arn:
                task.arn = (f"arn:aws:ecs:{self.cluster.region}:{self.cluster.account_id}:"
                            f"task/{self.cluster.name}/{uuid.uuid4().hex}")
            for c in task.containers:
                c.network_mode = task.network_mode
                c.labels.update(self.ecs_labels(task, c))
                if not c.docker_name:
                    c.docker_name = f"ecs-{task.family}-{task.revision}-{c.name}-{_stable_hex(task.arn, 16)}"
            instance.tasks.append(task)
            self._bump()
            return task

    def remove_task(self, task_arn: str) -> None:
        with self._lock:
            for inst in self.hosts():
                inst.tasks = [t for t in inst.tasks if t.arn != task_arn]
            self._bump()

    def touch(self) -> None:
        """Call after mutating a task or container in place (status, pid, docker id)."""
        with self._lock:
            self._bump()

    def _bump(self) -> None:
        self.generation += 1
        self._changed.notify_all()

    def wait_for_change(self, generation: int, timeout: float) -> int:
        with self._lock:
            self._changed.wait_for(lambda: self.generation != generation, timeout=timeout)
            return self.generation

    # -- reading --------------------------------------------------------------------------------
    def ecs_labels(self, task: Task, container: Container) -> dict[str, str]:
        """The docker labels the ECS agent puts on every container it starts."""
        return {
            "com.amazonaws.ecs.cluster": self.cluster.name,
            "com.amazonaws.ecs.container-name": container.name,
            "com.amazonaws.ecs.task-arn": task.arn,
            "com.amazonaws.ecs.task-definition-family": task.family,
            "com.amazonaws.ecs.task-definition-version": str(task.revision),
        }

    def instance(self, index: int) -> ContainerInstance:
        with self._lock:
            return self.instances[index - 1]

    def instance_by_ip(self, ip: str) -> ContainerInstance | None:
        with self._lock:
            for inst in self.instances:
                if inst.private_ip == ip:
                    return inst
            return None

    def iter_containers(self) -> Iterator[tuple[ContainerInstance, Task, Container]]:
        with self._lock:
            snapshot = [(i, t, c) for i in self.hosts() for t in i.tasks for c in t.containers]
        yield from snapshot

    def find_container(self, *, metadata_token: str | None = None, docker_id: str | None = None,
                       pid: int | None = None, ip: str | None = None,
                       ) -> tuple[ContainerInstance, Task, Container] | None:
        for inst, task, c in self.iter_containers():
            if metadata_token is not None and c.metadata_token == metadata_token:
                return inst, task, c
            if docker_id is not None and (c.docker_id == docker_id or c.docker_id.startswith(docker_id)):
                return inst, task, c
            if pid is not None and c.pid == pid:
                return inst, task, c
            if ip is not None and ip in c.ipv4_addresses:
                return inst, task, c
        return None

    def find_task(self, task_arn: str) -> tuple[ContainerInstance, Task] | None:
        with self._lock:
            for inst in self.hosts():
                for t in inst.tasks:
                    if t.arn == task_arn:
                        return inst, t
        return None


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll `predicate` until it returns a truthy value; raise TimeoutError naming `what`.

    The one polling primitive of the lab: tests and readiness checks wait on conditions, never on
    fixed sleeps.
    """
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - readiness probes fail with anything until ready
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}{detail}")
        time.sleep(interval)
