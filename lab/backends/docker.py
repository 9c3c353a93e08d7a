"""The docker backend: ECS tasks as real containers inside an emulated EC2 instance.

`DockerBackend` owns everything it creates (networks, the services, every task container, the host
port forwarders), labels it `ecs-agent-lab=1` + `ecs-agent-lab.run=<run id>`, and removes it on
exit, Ctrl-C or failure; `sweep()` removes what crashed runs left (`ecs-lab down --all`). The
layout is `docker_topology.Topology` (also rendered as docker-compose.yml). The networks and the
long-lived containers (services, IMDS, instance hosts) are testcontainers objects
(`lab.backends.lab_containers`); task containers use docker-py's low-level API, which can create a
container, join its networks with fixed addresses and start it later, in `dependsOn` order.

How a task is placed, as the ECS agent places it on an EC2 instance (docs/agent_contract.md,
docs/ecs_metadata.md, docs/environment.md#link-local-addresses-belong-to-someone-else):
- every container joins the link-local network (the lab's IMDS and task metadata) *before* it
  starts, with an address from its instance's block, so callers are told apart by address;
- `bridge`: the container's own netns on the instance's bridge network; `portMappings` become
  host ports on the instance's private IP (the bridge gateway);
- `host`: the instance's own netns, played by one "instance host" container per instance (the
  docker host's netns is not the instance's: its 169.254.169.254 belongs to someone else);
- `awsvpc`: one netns per task (a pause container, the task's ENI) shared by its containers
  (`network_mode=container:<pause>`), so they share 127.0.0.1, as the FIPS sidecar needs;
- FARGATE (`fargate_host`, then `start_task` on that host): the same pause container, on the lab's
  Fargate subnet with the task's own private IP and on the link-local network for task metadata
  (169.254.170.2) only: its netns has no route to 169.254.169.254, as a Fargate task has no IMDS;
  no docker socket, host mounts or metadata file (docs/fargate.md#on-the-docker-backend);
- EXTERNAL (ECS Anywhere hosts, after the EC2 instances): an instance like the others (network,
  link-local block, task metadata, introspection) whose block the IMDS container routes nowhere, so
  nothing answers it at 169.254.169.254 (docs/ecs_anywhere.md#on-the-docker-backend);
- FireLens: the router container gets ECS's generated configuration at
  /fluent-bit/etc/fluent-bit.conf and a host directory at /var/run for its forward socket; the
  backend reads each `awsfirelens` container's output from the engine and sends it to that socket
  as docker's fluentd log driver does (real fluent-bit where the engine has the router's image, the
  lab's stand-in otherwise);
- the ECS agent's env (`ECS_CONTAINER_METADATA_URI(_V4)`, the metadata file, credentials) comes
  from `lab.fakes.ecs_metadata.model.container_env`, and the world records the *real* docker ids,
  so the agent's ECS tagging works on them.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import re
import socket
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from lab import reaper
from lab.backends import images
from lab.backends.docker_services import (
    CONTROL_PORT,
    ECS_ENDPOINTS_PATH,
    IMDS_PORT,
    PORT_IN_USE_EXIT,
    PORTS_BOUND,
    WORLD_PATH,
    write_world_file,
)
from lab.backends.docker_topology import (
    FARGATE_GATEWAY,
    FARGATE_LINK_LOCAL_BLOCK,
    FARGATE_SUBNET,
    IMDS_IP,
    IMDS_LAB_IP,
    LABEL,
    ROLE_LABEL,
    RUN_LABEL,
    SERVICES_LAB_IP,
    TASK_METADATA_IP,
    WORLD_DIR,
    Topology,
)
from lab.backends.lab_containers import lab_container, lab_network
from lab.backends.process import unix_listening
from lab.stack import AGENT_IMAGE as STACK_DEFAULT_AGENT_IMAGE
from lab.stack import AGENT_SERVICES, Stack, app_service
from lab.tasks import (
    INSTANCE_HOSTNAME_ENV,
    LAB_IMAGE,
    CannotPullContainerError,
    ContainerSpec,
    InstanceEndpoints,
    LabStopping,
    Mount,
    OutputLines,
    StartGate,
    UnsupportedField,
    is_agent_image,
    is_fips_proxy_image,
    is_lab_image,
    is_node_app_image,
    ships_to_log_router,
    with_fluent_address,
)
from lab.world import Cluster, Container, ContainerInstance, PortMapping, Task, World, now_iso, wait_until

log = logging.getLogger("lab.backends.docker")
NS = 1_000_000_000
AGENT_MOUNTS = (  # the docs' task definition volumes (docs/agent_contract.md)
    Mount("/var/run/docker.sock", "/var/run/docker.sock", True),
    Mount("/proc/", "/host/proc/", True),
    Mount("/sys/fs/cgroup/", "/host/sys/fs/cgroup", True),
)
ECS_METADATA_DIR = "/opt/ecs/metadata"  # where ECS mounts the container metadata file
# FireLens, as ECS lays it out: the generated configuration where aws-for-fluent-bit reads it, and a
# task directory at /var/run for the forward input's unix socket (fluent.sock).
ROUTER_CONFIG_PATH = "/fluent-bit/etc/fluent-bit.conf"
ROUTER_SOCKET_DIR = "/var/run"
ROUTER_SOCKET_NAME = "fluent.sock"
IMDS_UNREACHABLE = f"ip route add unreachable {IMDS_IP}/32"  # in a Fargate task's netns
# Where ECS puts a bridge-mode container's dynamic host port (no hostPort): the ephemeral range,
# each port tried for being free first (docs/docker_backend.md#dynamic-host-ports).
DYNAMIC_HOST_PORTS = range(32768, 61000)
# How many forwarders a task's host ports get when another socket takes a dynamic port between its
# check and the forwarder's bind (each attempt picks the ports afresh).
PORT_FORWARDER_ATTEMPTS = 3
APP_PORT = 8080  # lab.apps.entrypoints.APP_PORT
# How long a stopping lab waits for its task starts in flight to give up and remove what they made:
# each ends at its next step, after at most one docker call (the client's own timeout, 120 s).
STOP_DRAIN_TIMEOUT = 120.0
ENGINE_LOCK = Path(os.environ.get("LAB_DOCKER_LOCK", "/tmp/ecs-agent-lab-docker.lock"))


def ecs_health(docker_status: str) -> str:
    """Docker's health status in ECS's words (ECS API reference, `Container.healthStatus`: HEALTHY,
    UNHEALTHY or UNKNOWN): docker's `starting` (no verdict yet, failures inside the start period
    included) is UNKNOWN."""
    return {"healthy": "HEALTHY", "unhealthy": "UNHEALTHY"}.get(docker_status.lower(), "UNKNOWN")


def engine_socket_path() -> str | None:
    """The engine's unix socket on this host (DOCKER_HOST, else docker's default), or None when the
    engine is reached another way (tcp): then nothing can mount it."""
    host = os.environ.get("DOCKER_HOST", "")
    path = host[len("unix://"):] if host.startswith("unix://") else ("" if host else "/var/run/docker.sock")
    return path if path and os.path.exists(path) else None


def take_engine_lock(holder: str, timeout: float | None = None, progress=None):
    """One docker lab per engine: 169.254.169.254 can live in only one docker network (Docker
    refuses overlapping subnets). A second lab on this machine waits for the first to finish
    instead of failing half-way (tests and `ecs-lab up` queue up). Returns the open lock file:
    closing it releases the lock."""
    import fcntl

    timeout = float(os.environ.get("LAB_DOCKER_LOCK_TIMEOUT", "600")) if timeout is None else timeout
    ENGINE_LOCK.parent.mkdir(parents=True, exist_ok=True)
    fh = open(ENGINE_LOCK, "a+")  # noqa: SIM115 - held until the caller closes it
    deadline = time.monotonic() + timeout
    announced = False
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            fh.seek(0)
            current = fh.read().strip()
            if current.endswith(f"pid {os.getpid()}"):
                fh.close()
                raise RuntimeError(
                    f"this process already runs a docker lab ({current}) and one docker lab runs per engine "
                    "(169.254.169.254 lives in one network): stop it first, or change its agents in place "
                    "with DockerBackend.replace_agents(stack)") from None
            if not announced and progress:
                progress(f"docker: another docker lab holds the engine ({current}); waiting")
                announced = True
            if time.monotonic() > deadline:
                fh.close()
                raise RuntimeError(
                    f"another docker lab ({current}) held the engine for {timeout:.0f}s; one docker "
                    "lab runs per engine (169.254.169.254 lives in one network)") from None
            time.sleep(0.2)
    fh.seek(0)
    fh.truncate()
    fh.write(holder + "\n")
    fh.flush()
    return fh


# HAProxy `option httplog`: client:port [date] frontend backend/server timers status bytes ... "request"
_HTTPLOG = re.compile(r'^(?P<client>[^\s\[]+):\d+ \[(?P<date>[^\]]+)\] (?P<frontend>\S+) \S+ '
                      r'(?P<timers>\S+) (?P<status>-?\d+) (?P<bytes>\d+) '
                      r'.*"(?P<method>\S+) (?P<path>\S+)[^"]*"\s*$')


class HaproxyRecords:
    """The FIPS proxy sidecar of instance N, read from HAProxy's httplog lines (each names its
    frontend, i.e. the data type of the port that carried the request): the docker counterpart of
    the local backend's in-process `FipsProxy` records (same `records`, `records_for`,
    `misrouted`)."""

    def __init__(self, backend: DockerBackend, n: int) -> None:
        self.backend, self.n = backend, n

    @property
    def records(self) -> list:
        from lab.fakes.fips_proxy.ports import BY_NAME
        from lab.fakes.fips_proxy.proxy import ForwardRecord, routes_for_path

        task = self.backend.agent_tasks.get(self.n)
        proxy = next((c for c in task.containers if c.name == "fips-proxy"), None) if task else None
        if proxy is None or not proxy.docker_id:
            return []
        start = self.backend.stack.ports.fips_start
        out = []
        for line in self.backend.logs(proxy.docker_id, lines=100_000).splitlines():
            m = _HTTPLOG.match(line)
            if not m or m["frontend"] not in BY_NAME:
                continue
            route, path = BY_NAME[m["frontend"]], m["path"]
            expected = routes_for_path(path.split("?", 1)[0])
            out.append(ForwardRecord(
                port=start + route.offset, route=route.name, method=m["method"], path=path,
                status=int(m["status"]), bytes_in=0, bytes_out=int(m["bytes"]), at=0.0,
                duration_ms=float(m["timers"].rsplit("/", 1)[-1]) if m["timers"][-1].isdigit() else 0.0,
                misrouted=bool(expected) and route.name not in expected, expected_routes=expected,
                client=m["client"]))
        return out

    def records_for(self, route_name: str) -> list:
        return [r for r in self.records if r.route == route_name]

    def misrouted(self) -> list:
        return [r for r in self.records if r.misrouted]


class ContainerExited(RuntimeError):
    """A readiness wait's final answer: the container is gone or Docker judged it unhealthy."""


class HostPortTaken(ContainerExited):
    """The host port forwarder exited because another socket holds one of its ports."""

    def __init__(self, message: str, address: str) -> None:
        super().__init__(message)
        self.address = address  # HOSTIP:PORT/PROTO


def host_port_free(ip: str, port: int, proto: str) -> bool:
    """Whether `ip:port/proto` can be bound now as the host port forwarder binds it (TCP with
    SO_REUSEADDR, UDP without), as the ECS agent checks each dynamic port before it hands it out. Held
    are: a listener, and a socket still in TIME_WAIT or connected from that port (this host's own
    connections to its containers take their source ports from the same ephemeral range, and
    SO_REUSEADDR does not pass a client's TIME_WAIT). Only "in use" says no: an address this host
    cannot bind (an engine elsewhere) leaves the answer to the forwarder."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        if proto == "tcp":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ip, port))
        except OSError as exc:
            return exc.errno != errno.EADDRINUSE
    return True


def _wait_until_final(predicate, timeout: float, interval: float, what: str, gate: StartGate | None = None):
    """`wait_until`, except that `ContainerExited` from the predicate ends the wait at once, and so
    does a closed `gate` (`LabStopping`: the lab is stopping, the start gives up)."""
    final: list[Exception] = []

    def probe():
        try:
            if gate is not None:
                gate.check(f"waiting for {what}")
            return predicate()
        except (ContainerExited, LabStopping) as exc:
            final.append(exc)
            return True

    value = wait_until(probe, timeout, interval=interval, what=what)
    if final:
        raise final[0]
    return value


def _parse_started_at(inspect: dict) -> float:
    """A container's `State.StartedAt` (RFC 3339, nanoseconds, UTC) as a unix time."""
    from datetime import datetime

    text = inspect["State"]["StartedAt"].rstrip("Z")
    head, _, frac = text.partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + float(f"0.{frac[:6] or 0}")


@dataclass
class RunningTask:
    task: Task
    instance: ContainerInstance
    container_ids: dict[str, str] = field(default_factory=dict)  # container name -> docker id
    helper_ids: list[str] = field(default_factory=list)  # pause / host port forwarders
    started: list[str] = field(default_factory=list)  # container names in the order they started
    router_socket: str | None = None  # FireLens: the host path of the router's forward socket
    shippers: dict[str, list[threading.Thread]] = field(default_factory=dict)  # awsfirelens drivers
    log_stop: threading.Event = field(default_factory=threading.Event)


class DockerBackend:
    """TaskRunner + owner of a whole docker stack. Use as a context manager."""

    name = "docker"
    # One docker lab per engine: 169.254.169.254 can live in only one docker network (`take_engine_lock`).
    SIDE_BY_SIDE = False

    def __init__(self, stack: Stack | None = None, world: World | None = None, *,
                 agent_image: str | None = None, client=None, progress=None, pull: bool = True,
                 fips_proxy_image: str | None = None) -> None:
        self.stack = stack or Stack()
        self.world = world or World(Cluster(name=self.stack.cluster))
        self.topo = Topology(instances=self.stack.instances, external_instances=self.stack.external_instances)
        # Which agent runs for a Datadog agent image: one named explicitly (argument, LAB_AGENT_IMAGE,
        # a Stack image other than the docs' default) must be in the engine (or pulled); otherwise
        # the emulated agent (the lab image), the documented default. Never a guess from the cache.
        explicit = agent_image or os.environ.get("LAB_AGENT_IMAGE") or (
            self.stack.agent_image if self.stack.agent_image != STACK_DEFAULT_AGENT_IMAGE else None)
        self.agent_image = explicit or LAB_IMAGE
        self.progress = progress or (lambda _m: None)
        self.pull = pull
        # The real datadog/fips-proxy reads the same config path, so it can stand in for HAProxy.
        self.fips_proxy_image = fips_proxy_image or os.environ.get("LAB_FIPS_PROXY_IMAGE") or LAB_IMAGE
        self.run_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.run_dir = Path(self.stack.run_dir).resolve() / "docker"
        self.world_dir = self.run_dir / "world"
        self._client = client
        self._lock = threading.RLock()
        self.networks: dict[str, object] = {}  # key -> testcontainers Network
        self.service_ids: dict[str, str] = {}
        self.instance_hosts: dict[int, str] = {}  # instance -> its instance host's docker id
        # The long-lived testcontainers DockerContainers (services, instance hosts), exited on stop.
        self.lab_containers: list[object] = []
        self.tasks: dict[str, RunningTask] = {}
        self.agent_tasks: dict[int, Task] = {}
        self.app_tasks: dict[str, Task] = {}
        self._next_address: dict[int, int] = {}
        self._fargate_seq = 0  # the last Fargate ENI address handed out (host part)
        self._fargate_link_local_seq = 0
        self._next_host_port: dict[int, int] = {}
        self._world_lock = threading.Lock()
        self._log_paths: dict[tuple[str, str], Path] = {}  # (task arn, container) -> its log copy
        self._routes: dict[str, str] = {}
        # Link-local address -> IP hops from its instance, for the IMDS hop limit (bridge mode: 2).
        self._hops: dict[str, int] = {}
        self._published_generation = -1
        # The instances' IMDS and ECS agent introspection as the docker host reaches them (tools such
        # as `ecs-lab doctor` and the exercises: never 169.254.x from the host's own netns), served
        # by this process over the backend's own world (`_serve_on_host`).
        self.host_imds = None
        self.host_ecs = None
        self.host_endpoints: dict[int, dict[str, str]] = {}
        self.started_in: float | None = None
        self._lock_file = None
        self.lab_image_ref: str | None = None  # what LAB_IMAGE is for this lab (start())
        # The task starts in flight (the instance agents start each on a thread of their own), and
        # whether the lab still takes new ones: closed when it stops (`stop`, `refuse_new_tasks`).
        self.gate = StartGate()

    # -- owner lifecycle --------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            self._client = images.docker_client()
        return self._client

    def __enter__(self) -> DockerBackend:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> DockerBackend:
        t0 = time.monotonic()
        self._take_engine_lock()
        self.progress("docker: checking images")
        # The lab image's tag is shared by every checkout on this engine, and another one rebuilds
        # it from its own sources (while it waits for the engine, say): this lab creates every lab
        # container from the image built from *its* sources, checked once it holds the engine, under
        # a tag of its own (same repository, so containers' image_name stays ecs-agent-lab/lab).
        image_id = images.ensure_lab_image(self.client, log=self.progress)[-1].image_id
        # From the run's image tag on, what this run makes goes even if its owner dies without a
        # teardown (kill -9, xdist's os._exit): its watcher removes it by run label (lab/reaper.py).
        reaper.watch_docker_run(self.run_id)
        repo = LAB_IMAGE.rsplit(":", 1)[0]
        self.client.api.tag(image_id, repo, f"run-{self.run_id}")
        self.lab_image_ref = f"{repo}:run-{self.run_id}"
        if self.agent_image != LAB_IMAGE:
            images.ensure_agent_image(self.client, self.agent_image, pull=self.pull)
        self.progress(f"docker: Datadog agent images run as {self.agent_describe()}")
        sweep(self.client, stale_only=True)
        self.world_dir.mkdir(parents=True, exist_ok=True)
        self._create_networks()
        for n in range(1, self.stack.instances + 1):
            inst = self.world.add_instance(self.topo.private_ip(n),
                                           imds_tokens_required=self.stack.imds_tokens_required)
            self._routes[self.topo.instance_block(n)] = inst.instance_id
        for n in range(self.stack.instances + 1, self.topo.hosts + 1):
            # ECS Anywhere hosts: an instance network and a link-local block each (task metadata and
            # introspection answer them by it), no IMDS (docs/ecs_anywhere.md#on-the-docker-backend).
            inst = self.world.add_instance(self.topo.private_ip(n), launch_type="EXTERNAL")
            self._routes[self.topo.instance_block(n)] = inst.instance_id
        self._publish_world()
        self._start_services()
        for inst in list(self.world.instances):
            self._serve_on_host(inst)
        self._watch_stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="docker-task-watch", daemon=True)
        self._watcher.start()
        self.started_in = time.monotonic() - t0
        self.progress(f"docker lab ready in {self.started_in:.1f}s")
        return self

    def _watch(self) -> None:
        """What the ECS agent learns from the engine: a task container that exited is STOPPED with
        its exit code (the instance agent then stops the task when it was essential, and the service
        replaces it), and each container's health as Docker's health check reports it."""
        while not self._watch_stop.wait(0.5):
            with self._lock:
                running = [(rt.task, dict(rt.container_ids)) for rt in self.tasks.values()]
            changed = False
            for task, ids in running:
                for name, cid in ids.items():
                    c = next((x for x in task.containers if x.name == name), None)
                    if c is None or c.known_status != "RUNNING":
                        continue
                    try:
                        state = self.client.api.inspect_container(cid)["State"]
                    except Exception:  # noqa: BLE001 - removed meanwhile: stop_task marks it
                        continue
                    if not state.get("Running"):
                        c.mark_stopped(state.get("ExitCode"))
                        changed = True
                        continue
                    health = (state.get("Health") or {}).get("Status")
                    if health and ecs_health(health) != c.health_status:
                        c.health_status = ecs_health(health)
                        changed = True
            if changed:
                self.world.touch()
            if self.world.generation != self._published_generation:
                # Changed from outside a task start (an instance's IMDS policy or ECS agent config
                # through the host-side endpoints): the services follow within one tick.
                with contextlib.suppress(Exception):
                    self._publish_world()

    @property
    def stopping(self) -> bool:
        return self.gate.closed

    def refuse_new_tasks(self) -> None:
        """The lab is stopping: no task starts from now on, and the ones in flight give up at their
        next step (a container create or start, a readiness probe), removing what they made."""
        self.gate.close()

    def stop(self) -> None:
        # First the task starts still in flight (a lab stopped during its deploy): each gives up and
        # removes what it made before anything else goes, so no container is created after the
        # sweep by run label below. A docker call in progress ends within the client's timeout.
        left = self.gate.drain(timeout=STOP_DRAIN_TIMEOUT)
        if left:
            self.progress(f"docker: {left} task start(s) still in flight after {STOP_DRAIN_TIMEOUT:.0f}s; "
                          "stopping anyway: the sweep by run label removes what they made so far, and "
                          "a container one of them creates after it is removed by `ecs-lab down` or "
                          "the next docker lab's start (both sweep what ended runs left)")
        watch_stop = getattr(self, "_watch_stop", None)
        if watch_stop is not None:
            watch_stop.set()
            self._watcher.join(timeout=5)
        # Tasks stop in parallel, as the ECS agent stops them: teardown is the slowest task, not the sum.
        from concurrent.futures import ThreadPoolExecutor

        # Apps first: a tracer flushes on SIGTERM, and with its agent gone it waits out its timeout.
        agent_arns = {t.arn for t in self.agent_tasks.values()}
        apps = [a for a in self.tasks if a not in agent_arns]
        for batch in (apps, [a for a in self.tasks if a in agent_arns]):
            if batch:
                with ThreadPoolExecutor(max_workers=min(8, len(batch))) as pool:
                    list(pool.map(self._stop_quietly, batch))
        # The testcontainers objects leave as they came (containers, then the networks they were on);
        # the sweep by run label is the safety net for what a failure left half-made.
        if self.host_imds is not None:
            with contextlib.suppress(Exception):
                self.host_imds.stop()
        if self.host_ecs is not None:
            with contextlib.suppress(Exception):
                self.host_ecs.close()
        self.host_imds = self.host_ecs = None
        for container in reversed(self.lab_containers):
            with contextlib.suppress(Exception):
                container.stop()
        self.lab_containers.clear()
        for net in reversed(list(self.networks.values())):
            with contextlib.suppress(Exception):
                net.remove()
        self.networks.clear()
        if self._client is not None:
            # Its containers, networks and this run's image tag (the image stays while another tag
            # has it).
            sweep(self.client, run_id=self.run_id)
            self.lab_image_ref = None
        reaper.release_docker_run(self.run_id)
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None

    def _take_engine_lock(self) -> None:
        self._lock_file = take_engine_lock(f"run {self.run_id}, pid {os.getpid()}", progress=self.progress)

    def _stop_quietly(self, arn: str) -> None:
        with contextlib.suppress(Exception):
            self.stop_task(arn)

    # -- networks and services --------------------------------------------------------------------
    def _labels(self, role: str, **extra: str) -> dict[str, str]:
        return {LABEL: "1", RUN_LABEL: self.run_id, ROLE_LABEL: role, **extra}

    def network_name(self, key: str) -> str:
        return f"ecs-lab-{key}"

    def _create_networks(self) -> None:
        for key, net in self.topo.networks().items():
            network = lab_network(self.network_name(key), subnet=net["subnet"], gateway=net["gateway"],
                                  ip_range=net.get("ip_range"), labels=self._labels("network"))
            try:
                network.create()
            except Exception as exc:
                raise RuntimeError(
                    f"cannot create docker network {self.network_name(key)} ({net['subnet']}): {exc}. "
                    "Another docker lab may be running on this engine (its subnets are fixed): stop it, or "
                    "`ecs-lab down --all` to remove leftovers") from exc
            self.networks[key] = network

    def publish_world(self) -> int:
        """Write the world for the services and wait until they answer from it (call after changing
        the world from outside the backend, e.g. the control plane adopting instance ids)."""
        generation = self._publish_world()
        self._wait_world(generation)
        return generation

    # -- InstanceHost ---------------------------------------------------------------------------------
    def serve_instance(self, inst: ContainerInstance) -> None:
        """Callers from instance `inst.index`'s address block are `inst` (the control plane may have
        given it another id): the IMDS and ECS agent introspection answer for it from now on. An
        instance is a bridge network fixed when the backend starts, so only those exist."""
        if inst.index > self.topo.hosts:
            raise ValueError(f"the docker backend has {self.topo.hosts} instance network(s), fixed at "
                             f"start; instance {inst.index} has none (start it with more instances)")
        self._routes[self.topo.instance_block(inst.index)] = inst.instance_id
        self._serve_on_host(inst)
        self.publish_world()

    def _serve_on_host(self, inst: ContainerInstance) -> None:
        """Instance `inst`'s IMDS (as the instance itself and, one hop further, as a bridge-mode
        container on it sees it) and its ECS agent introspection, on loopback ports of this process,
        over the backend's world: a policy or ecs.config change made there is the world's, which
        the lab's services (what the containers call) load within a tick (`_watch`)."""
        from lab.fakes.ecs_metadata.server import EcsMetadataServer
        from lab.fakes.imds.server import ImdsServer

        with self._lock:
            if self.host_imds is None:
                self.host_imds = ImdsServer(self.world, name="imds-host").start()
                self.host_ecs = EcsMetadataServer(self.world).start()
            if inst.index in self.host_endpoints:
                return
            if inst.external:  # an on-premises host has no IMDS, here either
                self.host_endpoints[inst.index] = {
                    "ecs_endpoint_host": self.host_ecs.listen_introspection("127.0.0.1", 0, inst).url}
                return
            self.host_endpoints[inst.index] = {
                "imds_host_url": self.host_imds.listen("127.0.0.1", 0, inst).url,
                "imds_bridge_url": self.host_imds.listen("127.0.0.1", 0, inst, hops=2).url,
                "ecs_endpoint_host": self.host_ecs.listen_introspection("127.0.0.1", 0, inst).url,
            }

    def instance_endpoints(self, inst: ContainerInstance) -> InstanceEndpoints:
        """The lab's services as an agent container on this instance reaches them. A Fargate task
        reaches the same intake (169.254.170.2 is on its link-local leg) and nothing of an
        instance's: no ECS agent introspection, no IMDS, and its environment says Fargate."""
        endpoints = self.topo.instance_endpoints(egress_proxy=self.stack.has("egress_proxy"))
        if inst.launch_type == "FARGATE":
            return replace(endpoints, ecs_agent_url=None, private_ip=inst.private_ip,
                           extra_env={"LAB_AGENT_ALLOW_LINK_LOCAL_IMDS": "1"})
        if inst.external:
            # ECS Anywhere: no AWS_EXECUTION_ENV (ECS sends it for EC2 and Fargate only); the agent
            # still asks 169.254.169.254 (it is on ECS), where nothing answers for this host.
            return replace(endpoints, private_ip=inst.private_ip,
                           extra_env={"LAB_AGENT_ALLOW_LINK_LOCAL_IMDS": "1"})
        return endpoints

    # -- Fargate ------------------------------------------------------------------------------------
    def fargate_host(self, task_arn: str, availability_zone: str) -> ContainerInstance:
        """The micro-VM of one Fargate task: a private IP of its own on the lab's Fargate subnet,
        which its ENI (the task's pause container) will hold (docs/fargate.md#on-the-docker-backend)."""
        self._fargate_network()
        hosts = ipaddress.ip_network(FARGATE_SUBNET).num_addresses - 2
        with self._lock:
            in_use = {rt.instance.private_ip for rt in self.tasks.values()
                      if rt.instance.launch_type == "FARGATE"}
            for _ in range(hosts):
                self._fargate_seq = self._fargate_seq % (hosts - 1) + 1  # .2 .. .254 (.1: gateway)
                address = str(ipaddress.ip_network(FARGATE_SUBNET)[self._fargate_seq + 1])
                if address not in in_use:
                    break
            else:
                raise RuntimeError(f"the Fargate subnet {FARGATE_SUBNET} has no address left "
                                   f"({len(in_use)} tasks run)")
        return self.world.add_fargate_host(address, availability_zone)

    def _fargate_network(self) -> None:
        """The lab's Fargate subnet, made when the first Fargate task asks for an address."""
        with self._lock:
            if "fargate" in self.networks:
                return
            network = lab_network(self.network_name("fargate"), subnet=FARGATE_SUBNET,
                                  gateway=FARGATE_GATEWAY, ip_range=None, labels=self._labels("network"))
            try:
                network.create()
            except Exception as exc:
                raise RuntimeError(f"cannot create docker network {self.network_name('fargate')} "
                                   f"({FARGATE_SUBNET}) for Fargate tasks: {exc}") from exc
            self.networks["fargate"] = network

    def _fargate_link_local_address(self) -> str:
        """A task metadata address for a Fargate task: from a block no instance routes, so the
        introspection API knows no instance for it."""
        block = list(ipaddress.ip_network(FARGATE_LINK_LOCAL_BLOCK).hosts())
        with self._lock:
            self._fargate_link_local_seq = self._fargate_link_local_seq % len(block) + 1
            return str(block[self._fargate_link_local_seq - 1])

    def _start_eni(self, task: Task, instance: ContainerInstance) -> str:
        """A Fargate task's network namespace (its ENI): its private IP on the Fargate subnet, a
        link-local leg for task metadata, and no route to 169.254.169.254 (a Fargate task has no
        IMDS). The route is set with NET_ADMIN by the pause container itself; the task's containers
        join its namespace without that capability, so they cannot undo it. Returns its docker id."""
        pause = self._create(
            name=f"{task.containers[0].docker_name}-eni"[:120], image=LAB_IMAGE,
            labels=self._labels("pause", **{"com.amazonaws.ecs.task-arn": task.arn}),
            entrypoint=["sh", "-c", f"{IMDS_UNREACHABLE} && echo eni-ready && exec sleep infinity"],
            networks={"fargate": instance.private_ip, "linklocal": self._fargate_link_local_address()},
            extra_host_config={"cap_add": ["NET_ADMIN"]})
        self.client.api.start(pause)
        self._wait_eni_ready(pause)
        return pause

    def _start_task_eni(self, task: Task, instance: ContainerInstance) -> str:
        """An awsvpc task's ENI on an EC2 instance: one netns for the whole task, with an address of
        its own on the instance's subnet and a link-local leg. Its IMDS calls are one hop from the
        instance (the ENI is attached to the instance, no docker bridge between: no `_hops` entry),
        unless the instance's ECS agent has ECS_AWSVPC_BLOCK_IMDS=true: then, as the ECS ENI plugin's
        `block-instance-metadata` does, the netns gets no route to 169.254.169.254 (set with NET_ADMIN
        by the pause container itself; the task's containers join without it). Returns its docker id."""
        n = instance.index
        block = instance.awsvpc_block_imds
        pause = self._create(
            name=f"{task.containers[0].docker_name}-pause"[:120], image=LAB_IMAGE,
            labels=self._labels("pause", **{"com.amazonaws.ecs.task-arn": task.arn}),
            entrypoint=(["sh", "-c", f"{IMDS_UNREACHABLE} && echo eni-ready && exec sleep infinity"] if block
                        else ["sleep", "infinity"]),
            networks={f"instance{n}": None, "linklocal": self._link_local_address(n)},
            extra_host_config={"cap_add": ["NET_ADMIN"]} if block else None)
        self.client.api.start(pause)
        if block:
            self._wait_eni_ready(pause)
        return pause

    def _wait_eni_ready(self, pause: str) -> None:
        def ready() -> bool:
            self._still_running(pause, "the task's ENI (pause container)")
            return b"eni-ready" in self.client.api.logs(pause)

        _wait_until_final(ready, self.stack.ready_timeout * 3, interval=0.1, what="the task's ENI",
                          gate=self.gate)

    def agent_describe(self) -> str:
        return ("the emulated agent (the lab image; the documented default: name a real image with "
                "LAB_AGENT_IMAGE)" if self.agent_image == LAB_IMAGE else self.agent_image)

    def _publish_world(self) -> int:
        # One writer at a time: a slower thread must not put an older generation over a newer one.
        with self._world_lock:
            generation = write_world_file(self.world_dir / "world.json", self.world, self._routes, self._hops)
            self._published_generation = generation
            return generation

    def _wait_world(self, generation: int, timeout: float = 10.0) -> None:
        """The services answer from the new world (e.g. a task's metadata token) before we go on."""
        for ip in (IMDS_LAB_IP, SERVICES_LAB_IP):
            def loaded(ip=ip) -> bool:
                with urllib.request.urlopen(f"http://{ip}:{CONTROL_PORT}{WORLD_PATH}", timeout=1) as r:  # noqa: S310
                    import json

                    return json.load(r)["generation"] >= generation
            _wait_until_final(loaded, timeout, interval=0.03,
                              what=f"services at {ip} to load world {generation}", gate=self.gate)

    def _start_lab_container(self, *, name: str, role: str, command: list[str] | None,
                             networks: dict[str, str | None], entrypoint: list[str] | None = None,
                             volumes: dict[str, str] | None = None, cap_add: list[str] | None = None) -> str:
        """Start a long-lived lab container (testcontainers) on `networks` {key: address or None}.
        It is created on the first (the link-local network, so it has its address there before it
        runs); the others are joined right after it starts, through docker-py: a create call takes
        one network on engines before API 1.44, and testcontainers' `Network.connect` takes no
        address. Every caller runs something that listens on 0.0.0.0 or only sleeps, and the
        backend waits for it through its later legs, so joining them after the start changes nothing
        it does. Returns the docker id."""
        (first, first_ip), *rest = networks.items()
        container = lab_container(self._image_ref(LAB_IMAGE), name=name, network=self.networks[first],
                                  ipv4_address=first_ip, labels=self._labels(role), command=command,
                                  entrypoint=entrypoint, volumes=volumes,
                                  api_version=self.client.api.api_version, cap_add=cap_add)
        self.lab_containers.append(container)
        container.start()
        cid = container.get_container_id()
        for key, ip in rest:
            self.client.api.connect_container_to_network(cid, self.network_name(key), ipv4_address=ip)
        return cid

    def _start_services(self) -> None:
        for key, svc in self.topo.service_containers().items():
            # With external hosts the IMDS routes their blocks nowhere (Topology.imds_blackholes).
            blackholes = self.topo.imds_blackholes() if key == "imds" else []
            self.service_ids[key] = self._start_lab_container(
                name=f"ecs-lab-{key}", role=key, entrypoint=[], command=self.topo.service_argv(key),
                networks=svc["networks"], volumes=self._service_volumes(key),
                cap_add=["NET_ADMIN"] if blackholes else None)
            for argv in blackholes:
                # Before any task exists: no external host's container can have reached it yet.
                code, out = self.client.containers.get(self.service_ids[key]).exec_run(argv)
                if code != 0:
                    raise RuntimeError(f"cannot hide the IMDS from the external hosts ({' '.join(argv)} in "
                                       f"ecs-lab-{key} exited {code}): {out.decode(errors='replace')}")
        try:
            self._wait_world(self.world.generation, timeout=20)
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}\n{self._logs_of(self.service_ids)}") from None

    def _service_volumes(self, key: str) -> dict[str, str]:
        """The world file; for the services (the ECS agent's endpoints) the engine's socket too,
        from which they read the tasks' stats as the ECS agent does."""
        volumes = {str(self.world_dir): WORLD_DIR}
        socket_path = engine_socket_path()
        if key == "services" and socket_path:
            from lab.backends.docker_services import ENGINE_SOCKET

            volumes[socket_path] = ENGINE_SOCKET
        return volumes

    @property
    def intake_url(self) -> str:
        return self.topo.host_intake_url

    @property
    def egress_proxy_url(self) -> str | None:
        return self.topo.egress_proxy_url if self.stack.has("egress_proxy") else None

    def egress_attempts(self) -> dict:
        """What the recording egress proxy (in the services container) saw: {"attempts": [{host,
        port, ...}], "malformed": N}; read over the services' lab leg, as the intake is."""
        import json

        from lab.backends.docker_services import EGRESS_ATTEMPTS_PATH

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        url = f"http://{SERVICES_LAB_IP}:{CONTROL_PORT}{EGRESS_ATTEMPTS_PATH}"
        with opener.open(url, timeout=5) as r:
            return json.load(r)

    def ecs_endpoints(self, up: bool) -> None:
        """Take the ECS agent's endpoints every instance sees (task metadata and introspection at
        169.254.170.2) down, refusing connections as when the ECS agent is stopped, or up again."""
        import json

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        req = urllib.request.Request(f"http://{SERVICES_LAB_IP}:{CONTROL_PORT}{ECS_ENDPOINTS_PATH}",
                                     data=json.dumps({"up": bool(up)}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with opener.open(req, timeout=10) as r:
            if json.load(r).get("up") is not bool(up):
                raise RuntimeError("the lab's services did not turn the ECS endpoints "
                                   f"{'up' if up else 'down'}")

    # -- containers ---------------------------------------------------------------------------------
    def _create(self, *, name: str, image: str, labels: dict[str, str], networks: dict[str, str | None],
                entrypoint=None, command=None, env: dict[str, str] | None = None,
                binds: dict | None = None, network_mode: str | None = None, healthcheck: dict | None = None,
                extra_host_config: dict | None = None, user: str | None = None,
                working_dir: str | None = None) -> str:
        """Create (not start) a container; join every network, with its address, before it starts.
        Refused once the lab is stopping (`LabStopping`): nothing is created after its teardown began."""
        self.gate.check(f"creating container {name}")
        api = self.client.api
        first = next(iter(networks), None)
        host_config = api.create_host_config(
            binds=binds or {}, network_mode=network_mode or (self.network_name(first) if first else "none"),
            **(extra_host_config or {}))
        networking_config = None
        if first and not network_mode:
            networking_config = api.create_networking_config({
                self.network_name(first): api.create_endpoint_config(ipv4_address=networks[first])})
        created = api.create_container(
            self._image_ref(image), command=command, entrypoint=entrypoint, environment=env or {},
            labels=labels, name=name, host_config=host_config, networking_config=networking_config,
            healthcheck=healthcheck, user=user, working_dir=working_dir, detach=True)
        cid = created["Id"]
        try:
            if not network_mode:
                for key, ip in list(networks.items())[1:]:
                    api.connect_container_to_network(cid, self.network_name(key), ipv4_address=ip)
        except Exception:
            api.remove_container(cid, force=True)
            raise
        return cid

    def _image_ref(self, image: str) -> str:
        """The lab image as the id this lab checked (`start`); any other image as named."""
        return self.lab_image_ref if image == LAB_IMAGE and self.lab_image_ref else image

    def _link_local_address(self, n: int) -> str:
        with self._lock:
            addrs = self.topo.block_addresses(n)
            i = self._next_address.get(n, 1)  # [0] is the agent's (docker_topology.agent_addresses)
            if i >= len(addrs):
                raise RuntimeError(f"instance {n} has no link-local addresses left ({len(addrs)} containers)")
            self._next_address[n] = i + 1
            return addrs[i]

    def _ip_on(self, cid: str, key: str) -> str:
        info = self.client.api.inspect_container(cid)
        return info["NetworkSettings"]["Networks"][self.network_name(key)]["IPAddress"]

    def _instance_host(self, n: int) -> str:
        """The emulated instance's own netns (ECS `host` network mode), one per instance."""
        with self._lock:
            if n not in self.instance_hosts:
                self.instance_hosts[n] = self._start_lab_container(
                    name=f"ecs-lab-instance{n}-host", role="instance-host", entrypoint=["sleep", "infinity"],
                    command=None, networks={"linklocal": self._link_local_address(n), f"instance{n}": None})
            return self.instance_hosts[n]

    # -- instance boot (user data) --------------------------------------------------------------------
    def instance_netns(self, n: int) -> str:
        """The docker id of instance N's own network namespace (its `ecs-lab-instanceN-host`)."""
        if not 1 <= n <= self.stack.instances:
            raise ValueError(f"the docker backend has EC2 instances 1..{self.stack.instances}, not {n}")
        return self._instance_host(n)

    def create_boot_container(self, n: int, *, name: str, netns: str, entrypoint: list[str],
                              env: dict[str, str], binds: dict) -> str:
        """Create (not start) a one-shot lab-image container in instance N's network namespace."""
        return self._create(name=name, image=LAB_IMAGE, labels=self._labels("boot", instance=str(n)),
                            networks={}, entrypoint=entrypoint, env=env, binds=binds,
                            network_mode=f"container:{netns}", user="root")

    def boot_instance(self, n: int, script: str, *, instance_dir: Path, control_plane_url: str,
                      timeout: float = 180.0):
        """Instance N runs `script` as its user data at boot, inside the instance
        (lab/backends/docker_boot.py); returns its `BootResult`, raises `UserDataError`."""
        from lab.backends.docker_boot import boot_instance

        return boot_instance(self, n, script, instance_dir=instance_dir,
                             control_plane_url=control_plane_url, timeout=timeout)

    # -- TaskRunner ---------------------------------------------------------------------------------
    def _image_for(self, instance: ContainerInstance, spec: ContainerSpec) -> ContainerSpec:
        """What really runs for a container's image. A Datadog agent image runs as the agent chosen
        for this lab (the emulated one by default, recorded in status) unless the definition names an
        image this engine has; a FIPS proxy image the engine lacks runs as the lab's stand-in (HAProxy
        with the same port map); any other image must be in the engine: nothing is substituted for
        it, and ECS's `CannotPullContainerError` says how to get it."""
        if is_agent_image(spec.image) and not images.image_exists(self.client, spec.image):
            if self.agent_image == LAB_IMAGE or images.image_exists(self.client, self.agent_image):
                return replace(spec, image=self.agent_image)
        if is_fips_proxy_image(spec.image) and not images.image_exists(self.client, spec.image):
            stand_in = self.fips_proxy_spec(instance.index)
            return replace(spec, image=stand_in.image, entry_point=stand_in.entry_point,
                           command=stand_in.command, mounts=[*spec.mounts, *stand_in.mounts])
        if not is_lab_image(spec.image) and not images.image_exists(self.client, spec.image):
            if is_node_app_image(spec.image):
                raise CannotPullContainerError(
                    f"CannotPullContainerError: image {spec.image!r} (container {spec.name!r}) is not in "
                    "this Docker engine: it is the lab's Node sample app image, made by `ecs-lab images "
                    "build` (or lab.backends.images.ensure_node_app_image())")
            raise CannotPullContainerError(
                f"CannotPullContainerError: image {spec.image!r} (container {spec.name!r}) is not in this "
                "Docker engine and the lab pulls nothing it was not asked to: `docker pull "
                f"{spec.image}` where a registry is reachable, or `docker load -i <file>.tar` here")
        return spec

    def _track(self, instance: ContainerInstance, task: Task) -> None:
        """Which task is instance N's agent and which is each sample app (replacements included)."""
        if task.service_name in AGENT_SERVICES:
            self.agent_tasks[instance.index] = task
            return
        for variant in self.stack.apps:
            if task.service_name == app_service(variant):
                self.app_tasks[variant] = task

    def start_task(self, instance: ContainerInstance, task: Task, specs: list[ContainerSpec]) -> None:
        """Create and start the task's containers (the ECS agent's order and readiness); one that
        cannot start fails the task with its reason and removes what it made. Refused, or given up,
        once the lab is stopping (`LabStopping`, `refuse_new_tasks`)."""
        with self.gate.starting(f"task {task.arn}"):
            self._start_task(instance, task, specs)

    def _start_task(self, instance: ContainerInstance, task: Task, specs: list[ContainerSpec]) -> None:
        n = instance.index
        mode = task.network_mode
        if mode not in ("bridge", "host", "awsvpc"):
            raise UnsupportedField(f"networkMode {mode!r}: the docker backend runs bridge, host and awsvpc")
        fargate = instance.launch_type == "FARGATE"
        if fargate and mode != "awsvpc":
            raise UnsupportedField(f"networkMode {mode!r}: a Fargate task runs in awsvpc mode only")
        agents = {s.name for s in specs if is_agent_image(s.image)}  # before the image mapping
        specs = [self._log_router_spec(task, s) if s.log_router_config is not None else s for s in specs]
        specs = [self._image_for(instance, s) for s in specs]
        task.pull_stopped_at = now_iso()  # every image is here: the ECS agent's pull stops
        if task not in instance.tasks:
            self.world.add_task(instance, task)
        running = RunningTask(task, instance)
        with self._lock:
            self.tasks[task.arn] = running
            self._track(instance, task)
        by_name = {s.name: s for s in specs}
        try:
            netns = None
            if fargate:
                pause = self._start_eni(task, instance)
                running.helper_ids.append(pause)
                netns = f"container:{pause}"
            elif mode == "awsvpc":
                pause = self._start_task_eni(task, instance)
                running.helper_ids.append(pause)
                netns = f"container:{pause}"
            elif mode == "host":
                netns = f"container:{self._instance_host(n)}"
            has_router = any(s.log_router_config is not None for s in specs)
            # A bridge-mode container on awsfirelens is created once its router runs, as the ECS agent
            # creates it: its FLUENT_HOST is the router's address, known only then.
            deferred = {c.name for c in task.containers
                        if has_router and mode == "bridge" and ships_to_log_router(by_name[c.name])}
            for c in task.containers:
                if c.name in deferred:
                    continue
                if has_router and mode == "awsvpc":
                    by_name[c.name] = with_fluent_address(by_name[c.name], "127.0.0.1")
                self._create_in_task(running, c, by_name[c.name], netns)
            self._wait_world(self._publish_world())
            for c in _start_order(task.containers, specs):
                if c.name in deferred:
                    router = next(x for x in task.containers if by_name[x.name].log_router_config is not None)
                    if not router.ipv4_addresses:
                        raise UnsupportedField(f"container {c.name!r} logs with awsfirelens: its log router "
                                               f"{router.name!r} must start first (dependsOn START)")
                    by_name[c.name] = with_fluent_address(by_name[c.name], router.ipv4_addresses[0])
                    self._create_in_task(running, c, by_name[c.name], netns)
                    self._wait_world(self._publish_world())
                cid = running.container_ids[c.name]
                self._start_when_addresses_free(cid, c.name)
                self._follow_logs(self.log_name(task, c), cid)
                self._log_paths[(task.arn, c.name)] = self.log_path(self.log_name(task, c))
                c.pid = self.client.api.inspect_container(cid)["State"]["Pid"] or None
                if fargate:
                    c.ipv4_addresses = [instance.private_ip]  # the task's ENI
                elif mode == "bridge":
                    c.ipv4_addresses = [self._ip_on(cid, f"instance{n}")]
                elif mode == "awsvpc":
                    c.ipv4_addresses = [self._ip_on(running.helper_ids[0], f"instance{n}")]
                c.mark_running()
                running.started.append(c.name)
                spec = by_name[c.name]
                if spec.log_router_config is not None:
                    self._wait_log_router(running, c, spec)
                if spec.log_configuration and spec.log_configuration.driver == "awsfirelens":
                    self._ship_to_log_router(running, c)
            self._publish_ports(running, specs)
            self._complete_metadata_files(running)
            self._wait_ready(running, specs, agents)
            task.known_status = "RUNNING"
            self.world.touch()
            self._publish_world()
        except BaseException:
            self.stop_task(task.arn)
            raise

    def _create_in_task(self, running: RunningTask, c: Container, spec: ContainerSpec,
                        netns: str | None) -> None:
        cid = self._create_task_container(running.instance, running.task, c, spec, netns)
        running.container_ids[c.name] = cid
        c.docker_id = cid

    # -- FireLens ------------------------------------------------------------------------------------
    def _firelens_dir(self, task: Task) -> Path:
        # The short task id keeps the socket's host path within the 107 bytes a unix socket allows.
        return self.run_dir / "firelens" / task.arn.rsplit("/", 1)[-1][:12]

    def _log_router_spec(self, task: Task, spec: ContainerSpec) -> ContainerSpec:
        """The FireLens router as ECS starts it: the generated configuration mounted where
        aws-for-fluent-bit reads it, a task directory at /var/run for its forward socket. Its image
        runs when the engine has it (real fluent-bit); otherwise the lab's stand-in reads the same
        file the way fluent-bit does (`python -m lab.log_router -c <file>`)."""
        assert spec.log_router_config is not None
        task_dir = self._firelens_dir(task)
        socket_dir = task_dir / "socket"
        socket_dir.mkdir(parents=True, exist_ok=True)
        socket_path = socket_dir / ROUTER_SOCKET_NAME
        if len(os.fsencode(socket_path)) > 107:
            raise UnsupportedField(f"log router {spec.name!r}: its socket path {socket_path} is longer than "
                                   "a unix socket allows (107 bytes): use a shorter LAB_HOME")
        socket_path.unlink(missing_ok=True)  # a replacement task's router makes its own
        conf = task_dir / "fluent-bit.conf"
        conf.write_text(spec.log_router_config)
        mounts = [*spec.mounts, Mount(str(conf), ROUTER_CONFIG_PATH, True),
                  Mount(str(socket_dir), ROUTER_SOCKET_DIR, False)]
        if images.image_exists(self.client, spec.image):
            return replace(spec, mounts=mounts)
        return replace(spec, image=LAB_IMAGE, entry_point=[],
                       command=["python", "-m", "lab.log_router", "-c", ROUTER_CONFIG_PATH], mounts=mounts)

    def _wait_log_router(self, running: RunningTask, c: Container, spec: ContainerSpec) -> None:
        """The router is up once its forward socket accepts a connection (the app containers start
        after it: ECS gives them a START dependency on it; the socket's file alone appears before the
        router listens); one that exited fails the task with its output."""
        socket_path = self._firelens_dir(running.task) / "socket" / ROUTER_SOCKET_NAME

        def listening() -> bool:
            self._still_running(c.docker_id, f"log router {c.name}")
            return unix_listening(socket_path)

        _wait_until_final(listening, self.stack.ready_timeout * 3, interval=0.1,
                          what=f"log router {c.name} to listen on {socket_path}", gate=self.gate)
        running.router_socket = str(socket_path)

    def _ship_to_log_router(self, running: RunningTask, c: Container) -> None:
        """Docker's fluentd log driver, which `awsfirelens` is: the container's lines, read from the
        engine, go to the task's router over the forward protocol, tagged `<container>-firelens-<task
        id>`, until the container stops and all it wrote was sent."""
        from lab.log_router.driver import FluentdLogDriver

        if not running.router_socket:
            raise ValueError(f"container {c.name!r} logs with awsfirelens but the task has no log router")
        driver = FluentdLogDriver(running.router_socket, c.name, c.docker_id,
                                  running.task.arn.rsplit("/", 1)[-1])

        def ship() -> None:
            try:
                self.follow_output(running.task.arn, c.name, driver.send_many, running.log_stop)
            except Exception:  # noqa: BLE001 - a router that went away ends the stream, as in docker
                pass
            finally:
                driver.close()

        t = threading.Thread(target=ship, daemon=True, name=f"firelens-{c.name}")
        running.shippers.setdefault(c.name, []).append(t)
        t.start()

    def _start_when_addresses_free(self, cid: str, name: str) -> None:
        """Start a container; while Docker answers "Address already in use", wait and start again.

        The agent's addresses are fixed, and Docker releases a removed container's address
        asynchronously: after a SIGKILLed agent was removed (and `inspect` says so), its replacement's
        start was refused with that error for seconds. Docker's own release is what is waited for
        (any other error fails at once), up to the readiness bound."""
        import docker.errors

        refused: list[str] = []

        def started() -> bool:
            try:
                self.client.api.start(cid)
                return True
            except docker.errors.APIError as exc:
                if "address already in use" not in str(exc).lower():
                    raise ContainerExited(str(exc)) from exc
                refused.append(str(exc))
                return False

        try:
            _wait_until_final(started, self.stack.ready_timeout * 3, interval=0.5,
                              what=f"docker to release the addresses {name} starts with", gate=self.gate)
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}: {refused[-1] if refused else ''}") from None

    def _wait_ready(self, running: RunningTask, specs: list[ContainerSpec], agents: set[str]) -> None:
        """Before the task is reported RUNNING, as the local backend's readiness probes: an agent
        container once its health check passes; the lab's sample web app once its port accepts
        connections. Any other container is RUNNING once started, as on ECS."""
        timeout = self.stack.ready_timeout * 3
        for spec in specs:
            c = running.task.container(spec.name)
            argv = " ".join([*(spec.entry_point or []), *(spec.command or [])])
            if spec.name in agents:
                if spec.health_check:
                    hc = spec.health_check
                    # Docker's first check runs one interval after the start; it says `unhealthy`
                    # once `retries` checks failed after the start period: give it that long.
                    verdict = hc.start_period + (hc.retries + 1) * (hc.interval + hc.timeout)
                    self.wait_healthy(c, timeout=max(timeout, verdict))
            elif (is_lab_image(spec.image) and (not argv or "lab.apps" in argv) and c.ipv4_addresses
                  and running.task.network_mode in ("bridge", "awsvpc")):
                tcp = [p for p in spec.ports if p.protocol == "tcp"]
                self.wait_listening(c, tcp[0].container_port if tcp else APP_PORT, timeout=timeout)

    def _host_port(self, n: int, wanted: int | None, proto: str) -> int:
        """A bridge-mode port mapping without hostPort gets a dynamic one, as ECS gives it: the next
        free port of the ephemeral range after the last one given on that instance, wrapping round."""
        if wanted:
            return wanted
        ip = self.topo.private_ip(n)
        first, span = DYNAMIC_HOST_PORTS.start, len(DYNAMIC_HOST_PORTS)
        with self._lock:
            start = self._next_host_port.get(n, first) - first
            for i in range(span):
                port = first + (start + i) % span
                if host_port_free(ip, port, proto):
                    self._next_host_port[n] = first + (port + 1 - first) % span
                    return port
        raise RuntimeError(f"no free {proto} host port on {ip} in {first}-{DYNAMIC_HOST_PORTS[-1]}")

    def _create_task_container(self, instance: ContainerInstance, task: Task, c: Container,
                               spec: ContainerSpec, netns: str | None) -> str:
        from lab.fakes.ecs_metadata.model import container_env, write_metadata_file

        n = instance.index
        fargate = instance.launch_type == "FARGATE"
        meta_dir = self.run_dir / "metadata" / c.docker_name
        binds: dict[str, dict[str, str]] = {}
        if fargate:
            # Fargate: task metadata v3/v4 and the ECS agent URI; no container metadata file (an EC2
            # feature) and no IMDS endpoint: an SDK tries its default, 169.254.169.254, which the
            # task's namespace has no route to.
            env = container_env(instance, task, c, base_url=f"http://{TASK_METADATA_IP}",
                                relative_credentials=True)
        else:
            meta_dir.mkdir(parents=True, exist_ok=True)
            # On an ECS Anywhere host too: there 169.254.169.254 answers nothing for the host's
            # link-local block (the IMDS container routes it nowhere), as on premises; naming it keeps
            # the lab's own apps, which never fall back to a default, running.
            env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://{IMDS_IP}"}
            env.update(container_env(instance, task, c, base_url=f"http://{TASK_METADATA_IP}",
                                     relative_credentials=True,
                                     metadata_file=(f"{ECS_METADATA_DIR}/ecs-container-metadata.json"
                                                    if instance.container_metadata_enabled else None)))
            binds[str(meta_dir)] = {"bind": ECS_METADATA_DIR, "mode": "ro"}
        env.update(spec.env)
        mounts = list(spec.mounts)
        # The docs' agent volumes are the EC2 task definition's: a Fargate task has no host to mount.
        if (is_agent_image(spec.image) or spec.name == "datadog-agent") and not fargate:
            mounts += [m for m in AGENT_MOUNTS if m.target not in {x.target for x in mounts}]
            if instance.external:
                # The real agent asks the docker daemon for the host's name (`docker info` Name); the
                # lab's instances share one engine, so the emulated agent is told its host's own name,
                # as on the local backend (lab.agent.hostname). A real agent image ignores it.
                env.setdefault(INSTANCE_HOSTNAME_ENV, instance.os_hostname)
        for m in mounts:
            binds[m.source] = {"bind": m.target, "mode": "ro" if m.read_only else "rw"}
        health = None
        if spec.health_check:
            hc = spec.health_check
            health = {"test": hc.command, "interval": int(hc.interval * NS), "timeout": int(hc.timeout * NS),
                      "retries": hc.retries, "start_period": int(hc.start_period * NS)}
        networks: dict[str, str | None] = {}
        if netns is None:
            networks = {"linklocal": self._link_local_address(n), f"instance{n}": None}
            if spec.name == "datadog-agent":
                networks = self.topo.agent_addresses(n)
            # Bridge mode: the instance routes the container's packets through its docker bridge, one
            # hop the token PUT's response (HttpPutResponseHopLimit) has to survive, as on EC2.
            self._hops[networks["linklocal"]] = 2
        extra = {}
        if spec.memory:
            extra["mem_limit"] = f"{spec.memory}m"
        if spec.memory_reservation:
            # As the ECS agent creates it: the soft limit (cgroup memory.soft_limit_in_bytes / memory.low).
            extra["mem_reservation"] = f"{spec.memory_reservation}m"
        # As the ECS agent sets CpuShares (amazon-ecs-agent, agent/api/task: dockerCPUShares): the
        # container's `cpu` units, and 2 (the kernel's minimum) for 0 or unset, never Docker's
        # default 1024. Left at 1024, the apps outweighed the agent's 10 units 100 to 1, and at
        # load 30 its `agent health` check overran 5 s for minutes while the apps started.
        extra["cpu_shares"] = spec.cpu if spec.cpu and spec.cpu > 1 else 2
        if spec.capabilities_add:
            extra["cap_add"] = list(spec.capabilities_add)
        if spec.pid_mode:
            extra["pid_mode"] = spec.pid_mode
        # The task definition's docker labels are in task metadata `Labels` too, as on ECS.
        c.labels.update(spec.docker_labels)
        cid = self._create(
            name=c.docker_name, image=spec.image, labels={**self._labels("task"), **c.labels,
                                                          **spec.docker_labels},
            networks=networks, network_mode=netns, entrypoint=spec.entry_point, command=spec.command,
            env=env, binds=binds, healthcheck=health, extra_host_config=extra, user=spec.user,
            working_dir=spec.working_directory)
        c.docker_id = cid
        # The image the engine created it from, before the metadata file names it (`ImageID`, as
        # task metadata does).
        c.image_id = self.client.api.inspect_container(cid)["Image"]
        if instance.container_metadata_enabled and not fargate:  # ECS_ENABLE_CONTAINER_METADATA
            write_metadata_file(meta_dir / "ecs-container-metadata.json", instance, task, c)
        return cid

    def _complete_metadata_files(self, running: RunningTask) -> None:
        """Each container's metadata file again, once its host ports are published: the ECS agent
        updates the file after the container starts with what docker then knows (`PortMappings`,
        `Networks`; agent/containermetadata of aws/amazon-ecs-agent)."""
        from lab.fakes.ecs_metadata.model import write_metadata_file

        instance, task = running.instance, running.task
        if not instance.container_metadata_enabled or instance.launch_type == "FARGATE":
            return
        for c in task.containers:
            meta_dir = self.run_dir / "metadata" / c.docker_name
            if c.name in running.container_ids and meta_dir.is_dir():
                write_metadata_file(meta_dir / "ecs-container-metadata.json", instance, task, c)

    def _publish_ports(self, running: RunningTask, specs: list[ContainerSpec]) -> None:
        """Host ports on the instance's private IP, forwarded to the container (bridge) or the
        instance netns (host), as docker-proxy does; awsvpc tasks have no host ports. A dynamic port
        another socket took between its check and the forwarder's bind is picked afresh."""
        task = running.task
        if task.network_mode == "awsvpc":
            return
        for attempt in range(1, PORT_FORWARDER_ATTEMPTS + 1):
            plan = self._port_plan(running, specs)
            if not plan:
                return
            try:
                self._start_port_forwarder(running, [arg for _, _, arg, _ in plan])
            except HostPortTaken as exc:
                dynamic = {arg.split("=")[0] for _, _, arg, is_dynamic in plan if is_dynamic}
                if exc.address not in dynamic or attempt == PORT_FORWARDER_ATTEMPTS:
                    raise
                log.info("task %s: dynamic host port %s was taken before its forwarder bound it; "
                         "picking again (attempt %d)", task.arn, exc.address, attempt + 1)
                continue
            for c, mapping, _, _ in plan:
                c.ports.append(mapping)
            return

    def _port_plan(self, running: RunningTask, specs: list[ContainerSpec]
                   ) -> list[tuple[Container, PortMapping, str, bool]]:
        """Each port of the task's containers: (container, its mapping, the forwarder's
        `HOSTIP:PORT/PROTO=TARGETIP:PORT`, whether the host port is a dynamic one)."""
        task, n = running.task, running.instance.index
        host_ip = self.topo.private_ip(n)
        plan = []
        for spec in specs:
            c = task.container(spec.name)
            for p in spec.ports:
                if task.network_mode == "bridge":
                    host_port, target = self._host_port(n, p.host_port, p.protocol), c.ipv4_addresses[0]
                else:
                    host_port, target = p.container_port, self._ip_on(self.instance_hosts[n], f"instance{n}")
                plan.append((c, PortMapping(p.container_port, host_port, p.protocol, host_ip),
                             f"{host_ip}:{host_port}/{p.protocol}={target}:{p.container_port}",
                             task.network_mode == "bridge" and not p.host_port))
        return plan

    def _start_port_forwarder(self, running: RunningTask, mappings: list[str]) -> None:
        """Start the task's host port forwarder and wait until it has bound its ports; one that
        found a port taken is removed again (`HostPortTaken`)."""
        task = running.task
        maps = [arg for m in mappings for arg in ("--map", m)]
        cid = self._create(name=f"{task.containers[0].docker_name}-ports"[:120], image=LAB_IMAGE,
                           labels=self._labels("host-ports", **{"com.amazonaws.ecs.task-arn": task.arn}),
                           networks={}, network_mode="host", entrypoint=[],
                           command=["python", "-m", "lab.backends.docker_services", "--role", "ports",
                                    "--report-bound", *maps])
        running.helper_ids.append(cid)
        self.client.api.start(cid)
        addresses = [m.split("=")[0] for m in mappings]
        done = f"{PORTS_BOUND} {len(addresses)}"

        def bound() -> bool:
            self._still_running(cid, "the host port forwarder")
            return done in self.client.api.logs(cid).decode(errors="replace")

        # A forwarder that exited fails at once (its logs say why); one still starting (a Python
        # process importing aiohttp on a loaded machine) is waited for, up to the readiness bound.
        try:
            _wait_until_final(bound, self.stack.ready_timeout * 3, interval=0.1,
                              what=f"host port(s) {', '.join(addresses)}", gate=self.gate)
        except ContainerExited as exc:
            state = self.client.api.inspect_container(cid)["State"]
            taken = re.search(r"host port (\S+) is in use", str(exc))
            if state.get("ExitCode") != PORT_IN_USE_EXIT or not taken:
                raise
            running.helper_ids.remove(cid)
            if self._remove(cid):
                running.helper_ids.append(cid)  # still there: the task's stop tries again
            raise HostPortTaken(f"task {task.arn}: host port {taken.group(1)} is in use (another socket on "
                                f"the docker host holds it)", taken.group(1)) from None

    def _still_running(self, cid: str, what: str) -> None:
        """Raise (ending a readiness wait) when the container has exited: no point waiting on."""
        state = self.client.api.inspect_container(cid)["State"]
        if not state.get("Running"):
            raise ContainerExited(f"{what} exited with {state.get('ExitCode')}:\n{self.logs(cid)}")

    def stop_task(self, task_arn: str) -> None:
        """Stop and remove the task's containers and helpers, and return only once Docker no longer
        has any of them: their addresses (the agent's fixed ones) and host ports are free then, and
        only then does the instance agent report the task STOPPED, so the replacement the service
        scheduler places next never meets the old container still being torn down."""
        with self._lock:
            running = self.tasks.pop(task_arn, None)
        if running is None:
            return
        # Last started first, as the ECS agent stops them: an app before its log router, and what the
        # app wrote reaches the router (its log driver drains) before the router stops.
        order = [*reversed(running.started), *(n for n in running.container_ids if n not in running.started)]
        for name in order:
            cid = running.container_ids[name]
            exit_code = None
            with contextlib.suppress(Exception):
                self.client.api.stop(cid, timeout=5)
                exit_code = self.client.api.inspect_container(cid)["State"]["ExitCode"]
            for t in running.shippers.get(name, []):
                t.join(timeout=15)
            with contextlib.suppress(Exception):
                running.task.container(name).mark_stopped(exit_code)
        running.log_stop.set()
        leftovers = [self._remove(cid) for cid in [*running.container_ids.values(), *running.helper_ids]]
        running.task.known_status = "STOPPED"
        self.world.touch()
        stuck = [cid[:12] for cid in leftovers if cid]
        if stuck:
            raise RuntimeError(f"docker did not remove container(s) {', '.join(stuck)} of task {task_arn}")

    def _remove(self, cid: str, timeout: float | None = None) -> str | None:
        """Remove a container and wait until Docker has no such container; returns the id when it
        is still there after `timeout` (a remove that failed is tried again meanwhile)."""
        import docker.errors

        def gone() -> bool:
            try:
                self.client.api.remove_container(cid, force=True, v=True)
            except docker.errors.NotFound:
                return True
            except Exception:  # noqa: BLE001 - e.g. 409 "removal already in progress": look again
                pass
            try:
                self.client.api.inspect_container(cid)
            except docker.errors.NotFound:
                return True
            return False

        try:
            wait_until(gone, self.stack.ready_timeout * 3 if timeout is None else timeout, interval=0.2,
                       what=f"docker to remove container {cid[:12]}")
        except TimeoutError:
            return cid
        return None

    def fips_proxy_spec(self, n: int) -> ContainerSpec:
        """The FIPS proxy sidecar: Debian's HAProxy with the lab's config, mounted where the
        datadog/fips-proxy image keeps its own; every port relays to the lab's intake."""
        from lab.fakes.fips_proxy.haproxy import CONFIG_PATH, render_haproxy_cfg

        cfg = self.run_dir / f"fips-proxy-{n}.cfg"
        host, port = TASK_METADATA_IP, int(self.topo.intake_url.rsplit(":", 1)[1])
        cfg.write_text(render_haproxy_cfg(host, port, bind_address="127.0.0.1",
                                          port_range_start=self.stack.ports.fips_start))
        lab_image = self.fips_proxy_image == LAB_IMAGE
        return ContainerSpec(name="fips-proxy", image=self.fips_proxy_image,
                             command=["fips-proxy"] if lab_image else None,
                             mounts=[Mount(str(cfg), CONFIG_PATH, True)])

    @property
    def fips_proxies(self) -> dict[int, HaproxyRecords]:
        """Instance -> its agent task's FIPS proxy sidecar requests (agent tasks that have one)."""
        return {n: HaproxyRecords(self, n) for n, task in self.agent_tasks.items()
                if any(c.name == "fips-proxy" for c in task.containers)}

    def wait_healthy(self, c: Container, timeout: float) -> None:
        """Until Docker's health check says healthy; an exited container fails at once. `unhealthy`
        does not end the wait: Docker keeps checking and a passing check makes it healthy again
        (on a loaded machine `agent health` can overrun its 5 s timeout a few times while the
        agent starts); the last failed check is in the error when the bound runs out. One verdict
        ends it: `unhealthy` because the check's command does not exist in the image (exit 127, an
        agent without `agent health`). No check can ever pass then, and ECS runs the task anyway,
        its container UNHEALTHY."""
        last_check: dict = {}

        def settled() -> bool:
            state = self.client.api.inspect_container(c.docker_id)["State"]
            if not state["Running"]:
                raise ContainerExited(f"{c.name} exited with {state['ExitCode']}:\n{self.logs(c.docker_id)}")
            health = state.get("Health") or {}
            status = health.get("Status", "healthy")
            c.health_status = ecs_health(status)
            if health.get("Log"):
                last_check.update(health["Log"][-1])
            return status == "healthy" or (status == "unhealthy" and last_check.get("ExitCode") == 127)

        try:
            _wait_until_final(settled, timeout, interval=0.2, what=f"{c.name} to report healthy",
                              gate=self.gate)
        except TimeoutError as exc:
            check = (f"; last health check: exit {last_check.get('ExitCode')}, "
                     f"{str(last_check.get('Output', '')).strip()[-300:]!r}") if last_check else ""
            raise RuntimeError(f"{exc}{check}\n{self.logs(c.docker_id)}") from None

    def wait_listening(self, c: Container, port: int, timeout: float) -> None:
        """Ready = accepting connections (the host reaches the instance bridge directly)."""
        def listening() -> bool:
            self._still_running(c.docker_id, c.name)
            with socket.create_connection((c.ipv4_addresses[0], port), timeout=0.5):
                return True

        try:
            _wait_until_final(listening, timeout, interval=0.1, what=f"{c.name} to listen on {port}",
                              gate=self.gate)
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}\n{self.logs(c.docker_id)}") from None

    def log_name(self, task: Task, c: Container) -> str:
        """`agent-N` / `app-<variant>` for the stack's own tasks (as on the local backend), else the
        container's docker name."""
        for n, t in self.agent_tasks.items():
            if t is task:
                return f"agent-{n}" if c.name == "datadog-agent" else f"{c.name}-{n}"
        for variant, t in self.app_tasks.items():
            if t is task:
                return f"app-{variant}"
        return c.docker_name

    def log_path(self, name: str) -> Path:
        return self.run_dir / f"{name}.log"  # where `ecs-lab logs` looks (status()["run_dir"])

    def _follow_logs(self, name: str, cid: str) -> None:
        """Copy the container's output into run_dir/<name>.log while it runs (what `ecs-lab
        logs` and a failing test's message read), as the local backend's log files."""
        path = self.log_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)

        def follow() -> None:
            with contextlib.suppress(Exception), open(path, "ab", buffering=0) as out:
                for chunk in self.client.api.logs(cid, stream=True, follow=True):
                    out.write(chunk)

        threading.Thread(target=follow, name=f"logs-{name}", daemon=True).start()

    # -- reading ------------------------------------------------------------------------------------
    def logs(self, cid: str, lines: int = 30) -> str:
        try:
            return self.client.api.logs(cid, tail=lines).decode(errors="replace")
        except Exception as exc:  # noqa: BLE001
            return f"(no logs: {exc})"

    def _logs_of(self, ids: dict[str, str]) -> str:
        return "\n".join(f"--- {k}:\n{self.logs(v)}" for k, v in ids.items())

    def exec_in_container(self, task_arn: str, container: str, argv: list[str],
                          timeout: float = 30) -> tuple[int, str]:
        """`docker exec` into a running container of a task: (exit code, output)."""
        with self._lock:
            running = self.tasks.get(task_arn)
        cid = running.container_ids.get(container) if running else None
        if cid is None:
            raise LookupError(f"container {container!r} of task {task_arn} is not running")
        api = self.client.api
        exec_id = api.exec_create(cid, argv, stdout=True, stderr=True)["Id"]
        result: dict = {}

        def run() -> None:
            result["output"] = api.exec_start(exec_id).decode(errors="replace")

        t = threading.Thread(target=run, daemon=True, name="docker-exec")
        t.start()
        t.join(timeout)
        if t.is_alive():
            return 124, f"timed out after {timeout}s"
        return api.exec_inspect(exec_id)["ExitCode"], result.get("output", "")

    def follow_output(self, task_arn: str, container: str, on_lines: OutputLines,
                      stop: threading.Event) -> None:
        """The container's stdout and stderr lines from the docker API, as the daemon hands them
        to a log driver: one stream per thread, from the container's start until it stops."""
        with self._lock:
            running = self.tasks.get(task_arn)
        cid = running.container_ids.get(container) if running else None
        if cid is None:
            raise LookupError(f"container {container!r} of task {task_arn} is not running")
        deliver = threading.Lock()

        def one(stream: str) -> None:
            pending = b""
            with contextlib.suppress(Exception):  # a removed container ends its stream
                for chunk in self.client.api.logs(cid, stdout=stream == "stdout",
                                                  stderr=stream == "stderr", stream=True, follow=True):
                    pending += chunk
                    *complete, pending = pending.split(b"\n")
                    if complete:
                        with deliver:
                            on_lines([(stream, raw.decode("utf-8", "replace")) for raw in complete])
                    if stop.is_set():
                        return
            if pending:
                with deliver:
                    on_lines([(stream, pending.decode("utf-8", "replace"))])

        threads = [threading.Thread(target=one, args=(s,), daemon=True, name=f"follow-{container}-{s}")
                   for s in ("stdout", "stderr")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def container_logs(self, task_arn: str, container: str, lines: int = 50) -> str:
        """The container's output, also after its task stopped (the copy `_follow_logs` keeps)."""
        from lab.backends.process import tail_file

        path = self._log_paths.get((task_arn, container))
        return tail_file(path, lines) if path and path.exists() else ""

    def run_in_instance(self, n: int, argv: list[str], *, timeout: float = 60,
                        env: dict[str, str] | None = None) -> tuple[int, str]:
        """Run a one-off container on instance N (bridge, link-local attached first); returns
        (exit code, output). What an app container would see, without being a task."""
        linklocal = self._link_local_address(n)
        self._hops[linklocal] = 2  # a bridge-mode container, as an app's
        self.publish_world()
        cid = self._create(name=f"ecs-lab-run-{uuid.uuid4().hex[:8]}", image=LAB_IMAGE,
                           labels=self._labels("run"), entrypoint=[], command=argv,
                           networks={"linklocal": linklocal, f"instance{n}": None},
                           env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://{IMDS_IP}", **(env or {})})
        try:
            self.client.api.start(cid)
            result = self.client.api.wait(cid, timeout=timeout)
            return result["StatusCode"], self.client.api.logs(cid).decode(errors="replace")
        finally:
            with contextlib.suppress(Exception):
                self.client.api.remove_container(cid, force=True)

    def status(self) -> dict:
        s = self.stack
        instances = []
        for n in range(1, self.topo.hosts + 1):
            inst = self.world.instance(n)
            task = self.agent_tasks.get(n)
            agent_c = next((c for c in task.containers if c.name == "datadog-agent"), None) if task else None
            instances.append({
                "index": n, "instance_id": inst.instance_id, "launch_type": inst.launch_type,
                # The host's own name, what its docker daemon would say (the agent's hostname there).
                "host_name": inst.os_hostname, "private_ip": inst.private_ip,
                "agent_localhost": "127.0.0.1",  # the agent's own netns: localhost is itself
                # An ECS Anywhere host has no IMDS: nothing answers it at 169.254.169.254.
                "imds_url": None if inst.external else "http://169.254.169.254",
                "ecs_endpoint": self.topo.ecs_agent_url,
                # The same instance's IMDS (and at a bridge container's distance) and introspection
                # as the host reaches them: what `ecs-lab doctor` and the exercises call.
                **self.host_endpoints.get(n, {}),
                # The same IMDS (its /ecs-lab/ control API included) on the lab network leg: what
                # the host uses, never 169.254.x from the host's own network namespace.
                "imds_control_url": f"http://{IMDS_LAB_IP}:{IMDS_PORT}",
                "apm_url": f"http://{inst.private_ip}:{s.ports.apm}",
                "dogstatsd": f"{inst.private_ip}:{s.ports.dogstatsd}",
                "network_mode": task.network_mode if task else None,
                "fips_proxy": f"127.0.0.1:{s.ports.fips_start}" if s.has("fips") else None,
                "agent": {"task_arn": task.arn if task else None,
                          "container": agent_c.name if agent_c else None,
                          "image": agent_c.image if agent_c else None,
                          "docker_id": agent_c.docker_id if agent_c else None,
                          "pid": agent_c.pid if agent_c else None,
                          "status": agent_c.known_status if agent_c else "STOPPED",
                          "health": agent_c.health_status if agent_c else "UNKNOWN",
                          "log": str(self.log_path(f"agent-{n}"))},
            })
        apps = {}
        for v, t in self.app_tasks.items():
            c = t.containers[0]
            apps[v] = {"service": app_service(v), "instance": 1, "task_arn": t.arn, "task_family": t.family,
                       "task_version": t.revision, "docker_id": c.docker_id,
                       "pid": c.pid, "status": c.known_status, "log": str(self.log_path(f"app-{v}")),
                       # The host reaches containers on the instance bridge directly (never 169.254.x).
                       "url": f"http://{c.ipv4_addresses[0]}:{APP_PORT}" if c.ipv4_addresses else None}
        processes = {}
        for rt in list(self.tasks.values()):
            for c in rt.task.containers:
                name = self.log_name(rt.task, c)
                processes[name] = {"pid": c.pid, "log": str(self.log_path(name)), "docker_id": c.docker_id,
                                   "running": c.known_status == "RUNNING"}
        first = instances[0] if instances else {}
        return {
            "backend": self.name, "pid": os.getpid(), "run_id": self.run_id, "run_dir": str(self.run_dir),
            "cluster": self.world.cluster.name, "features": sorted(s.features),
            "agent_image": self.agent_image,
            "intake_url": self.intake_url, "egress_proxy_url": self.egress_proxy_url,
            "task_metadata_url": f"http://{TASK_METADATA_IP}",
            "imds_url": first.get("imds_url"), "apm_url": first.get("apm_url"),
            "dogstatsd": first.get("dogstatsd"), "ecs_endpoint": first.get("ecs_endpoint"),
            "instances": instances, "apps": apps, "processes": processes, "started_in": self.started_in,
        }


def _start_order(containers: list[Container], specs: list[ContainerSpec]) -> list[Container]:
    """dependsOn order (a container after the ones it names); otherwise as defined."""
    deps = {s.name: [d for d, _ in s.depends_on] for s in specs}
    done: list[Container] = []
    by_name = {c.name: c for c in containers}
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in (c.name for c in done) or name not in by_name:
            return
        if name in visiting:
            raise UnsupportedField(f"dependsOn cycle through {name!r}")
        visiting.add(name)
        for d in deps.get(name, []):
            visit(d)
        done.append(by_name[name])

    for c in containers:
        visit(c.name)
    return done


def sweep(client=None, *, run_id: str | None = None, stale_only: bool = False) -> int:
    """Remove the lab's containers, networks and run image tags (`ecs-lab down --all`): all of them,
    one run's (`run_id`), or those whose owner process is gone (`stale_only`). Returns how many."""
    client = client or images.docker_client()
    selector = {"label": [f"{LABEL}=1"] + ([f"{RUN_LABEL}={run_id}"] if run_id else [])}

    def stale(labels: dict) -> bool:
        # run id: <hostname>-<owner pid>-<random>
        rid = labels.get(RUN_LABEL, "")
        parts = rid.split("-")
        if len(parts) < 3 or rid == "compose":
            return False
        pid = parts[-2]
        owner_host = "-".join(parts[:-2])
        if owner_host != socket.gethostname() or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
            return False
        except ProcessLookupError:
            return True
        except PermissionError:
            return False

    removed = 0
    for c in client.api.containers(all=True, filters=selector):
        if stale_only and not stale(c.get("Labels") or {}):
            continue
        with contextlib.suppress(Exception):
            client.api.remove_container(c["Id"], force=True, v=True)
            removed += 1
    for net in client.api.networks(filters=selector):
        if stale_only and not stale(net.get("Labels") or {}):
            continue
        with contextlib.suppress(Exception):
            client.api.remove_network(net["Id"])
            removed += 1
    # Each run tags the lab image it runs (`<repo>:run-<run id>`): a run that died kept its tag, and
    # with it an image the next build replaced (1 GB each).
    repo = LAB_IMAGE.rsplit(":", 1)[0]
    for image in client.api.images(name=repo):
        for tag in image.get("RepoTags") or []:
            name, _, version = tag.rpartition(":")
            rid = version.removeprefix("run-")
            if name != repo or rid == version or (run_id and rid != run_id):
                continue
            if stale_only and not stale({RUN_LABEL: rid}):
                continue
            with contextlib.suppress(Exception):
                client.api.remove_image(tag, noprune=True)
                removed += 1
    return removed


def main(argv: list[str] | None = None) -> int:
    """`python -m lab.backends.docker sweep` (the compose file: `python -m lab.compose`)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["sweep"]:
        print(f"removed {sweep()} lab containers/networks")
        return 0
    print("usage: python -m lab.backends.docker sweep", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
