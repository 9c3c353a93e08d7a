"""The local backend: the ECS world as processes on loopback, no Docker.

`LocalBackend` is an owner object and a task runner (`lab.tasks.InstanceHost`). Entering it starts
the fakes (IMDS and ECS agent introspection per instance, task metadata, intake, optional egress
proxy) as in-process servers and adds the stack's instances to the world; it starts no task itself:
the ECS control plane places them and its instance agents run them through `start_task`
(`lab.assembly.EcsLab` puts the two together). Leaving it stops every process group and server it
started, in reverse order.

An ECS container becomes a process here:
- agent images (`lab.tasks.is_agent_image`) run the emulated agent (`python -m lab.agent run`), or
  the user's `LAB_AGENT_COMMAND`; a `bin/agent` shim makes the task definition's `agent health`
  check run as written;
- FIPS proxy images run the lab's FIPS proxy stand-in (`python -m lab.fakes.fips_proxy`) on the
  agent's "localhost" address, with the same port map;
- the lab image runs entryPoint + command exactly as docker would (`sh -c` lines included);
- any other image is refused with its name.
The environment is what the container would see on EC2: the spec's env, what the ECS agent injects
(ECS_CONTAINER_METADATA_URI(_V4), credentials URI, AWS_EXECUTION_ENV, metadata file), and, since
169.254.169.254 on this host belongs to someone else, `AWS_EC2_METADATA_SERVICE_ENDPOINT` pointing at
this instance's fake IMDS (docs/environment.md). Host env (proxies, AWS keys) is not inherited.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lab.agent_images import DATADOG, agent_kind, local_command
from lab.backends.process import (
    START_LINE_PREFIX,
    ManagedProcess,
    Probe,
    ProcessExited,
    file_probe,
    tcp_probe,
    udp_probe,
    unix_probe,
)
from lab.datadog_sites import SITES
from lab.fakes.fips_proxy.proxy import FipsProxyRecords
from lab.stack import AGENT_IMAGE, AGENT_SERVICES, Stack, app_service
from lab.tasks import (
    AGENT_IMAGE_PREFIXES,
    CAPABILITIES_ENV,
    DOCKER_DEFAULT_CAPABILITIES,
    INSTANCE_HOSTNAME_ENV,
    LAB_IMAGE,
    MOUNTS_ENV,
    ContainerSpec,
    InstanceEndpoints,
    OutputLines,
    StartGate,
    UnsupportedField,
    is_agent_image,
    is_fips_proxy_image,
    is_lab_image,
    with_fluent_address,
)
from lab.world import Cluster, Container, ContainerInstance, PortMapping, Task, World, now_iso, wait_until

# Host variables a process needs to run at all; everything else (HTTP(S)_PROXY, AWS_*, DD_*) stays
# out, as it would from a container.
# A FireLens log router container's forward socket (its /var/run/fluent.sock on this backend).
ROUTER_SOCKET_ENV = "LAB_LOG_ROUTER_SOCKET"
# How long a stopping lab waits for its task starts in flight to end once their processes are
# stopped: each ends at its next step (a readiness wait sees its process gone, the next container
# is refused).
STOP_DRAIN_TIMEOUT = 30.0
# How a process's start line names its container (the agent's log collection finds its run by it).
CONTAINER_NOTE = "container "
_INHERITED_ENV = ("HOME", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "TERM")
# Where IMDS "is" for hosts that have none (Fargate tasks, ECS Anywhere hosts): the discard port of
# the host's own loopback address, where nothing of the lab listens, so a connection is refused.
NOTHING_LISTENS_PORT = 9


class UnknownImage(ValueError):
    """An image the local backend cannot run as a process."""


Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class RunningContainer:
    instance: ContainerInstance
    task: Task
    container: Container
    spec: ContainerSpec
    process: ManagedProcess
    env: dict[str, str]
    failures: int = 0
    shippers: list[threading.Thread] = field(default_factory=list)  # its log driver's threads
    next_health_at: float = 0.0
    checking: bool = False
    started_at: float = field(default_factory=time.monotonic)
    passed_once: bool = False  # a check has passed: the start period no longer forgives failures


@dataclass
class RunningTask:
    instance: ContainerInstance
    task: Task
    containers: list[RunningContainer] = field(default_factory=list)
    log_router_socket: str | None = None  # FireLens: where the task's log router listens
    log_router_address: str | None = None  # and the address of its forward input on 24224
    log_stop: threading.Event = field(default_factory=threading.Event)


class LocalBackend:
    """TaskRunner + owner of a whole local stack. Use as a context manager."""

    name = "local"
    # Labs of this backend run side by side, each on its own loopback subnet.
    SIDE_BY_SIDE = True

    def __init__(self, stack: Stack | None = None, world: World | None = None,
                 progress: Progress | None = None) -> None:
        self.stack = stack or Stack()
        self.world = world or World(Cluster(name=self.stack.cluster))
        self.progress = progress or _quiet
        self.run_dir = Path(self.stack.run_dir).resolve()
        self._exit = contextlib.ExitStack()
        self._lock = threading.RLock()
        self.tasks: dict[str, RunningTask] = {}
        self.intake_url = ""
        self.site_intake_urls: dict[str, str] = {}
        self.task_metadata_url = ""
        self.egress_proxy_url: str | None = None
        self.imds_urls: dict[int, str] = {}
        # Instance -> its IMDS as bridge-mode containers reach it, one hop further (docs/imds.md#hop-limit).
        self.imds_bridge_urls: dict[int, str] = {}
        self.ecs_agent_urls: dict[int, str] = {}
        self.fips_proxies: dict[int, FipsProxyRecords] = {}  # instance -> its FIPS sidecar's records
        self.intake = None
        self.egress_proxy = None
        self.imds = None
        self.ecs_metadata = None
        self.agent_tasks: dict[int, Task] = {}
        self.app_tasks: dict[str, Task] = {}
        self.events: list[str] = []
        self._monitor_stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self.started_in: float | None = None
        self._container_seq = 0
        self._task_addresses: dict[str, str] = {}  # awsvpc task on an instance -> its ENI's address
        self._log_paths: dict[tuple[str, str], Path] = {}  # (task arn, container) -> its log, kept after stop
        self._log_offsets: dict[tuple[str, str], int] = {}  # where that container's run begins in it
        # The task starts in flight (each on an instance agent's thread), and whether the lab still
        # takes new ones: closed when it stops (`stop`, `refuse_new_tasks`).
        self.gate = StartGate()

    # -- owner lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> LocalBackend:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> LocalBackend:
        t0 = time.monotonic()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for old_log in self.run_dir.glob("*.log"):
            if old_log.name != "supervisor.log":
                old_log.unlink(missing_ok=True)
        (self.run_dir / "metadata").mkdir(exist_ok=True)
        self._write_shims()
        self._start_fakes()
        self._monitor = threading.Thread(target=self._watch, name="lab-local-monitor", daemon=True)
        self._monitor.start()
        self._exit.callback(self._stop_monitor)
        self.started_in = time.monotonic() - t0
        return self

    @property
    def stopping(self) -> bool:
        return self.gate.closed

    def refuse_new_tasks(self) -> None:
        """The lab is stopping: no task starts from now on, and the ones in flight give up before
        their next container (a start whose processes the stop kills fails at once)."""
        self.gate.close()

    def stop(self) -> None:
        """Stop every task (all at once: each waits up to its stop timeout), then the fakes. No task
        starts once this begins; a start still in flight (a lab stopped during its deploy) ends before
        the fakes go, and what it started is stopped with the rest."""
        self.gate.close()
        self._stop_monitor()
        self._stop_all_tasks()
        # The starts in flight end once their processes are stopped (a readiness wait fails) or at
        # their next container; a task one of them registered after the stop above is stopped now.
        left = self.gate.drain(timeout=STOP_DRAIN_TIMEOUT)
        if left:
            self.progress(f"{left} task start(s) still in flight after {STOP_DRAIN_TIMEOUT:.0f}s; "
                          "stopping anyway")
        self._stop_all_tasks()
        # Each task's stop removed its containers' temp dirs; this catches a start that failed half-way.
        # The run dir is this lab's alone (one per subnet), a crashed lab's goes with `down --all`.
        shutil.rmtree(self.run_dir / "tmp", ignore_errors=True)
        self._exit.close()

    def _stop_all_tasks(self) -> None:
        with self._lock:
            agent_arns = {arn for arn, rt in self.tasks.items()
                          if any(is_agent_image(c.spec.image) for c in rt.containers)}
            apps = [arn for arn in self.tasks if arn not in agent_arns]
            agents = [arn for arn in self.tasks if arn in agent_arns]
        # Apps first, so their tracers' last flush on SIGTERM still finds a live agent; then agents.
        for wave in (apps, agents):
            stoppers = [threading.Thread(target=self._stop_quietly, args=(arn,), daemon=True) for arn in wave]
            for t in stoppers:
                t.start()
            for t in stoppers:
                t.join(timeout=30)

    def _container_tmp(self, container: Container) -> Path:
        """The container's TMPDIR: what its processes leave in their temp dir (ddtrace writes a file
        per process there and never removes it) goes with the container, as a container's /tmp does."""
        return self.run_dir / "tmp" / container.docker_id[:12]

    def _make_container_tmp(self, container: Container) -> Path:
        path = self._container_tmp(container)
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def _stop_quietly(self, arn: str) -> None:
        with contextlib.suppress(Exception):
            self.stop_task(arn)

    def _stop_monitor(self) -> None:
        self._monitor_stop.set()
        if self._monitor and self._monitor is not threading.current_thread():
            self._monitor.join(timeout=5)

    # -- fakes -----------------------------------------------------------------------------------------
    def _start_fakes(self) -> None:
        from lab.fakes.ecs_metadata.server import EcsMetadataServer
        from lab.fakes.imds.server import ImdsServer

        s = self.stack
        if s.external_intake_url:
            self.intake_url = s.external_intake_url.rstrip("/")
        else:
            from lab.fakes.intake.server import IntakeServer

            self.progress("starting fake intake")
            self.intake = self._exit.enter_context(IntakeServer())
            self.intake_url = self.intake.listen(s.services_host, s.ports.intake).url
            # One listener per documented Datadog site: an agent with DD_SITE=<site> is pointed at
            # its site's (lab.ecs.agent_env), which records the site on what it stores.
            for site in SITES:
                self.site_intake_urls[site] = self.intake.listen(s.services_host, 0, site=site).url

        if s.has("egress_proxy"):
            from lab.fakes.egress_proxy import EgressProxy

            self.progress("starting egress proxy")
            self.egress_proxy = self._exit.enter_context(EgressProxy(s.services_host, s.ports.egress_proxy))
            self.egress_proxy_url = self.egress_proxy.url

        self.progress("starting fake IMDS and ECS metadata")
        self.imds = self._exit.enter_context(ImdsServer(self.world))
        self.ecs_metadata = self._exit.enter_context(EcsMetadataServer(self.world))
        self.task_metadata_url = self.ecs_metadata.listen_task_metadata(
            s.services_host, s.ports.task_metadata).url
        for n in range(1, s.instances + 1):
            self.serve_instance(self.world.add_instance(s.private_ip(n),
                                                        imds_tokens_required=s.imds_tokens_required))
        for n in range(s.instances + 1, s.instances + s.external_instances + 1):
            # ECS Anywhere hosts: the next addresses of the subnet, no IMDS (docs/ecs_anywhere.md).
            self.serve_instance(self.world.add_instance(s.private_ip(n), launch_type="EXTERNAL"))

    # -- InstanceHost ----------------------------------------------------------------------------------
    def serve_instance(self, inst: ContainerInstance) -> None:
        """Give an instance of the world (ours, or one the ECS control plane registered) its own
        IMDS and ECS agent introspection on its private IP."""
        ports = self.stack.ports
        if inst.index not in self.ecs_agent_urls:
            self.ecs_agent_urls[inst.index] = self.ecs_metadata.listen_introspection(
                inst.private_ip, ports.ecs_introspection, inst).url
        if inst.external:
            return  # an on-premises host: nothing answers as its IMDS
        if inst.index not in self.imds_urls:
            self.imds_urls[inst.index] = self.imds.listen(inst.private_ip, ports.imds, inst).url
        if inst.index not in self.imds_bridge_urls:
            # Bridge-mode containers reach IMDS through the instance's docker bridge: one more hop,
            # which the token's HttpPutResponseHopLimit counts. Their own listener says so.
            self.imds_bridge_urls[inst.index] = self.imds.listen(inst.private_ip, 0, inst, hops=2).url

    def ecs_endpoints(self, up: bool) -> None:
        """Take the ECS agent's endpoints (every instance's introspection API and the task metadata
        listener) down, refusing connections as when the ECS agent is stopped, or up again."""
        from lab.serving import listen_again, stop_listening

        if self.ecs_metadata is None:
            raise RuntimeError("the ECS metadata endpoints are not running (the backend is not started)")
        threads = self.ecs_metadata._server

        async def toggle() -> None:
            for listener in threads.listeners:
                if up:
                    await listen_again(listener)
                else:
                    stop_listening(listener)

        threads.call(toggle)

    def fargate_host(self, task_arn: str, availability_zone: str) -> ContainerInstance:
        """The micro-VM of one Fargate task: its own loopback address stands for the task's ENI (its
        network namespace), shared by the task's containers as awsvpc shares one; no IMDS and no ECS
        agent introspection are served for it (docs/fargate.md#on-the-local-backend)."""
        return self.world.add_fargate_host(self._container_ip(), availability_zone)

    def instance_endpoints(self, inst: ContainerInstance) -> InstanceEndpoints:
        """The lab's services as an agent on this instance reaches them: every address is on
        loopback; the agent's own "127.0.0.1" is the instance's agent-localhost address."""
        if inst.launch_type == "FARGATE":
            # The task's own address is its "localhost" and its ENI alike.
            return InstanceEndpoints(intake_url=self.intake_url, egress_proxy_url=self.egress_proxy_url,
                                     agent_localhost=inst.private_ip, private_ip=inst.private_ip)
        n = inst.index
        return InstanceEndpoints(intake_url=self.intake_url, egress_proxy_url=self.egress_proxy_url,
                                 ecs_agent_url=self.ecs_agent_urls.get(n), imds_url=self.imds_urls.get(n),
                                 agent_localhost=self.stack.agent_localhost(n), private_ip=inst.private_ip,
                                 site_intake_urls=dict(self.site_intake_urls))

    def _track(self, instance: ContainerInstance, task: Task) -> None:
        """Remember which task is instance N's agent and which is each sample app, whoever started
        it (this backend, or an instance agent for the stack's services, replacements included)."""
        if task.service_name in AGENT_SERVICES:
            self.agent_tasks[instance.index] = task
            return
        for variant in self.stack.apps:
            if task.service_name == app_service(variant):
                self.app_tasks[variant] = task

    # -- TaskRunner ------------------------------------------------------------------------------------
    def start_task(self, instance: ContainerInstance, task: Task, specs: list[ContainerSpec],
                   wait: bool = True) -> None:
        """Start the task's containers as process groups in dependsOn order; write pids to the world.

        A container with a readiness probe (the agent, the sample app) that dies before it is ready
        fails the start with its log tail; the task's other containers are then stopped. Any other
        exit is ECS's business: the task stops when an essential container exits. Refused, or given
        up, once the lab is stopping (`LabStopping`, `refuse_new_tasks`).
        """
        with self.gate.starting(f"task {task.arn}"):
            self._start_task(instance, task, specs, wait)

    def _start_task(self, instance: ContainerInstance, task: Task, specs: list[ContainerSpec],
                    wait: bool) -> None:
        for spec in specs:
            image = spec.image
            if not (is_agent_image(image) or is_lab_image(image) or is_fips_proxy_image(image)
                    or spec.log_router_config is not None):
                raise UnknownImage(
                    f"container {spec.name!r}: image {spec.image!r} cannot run on the local backend "
                    f"(it runs agent images {', '.join(AGENT_IMAGE_PREFIXES)} as the emulated agent, FIPS "
                    f"proxy images as the lab's stand-in and {LAB_IMAGE} as the sample app); use "
                    "--backend docker for other images")
        task.pull_stopped_at = now_iso()  # every image is here (the host's own): the pull stops
        ordered = _dependency_order(specs)
        if self.world.find_task(task.arn) is None:
            self.world.add_task(instance, task)
        by_name = {s.name: s for s in specs}
        running = RunningTask(instance, task)
        with self._lock:
            self.tasks[task.arn] = running
            self._track(instance, task)
        try:
            for spec in ordered:
                for dep, condition in spec.depends_on:
                    self._wait_dependency(running, by_name, dep, condition.upper())
                if running.log_router_address and task.network_mode != "host":
                    # The ECS agent's FLUENT_HOST: the router's address (bridge), or 127.0.0.1 in the
                    # task's namespace (awsvpc), which here is the address standing for it.
                    spec = with_fluent_address(spec, running.log_router_address)
                self.gate.check(f"starting container {spec.name}")
                rc = self._start_container(instance, task, spec)
                if spec.log_router_config is not None:
                    running.log_router_socket = rc.env.get(ROUTER_SOCKET_ENV)
                    running.log_router_address = rc.env.get("LAB_APP_BIND")
                with self._lock:
                    running.containers.append(rc)
                    stopped_meanwhile = task.arn not in self.tasks
                if stopped_meanwhile:
                    # An essential container exited while we were starting the next: ECS stops them all.
                    # (Or the lab is stopping: then the start says so.)
                    rc.container.mark_stopped(rc.process.stop())
                    self.world.touch()
                    self.gate.check(f"task {task.arn}")
                    return
                if wait and rc.process.ready_probe is not None:
                    rc.process.wait_ready(self.stack.ready_timeout)
                if spec.log_configuration and spec.log_configuration.driver == "awsfirelens":
                    self._ship_to_log_router(running, rc)
        except BaseException:
            self.stop_task(task.arn)
            raise
        task.known_status = "RUNNING"
        self.world.touch()

    def stop_task(self, task_arn: str) -> None:
        with self._lock:
            running = self.tasks.pop(task_arn, None)
        if running is None:
            return
        running.task.desired_status = "STOPPED"
        for rc in reversed(running.containers):
            code = rc.process.stop()
            # Its log driver delivers what it wrote before the next container (its log router) stops.
            for t in rc.shippers:
                t.join(timeout=15)
            if rc.container.known_status != "STOPPED":
                rc.container.mark_stopped(code)
            shutil.rmtree(self._container_tmp(rc.container), ignore_errors=True)
        running.task.known_status = "STOPPED"
        with self._lock:
            self._task_addresses.pop(task_arn, None)
        self.world.touch()

    def _ship_to_log_router(self, running: RunningTask, rc: RunningContainer) -> None:
        """Docker's fluentd log driver, which `awsfirelens` is: the container's lines go to the task's
        log router over the forward protocol, tagged `<container>-firelens-<task id>`."""
        from lab.log_router.driver import FluentdLogDriver

        if not running.log_router_socket:
            raise ValueError(f"container {rc.spec.name!r} logs with awsfirelens but the task has no "
                             "log router")
        driver = FluentdLogDriver(running.log_router_socket, rc.spec.name, rc.container.docker_id,
                                  running.task.arn.rsplit("/", 1)[-1])

        def ship() -> None:
            try:
                self.follow_output(running.task.arn, rc.spec.name, driver.send_many, running.log_stop)
            except Exception as exc:  # noqa: BLE001 - a router that went away ends the stream
                self.events.append(f"{rc.process.name}: log driver awsfirelens: {exc!r}")
            finally:
                driver.close()

        t = threading.Thread(target=ship, daemon=True, name=f"firelens-{rc.spec.name}")
        rc.shippers.append(t)
        t.start()

    def _wait_dependency(self, running: RunningTask, by_name: dict, dep: str, condition: str) -> None:
        rc = next((c for c in running.containers if c.spec.name == dep), None)
        if rc is None:
            raise ValueError(f"dependsOn names {dep!r}, which is not an earlier container of the task")
        if condition == "START":
            return
        # A wait ends when the lab stops too (the gate's check then says so).
        if condition == "HEALTHY":
            wait_until(lambda: self.gate.closed or rc.container.health_status == "HEALTHY",
                       timeout=self.stack.ready_timeout * 3, what=f"{dep} HEALTHY")
        elif condition in ("COMPLETE", "SUCCESS"):
            wait_until(lambda: self.gate.closed or rc.process.returncode is not None,
                       timeout=self.stack.ready_timeout * 3, what=f"{dep} to exit")
        self.gate.check(f"waiting for {dep} {condition}")
        if condition == "SUCCESS" and rc.process.returncode != 0:
            raise ProcessExited(f"{dep} exited with {rc.process.returncode}; dependsOn SUCCESS not met")

    def _start_container(self, instance: ContainerInstance, task: Task,
                         spec: ContainerSpec) -> RunningContainer:
        container = task.container(spec.name)
        container.env = dict(spec.env)
        # Docker labels of the task definition, beside the ECS agent's own (task metadata `Labels`).
        container.labels.update(spec.docker_labels)
        # Bridge mode gives each container its own address (docker0's 172.17.0.x); here a loopback
        # address of its own, so two apps can both listen on their containerPort 8080.
        if instance.launch_type == "FARGATE":
            container.ipv4_addresses = [instance.private_ip]  # awsvpc: one ENI for the whole task
        elif task.network_mode == "awsvpc" and (is_lab_image(spec.image)
                                                or spec.log_router_config is not None):
            # awsvpc on an instance: the task's ENI, one address for all its containers (they share
            # one network namespace), distinct from the instance's private IP and every other task's.
            container.ipv4_addresses = [self._task_address(task)]
        else:
            container.ipv4_addresses = ([self._container_ip()]
                                        if is_lab_image(spec.image) or spec.log_router_config is not None
                                        else [instance.private_ip])
        container.ports = [PortMapping(p.container_port, p.host_port, p.protocol, instance.private_ip)
                           for p in spec.ports]
        env = self.container_env(instance, task, container, spec)
        argv, ready = self._argv_and_probe(instance, spec, env)
        proc_name = f"{task.family}-{instance.index}-{spec.name}"
        if task.service_name and task.service_name != "datadog-agent":
            # A one-container service task is named after its service (web-imdsv1), as `docker ps`
            # shows ECS services; more containers add their names.
            single = len(task.containers) == 1 or spec.name == "app"
            proc_name = task.service_name if single else f"{task.service_name}-{spec.name}"
        elif is_agent_image(spec.image) and task.service_name in AGENT_SERVICES:
            proc_name = f"agent-{instance.index}"
        proc = ManagedProcess(proc_name, argv, env=env, log_dir=self.run_dir, cwd=spec.working_directory,
                              ready=ready, ready_timeout=self.stack.ready_timeout,
                              note=f"{CONTAINER_NOTE}{container.docker_id}")
        self._log_paths[(task.arn, spec.name)] = proc.log_path
        # A replacement task's container of the same name appends to the same file: its output
        # starts here, after its own start line.
        self._log_offsets[(task.arn, spec.name)] = (proc.log_path.stat().st_size
                                                    if proc.log_path.exists() else 0)
        proc.start()
        if is_fips_proxy_image(spec.image):
            self.fips_proxies[instance.index] = FipsProxyRecords(
                f"http://{env['DD_FIPS_LOCAL_ADDRESS']}:{env['DD_FIPS_PORT_RANGE_START']}")
        container.pid = proc.pid
        container.mark_running()
        self.world.touch()
        # Docker (which runs ECS's health checks): the first check one interval after the start.
        return RunningContainer(instance, task, container, spec, proc, env,
                                next_health_at=time.monotonic() + (spec.health_check.interval
                                                                   if spec.health_check else 0))

    def container_env(self, instance: ContainerInstance, task: Task, container: Container,
                      spec: ContainerSpec) -> dict[str, str]:
        env = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
        # A container's /tmp is its own and goes when it does (docs/local_backend.md#temporary-files).
        env["TMPDIR"] = str(self._make_container_tmp(container))
        # The shims, then this interpreter's own bin (ddtrace-run, ecs-lab) ahead of any pyenv shim.
        env["PATH"] = os.pathsep.join([str(self.run_dir / "bin"), os.path.dirname(sys.executable),
                                       os.environ.get("PATH", "/usr/bin:/bin")])
        env.update(spec.env)
        from lab.fakes.ecs_metadata.model import container_env, write_metadata_file

        if instance.launch_type == "FARGATE":
            return self._fargate_container_env(env, instance, task, container, spec)
        # The ECS agent writes the metadata file (and tells the container where) only when its
        # ECS_ENABLE_CONTAINER_METADATA=true: the lab's instances have it on unless switched off.
        meta_file = None
        if instance.container_metadata_enabled:
            meta_file = self.run_dir / "metadata" / container.docker_name / "ecs-container-metadata.json"
            write_metadata_file(meta_file, instance, task, container)
        env.update(container_env(instance, task, container, base_url=self.task_metadata_url,
                                 relative_credentials=False,
                                 metadata_file=str(meta_file) if meta_file else None))
        if meta_file:
            env.setdefault("ECS_CONTAINER_METADATA_FILE", str(meta_file))
        if instance.external:
            # On premises 169.254.169.254 answers nothing. Every AWS SDK (and the agent) is pointed at
            # an address of the host's own where nothing listens: a lookup is refused at once, as
            # there, and never reaches this machine's own 169.254.169.254 or the lab's IMDS.
            env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = f"http://{instance.private_ip}:{NOTHING_LISTENS_PORT}"
        else:
            bridged = task.network_mode == "bridge" and instance.index in self.imds_bridge_urls
            env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = (self.imds_bridge_urls if bridged
                                                        else self.imds_urls)[instance.index]
        env.setdefault("AWS_DEFAULT_REGION", instance.region)
        env.setdefault("AWS_REGION", instance.region)
        env.setdefault("HOSTNAME", container.docker_id[:12])
        if task.network_mode == "awsvpc":
            self._awsvpc_env(env, instance, task, spec)
        if spec.log_router_config is not None:
            self._log_router_env(env, container, container.ipv4_addresses[0])
        if is_lab_image(spec.image):
            env.setdefault("LAB_APP_BIND", container.ipv4_addresses[0])
            port_file = self.run_dir / "ports" / f"{container.docker_name}.port"
            port_file.parent.mkdir(parents=True, exist_ok=True)
            port_file.unlink(missing_ok=True)
            env.setdefault("LAB_APP_PORT_FILE", str(port_file))
        if is_agent_image(spec.image):
            n = instance.index
            env.setdefault("LAB_AGENT_LOCALHOST", self.stack.agent_localhost(n))
            env.setdefault("LAB_AGENT_HOST_ADDRESSES",
                           f"{instance.private_ip},{self.stack.agent_localhost(n)}")
            # The task definition mounts /var/run/docker.sock, but on this backend that is the host's
            # engine, not the emulated instance's: its containers (another docker lab's, whose
            # metadata URIs name 169.254.170.2) are not this instance's. Containers come from /proc.
            env.setdefault("LAB_AGENT_DOCKER_SOCKET", "")
            # The container's own /etc/datadog-agent: the agent writes its IPC auth token and
            # certificate there and `agent status`/`health` in the same container read them. One
            # directory per container, as each container has its own filesystem.
            conf = self.run_dir / "containers" / container.docker_name / "etc-datadog-agent"
            env.setdefault("DD_AUTH_TOKEN_FILE_PATH", str(conf / "auth_token"))
            # What Docker would grant this container (its default capabilities plus the task's
            # linuxParameters.capabilities.add) and where the task mounts volumes: a process has no
            # container of its own, so system-probe's requirements are checked against these
            # (lab.agent.network, docs/npm.md#when-a-requirement-is-missing).
            env[CAPABILITIES_ENV] = ",".join(dict.fromkeys([*DOCKER_DEFAULT_CAPABILITIES,
                                                            *spec.capabilities_add]))
            env[MOUNTS_ENV] = ",".join(m.target for m in spec.mounts)
            if instance.external:
                # What the agent's container provider reads from the host's docker daemon (`docker
                # info` Name): a process has no such daemon to ask (lab.agent.hostname).
                env[INSTANCE_HOSTNAME_ENV] = instance.os_hostname
        return env

    def _awsvpc_env(self, env: dict[str, str], instance: ContainerInstance, task: Task,
                    spec: ContainerSpec) -> None:
        """An awsvpc task on an instance (docs/awsvpc.md#on-the-local-backend). Its ENI reaches IMDS
        as the instance does (one hop), unless the instance's ECS agent has ECS_AWSVPC_BLOCK_IMDS=true:
        then the task's namespace has no route to 169.254.169.254, and here every SDK and the docs'
        curl line are pointed at an address of the task's own where nothing listens. The task's
        "localhost" is its own namespace, not the instance's: a process has none, so the tracer's and
        the DogStatsD client's localhost (their default) become the task's address, where no agent
        listens, as in the task's namespace on EC2."""
        address = self._task_address(task)
        if instance.awsvpc_block_imds:
            env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = f"http://{address}:9"
        if is_lab_image(spec.image):
            # Unset, DD_AGENT_HOST means localhost to the tracer and the DogStatsD client alike; an
            # unset DD_DOGSTATSD_HOST follows DD_AGENT_HOST (which an entryPoint line may still
            # export), so it is rewritten only when it names localhost itself.
            if env.get("DD_AGENT_HOST", "localhost") in ("localhost", "127.0.0.1"):
                env["DD_AGENT_HOST"] = address
            if env.get("DD_DOGSTATSD_HOST") in ("localhost", "127.0.0.1"):
                env["DD_DOGSTATSD_HOST"] = address

    def _task_address(self, task: Task) -> str:
        """The loopback address standing for an awsvpc task's ENI (its network namespace)."""
        with self._lock:
            address = self._task_addresses.get(task.arn)
            if address is None:
                address = self._task_addresses[task.arn] = self._container_ip()
            return address

    def _log_router_env(self, env: dict[str, str], container: Container, address: str) -> None:
        """Where a FireLens log router listens, on EC2 and Fargate alike: its forward input's address
        and the unix socket ECS puts in the task's shared volume. The socket's directory is named
        by the short container id: a unix socket path is limited to 107 bytes, which the container's
        docker name under a pytest run directory exceeds."""
        env["LAB_APP_BIND"] = address
        router_dir = self.run_dir / "firelens" / container.docker_id[:12]
        router_dir.mkdir(parents=True, exist_ok=True)
        socket_path = router_dir / "fluent.sock"
        if len(os.fsencode(socket_path)) > 107:
            raise UnsupportedField(f"log router {container.name!r}: its socket path {socket_path} is longer "
                                   "than a unix socket allows (107 bytes): use a shorter LAB_HOME")
        env[ROUTER_SOCKET_ENV] = str(socket_path)

    def _fargate_container_env(self, env: dict[str, str], instance: ContainerInstance, task: Task,
                               container: Container, spec: ContainerSpec) -> dict[str, str]:
        """What Fargate puts in a container: task metadata v3/v4 URIs, AWS_ECS_FARGATE, the region;
        no metadata file and no IMDS (169.254.169.254 is unreachable from a Fargate task). Here
        every AWS SDK is pointed at an address of the task's own where nothing listens, so a lookup
        fails as on Fargate and never reaches the host's own 169.254.169.254."""
        from lab.fakes.ecs_metadata.model import container_env

        env.update(container_env(instance, task, container, base_url=self.task_metadata_url,
                                 relative_credentials=False))
        env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = f"http://{instance.private_ip}:{NOTHING_LISTENS_PORT}"
        env.setdefault("AWS_DEFAULT_REGION", instance.region)
        env.setdefault("AWS_REGION", instance.region)
        env.setdefault("HOSTNAME", f"ip-{instance.private_ip.replace('.', '-')}.ec2.internal")
        localhost = instance.private_ip
        if spec.log_router_config is not None:
            # FireLens on Fargate: the router listens in the task's namespace, i.e. its address here.
            self._log_router_env(env, container, localhost)
        if is_lab_image(spec.image):
            env.setdefault("LAB_APP_BIND", localhost)
            port_file = self.run_dir / "ports" / f"{container.docker_name}.port"
            port_file.parent.mkdir(parents=True, exist_ok=True)
            port_file.unlink(missing_ok=True)
            env.setdefault("LAB_APP_PORT_FILE", str(port_file))
            # The task's containers share one network namespace, so an app's "localhost" is the
            # agent sidecar's. On loopback the task's namespace is its own address: the tracer's and
            # DogStatsD client's default host (localhost) means that address.
            for key in ("DD_AGENT_HOST", "DD_DOGSTATSD_HOST"):
                if env.get(key, "localhost") in ("localhost", "127.0.0.1"):
                    env[key] = localhost
        if is_agent_image(spec.image):
            env.setdefault("LAB_AGENT_LOCALHOST", localhost)
            env.setdefault("LAB_AGENT_HOST_ADDRESSES", localhost)
            env.setdefault("LAB_AGENT_DOCKER_SOCKET", "")
            conf = self.run_dir / "containers" / container.docker_name / "etc-datadog-agent"
            env.setdefault("DD_AUTH_TOKEN_FILE_PATH", str(conf / "auth_token"))
        return env

    def _argv_and_probe(self, instance: ContainerInstance, spec: ContainerSpec,
                        env: dict[str, str]) -> tuple[list[str], Probe | None]:
        if is_agent_image(spec.image):
            image = spec.image
            if agent_kind(image) == DATADOG and self.stack.agent_image != AGENT_IMAGE:
                # The agent chosen for this lab (LAB_AGENT_IMAGE) runs for every Datadog agent image,
                # a user's own task definitions included, as on the docker backend: a suite run
                # "against serverless-compat" must not pass on the emulated agent standing in.
                image = self.stack.agent_image
            kind = local_command(image, env)
            if self.stack.agent_command:
                argv = ["sh", "-c", self.stack.agent_command]
            elif kind is not None:
                # Another agent kind the lab can run as a process (serverless-compat): its own argv,
                # env, and `agent` command on the container's PATH.
                argv = kind.argv
                env.update(kind.env)
                shim_dir = self.run_dir / "bin" / spec.name / instance.instance_id
                shim_dir.mkdir(parents=True, exist_ok=True)
                (shim_dir / "agent").write_text("#!/bin/sh\n" + kind.agent_shim)
                (shim_dir / "agent").chmod(0o755)
                env["PATH"] = os.pathsep.join([str(shim_dir), env.get("PATH", "")])
            elif spec.entry_point or spec.command:
                argv = [*(spec.entry_point or []), *(spec.command or [])]
            else:
                argv = [sys.executable, "-m", "lab.agent", "run"]
            return argv, agent_probe(env)
        if spec.log_router_config is not None:
            return self._log_router_argv(spec, env)
        if is_fips_proxy_image(spec.image):
            # The lab's stand-in for datadog/fips-proxy, with the sidecar's settings (its env, as the
            # docs' FIPS task definition sets them; the instance agent rewrites 127.0.0.1 to the
            # agent's own "localhost" address here).
            start = env.get("DD_FIPS_PORT_RANGE_START", "9803")
            address = env.get("DD_FIPS_LOCAL_ADDRESS", "127.0.0.1")
            argv = [sys.executable, "-m", "lab.fakes.fips_proxy", "--upstream", env["LAB_INTAKE_URL"],
                    "--local-address", address, "--port-range-start", start]
            return argv, tcp_probe(address, int(start))
        # The lab image has no ENTRYPOINT and runs the sample web app by default (docker semantics:
        # entryPoint replaces it, command is appended).
        argv = [*(spec.entry_point or []), *(spec.command or [])] or ["python", "-m", "lab.apps", "web"]
        if any("lab.apps" in part for part in argv):
            return argv, file_probe(env["LAB_APP_PORT_FILE"])
        return argv, None

    def _log_router_argv(self, spec: ContainerSpec, env: dict[str, str]) -> tuple[list[str], Probe]:
        """FireLens's log router: fluent-bit with the configuration ECS generated for the task, or
        the lab's stand-in (lab.log_router) run the same way where no fluent-bit is installed. A
        process shares the host's filesystem and addresses, so the forward inputs move to this
        container's own socket path and address (ECS: /var/run/fluent.sock in a task volume, and
        0.0.0.0 of the task's network)."""
        assert spec.log_router_config is not None
        address = env["LAB_APP_BIND"]
        socket_path = env[ROUTER_SOCKET_ENV]
        text = re.sub(r"(?im)^(\s*unix_path\s+)\S+", lambda m: m.group(1) + socket_path,
                      spec.log_router_config)
        text = re.sub(r"(?im)^(\s*listen\s+)0\.0\.0\.0", lambda m: m.group(1) + address, text)
        conf = Path(socket_path).with_name("fluent-bit.conf")
        conf.write_text(text)
        binary = shutil.which("fluent-bit") or shutil.which("fluent-bit", path="/opt/fluent-bit/bin")
        argv = ([binary, "-c", str(conf)] if binary
                else [sys.executable, "-m", "lab.log_router", "-c", str(conf)])
        return argv, unix_probe(socket_path)

    def _container_ip(self) -> str:
        with self._lock:
            self._container_seq += 1
            seq = self._container_seq
        return f"{self.stack.subnet}.{3 + (seq - 1) // 254}.{(seq - 1) % 254 + 1}"

    # -- health checks and exits -------------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._monitor_stop.wait(0.1):
            with self._lock:
                running = list(self.tasks.values())
            for rt in running:
                for rc in list(rt.containers):
                    self._check_exit(rt, rc)
                    if (rc.spec.health_check and rc.process.running and not rc.checking
                            and time.monotonic() >= rc.next_health_at):
                        # Each check runs on its own thread: a slow one (timeout 5 s) delays nobody else.
                        rc.checking = True
                        threading.Thread(target=self._run_health_check, args=(rc,), daemon=True).start()

    def _check_exit(self, rt: RunningTask, rc: RunningContainer) -> None:
        code = rc.process.returncode
        if code is None or rc.container.known_status == "STOPPED":
            return
        rc.container.mark_stopped(code)
        self.events.append(f"{rc.process.name} exited with {code}")
        self.world.touch()
        # ECS: when an essential container stops, the task stops (its other containers are stopped).
        if rc.spec.essential and rt.task.desired_status != "STOPPED":
            self.events.append(f"task {rt.task.family} stopped: essential container {rc.spec.name} exited")
            threading.Thread(target=self.stop_task, args=(rt.task.arn,), daemon=True).start()

    def _run_health_check(self, rc: RunningContainer) -> None:
        try:
            self._health_check_once(rc)
        finally:
            rc.checking = False

    def _health_check_once(self, rc: RunningContainer) -> None:
        hc = rc.spec.health_check
        assert hc is not None
        kind, *args = hc.command
        argv = ["sh", "-c", " ".join(args)] if kind == "CMD-SHELL" else list(args)
        try:
            ok = subprocess.run(argv, env=rc.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                timeout=hc.timeout, start_new_session=True).returncode == 0
        except (subprocess.TimeoutExpired, OSError):
            ok = False
        # ECS (Docker's health check): HEALTHY on the first success; UNHEALTHY after `retries`
        # consecutive failures, not counting those within the start period before any success.
        if ok:
            rc.failures = 0
            rc.passed_once = True
            status = "HEALTHY"
        else:
            if rc.passed_once or time.monotonic() >= rc.started_at + hc.start_period:
                rc.failures += 1
            status = "UNHEALTHY" if rc.failures >= hc.retries else rc.container.health_status
        rc.next_health_at = time.monotonic() + hc.interval
        if status != rc.container.health_status and rc.process.running:
            rc.container.health_status = status
            self.world.touch()

    # -- reading -----------------------------------------------------------------------------------------
    def processes(self) -> list[ManagedProcess]:
        with self._lock:
            return [rc.process for rt in self.tasks.values() for rc in rt.containers]

    def _agent_container(self, n: int) -> RunningContainer | None:
        """Instance N's agent container (its task may also hold the FIPS proxy sidecar)."""
        rt = self.tasks.get(self.agent_tasks[n].arn) if n in self.agent_tasks else None
        if rt is None:
            return None
        return next((rc for rc in rt.containers if is_agent_image(rc.spec.image)), None)

    def agent_process(self, n: int) -> ManagedProcess:
        rc = self._agent_container(n)
        if rc is None:
            raise KeyError(f"instance {n} runs no agent")
        return rc.process

    def app_process(self, variant: str) -> ManagedProcess:
        return self.tasks[self.app_tasks[variant].arn].containers[0].process

    def apm_host(self, n: int) -> str:
        return self.stack.private_ip(n) if self.stack.has("apm_non_local") else self.stack.agent_localhost(n)

    def status(self) -> dict:
        """What `ecs-lab status --json` prints and the pytest plugin attaches to."""
        s = self.stack
        instances = []
        for inst in list(self.world.instances):
            n = inst.index
            agent_c = self._agent_container(n)
            instances.append({
                "index": n,
                "instance_id": inst.instance_id,
                "launch_type": inst.launch_type,
                "host_name": inst.os_hostname,
                "private_ip": inst.private_ip,
                "agent_localhost": s.agent_localhost(n),
                "imds_url": self.imds_urls.get(n),
                "imds_bridge_url": self.imds_bridge_urls.get(n),
                "ecs_endpoint": self.ecs_agent_urls.get(n),
                "apm_url": f"http://{inst.private_ip}:{s.ports.apm}",
                "dogstatsd": f"{inst.private_ip}:{s.ports.dogstatsd}",
                "agent_cmd_url": f"http://{s.agent_localhost(n)}:{s.ports.agent_cmd}",
                "agent": {
                    "task_arn": self.agent_tasks[n].arn if n in self.agent_tasks else None,
                    "container": agent_c.spec.name if agent_c else None,
                    "image": agent_c.spec.image if agent_c else None,
                    "pid": agent_c.process.pid if agent_c else None,
                    "status": agent_c.container.known_status if agent_c else "STOPPED",
                    "health": agent_c.container.health_status if agent_c else "UNKNOWN",
                    "log": str(agent_c.process.log_path) if agent_c else None,
                },
                "fips_proxy": (f"{s.agent_localhost(n)}:{s.ports.fips_start}" if s.has("fips") else None),
            })
        apps = {}
        for variant, task in self.app_tasks.items():
            rt = self.tasks.get(task.arn)
            # A task being started has no running container yet (status is read from other threads).
            rc = rt.containers[0] if rt and rt.containers else None
            apps[variant] = {
                "service": app_service(variant), "instance": rt.instance.index if rt else 1,
                "task_arn": task.arn, "task_family": task.family, "task_version": task.revision,
                "pid": rc.process.pid if rc else None,
                "status": rc.container.known_status if rc else "STOPPED",
                "docker_id": task.containers[0].docker_id,
                "url": self._app_url(rc) if rc else None,
                "log": str(rc.process.log_path) if rc else None,
            }
        first = instances[0] if instances else {}
        return {
            "backend": self.name,
            "pid": os.getpid(),
            "run_dir": str(self.run_dir),
            "cluster": self.world.cluster.name,
            "features": sorted(s.features),
            "intake_url": self.intake_url,
            "task_metadata_url": self.task_metadata_url,
            "egress_proxy_url": self.egress_proxy_url,
            "imds_url": first.get("imds_url"),
            "apm_url": first.get("apm_url"),
            "dogstatsd": first.get("dogstatsd"),
            "ecs_endpoint": first.get("ecs_endpoint"),
            "instances": instances,
            "apps": apps,
            "processes": {p.name: {"pid": p.pid, "log": str(p.log_path), "running": p.running}
                          for p in self.processes()},
            "started_in": self.started_in,
        }

    @staticmethod
    def _app_url(rc: RunningContainer) -> str | None:
        try:
            port = int(Path(rc.env["LAB_APP_PORT_FILE"]).read_text().strip())
        except (KeyError, OSError, ValueError):
            return None
        return f"http://{rc.env['LAB_APP_BIND']}:{port}"

    def exec_in_container(self, task_arn: str, container: str, argv: list[str],
                          timeout: float = 30) -> tuple[int, str]:
        """`docker exec` for a process: `argv` run with the container's environment and working
        directory, its PATH holding the container's commands (the `agent` shim among them)."""
        with self._lock:
            rt = self.tasks.get(task_arn)
        rc = next((c for c in rt.containers if c.spec.name == container), None) if rt else None
        if rc is None or not rc.process.running:
            raise LookupError(f"container {container!r} of task {task_arn} is not running")
        try:
            done = subprocess.run(argv, env=rc.env, cwd=rc.spec.working_directory, capture_output=True,
                                  text=True, timeout=timeout, start_new_session=True)
        except subprocess.TimeoutExpired as exc:
            return 124, f"{exc.stdout or ''}{exc.stderr or ''}timed out after {timeout}s"
        except OSError as exc:  # docker exec's "executable file not found": exit 127
            return 127, f"exec failed: {exc}"
        return done.returncode, done.stdout + done.stderr

    def follow_output(self, task_arn: str, container: str, on_lines: OutputLines,
                      stop: threading.Event) -> None:
        """The container's lines from its log file (stdout and stderr share it here, so every line
        is reported as stdout), after its own start line, until it has exited and all was read."""
        key = (task_arn, container)
        path = self._log_paths.get(key)
        if path is None:
            raise LookupError(f"container {container!r} of task {task_arn} was never started here")
        offset = self._log_offsets.get(key, 0)
        pending = b""
        start_line_seen = False
        with self._lock:
            rt = self.tasks.get(task_arn)
            rc = next((c for c in rt.containers if c.spec.name == container), None) if rt else None
        while True:
            # The process, not the task's record, says when the output is complete: a stopping task
            # leaves the record first, and its containers still write while they shut down.
            done = rc is None or not rc.process.running
            try:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    data = fh.read(1 << 20)
            except OSError:
                data = b""
            offset += len(data)
            pending += data
            *lines, pending = pending.split(b"\n")
            batch: list[tuple[str, str]] = []
            next_run = False
            for raw in lines:
                line = raw.decode("utf-8", "replace")
                if not start_line_seen and line.startswith(START_LINE_PREFIX):
                    start_line_seen = True
                    continue
                if line.startswith(START_LINE_PREFIX):
                    next_run = True  # the next run of this file: not this container's output
                    break
                batch.append(("stdout", line))
            if batch:
                on_lines(batch)
            if next_run:
                return
            if len(data) == 1 << 20:
                continue  # more is waiting: no pause
            if done or stop.is_set():
                if pending:
                    on_lines([("stdout", pending.decode("utf-8", "replace"))])
                return
            stop.wait(0.1)

    def container_logs(self, task_arn: str, container: str, lines: int = 50) -> str:
        from lab.backends.process import tail_file

        path = self._log_paths.get((task_arn, container))
        return tail_file(path, lines) if path else ""

    def _write_shims(self) -> None:
        """`agent` and `python` on the containers' PATH, as the agent image and lab image have them."""
        bin_dir = self.run_dir / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        shims = {
            "agent": f'exec {shlex.quote(sys.executable)} -m lab.agent "$@"\n',
            "python": f'exec {shlex.quote(sys.executable)} "$@"\n',
            "python3": f'exec {shlex.quote(sys.executable)} "$@"\n',
        }
        for name, body in shims.items():
            path = bin_dir / name
            path.write_text("#!/bin/sh\n" + body)
            path.chmod(0o755)


def agent_probe(env: dict[str, str]) -> Probe:
    """Ready when the agent's receivers are bound where it was told to bind them."""
    localhost = env.get("LAB_AGENT_LOCALHOST", "127.0.0.1")
    hosts = env.get("LAB_AGENT_HOST_ADDRESSES", "0.0.0.0").split(",")
    host = hosts[0] if env.get("DD_APM_NON_LOCAL_TRAFFIC", "true").lower() == "true" else localhost
    host = "127.0.0.1" if host == "0.0.0.0" else host
    if env.get("DD_APM_ENABLED", "true").lower() == "true":
        return tcp_probe(host, int(env.get("DD_APM_RECEIVER_PORT", "8126")))
    return udp_probe(localhost, int(env.get("DD_DOGSTATSD_PORT", "8125")))


def dump_status(backend: LocalBackend) -> str:
    return json.dumps(backend.status(), indent=2)


def _dependency_order(specs: list[ContainerSpec]) -> list[ContainerSpec]:
    names = {s.name for s in specs}
    done: list[ContainerSpec] = []
    placed: set[str] = set()
    pending = list(specs)
    while pending:
        progressed = False
        for spec in list(pending):
            if all(d in placed or d not in names for d, _ in spec.depends_on):
                done.append(spec)
                placed.add(spec.name)
                pending.remove(spec)
                progressed = True
        if not progressed:
            raise ValueError(f"dependsOn cycle among {[s.name for s in pending]}")
    return done
