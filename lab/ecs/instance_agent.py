"""The ECS container agent's role on one EC2 instance: run what the control plane assigns it.

On EC2 the ECS agent polls the control plane for the tasks placed on its container instance,
pulls secrets with the task execution role, starts the containers, and reports every state change
back (`SubmitTaskStateChange`). `InstanceAgent` does the same against the lab's control plane,
over the wire (localstack-client), and drives a backend's `TaskRunner`:

- a task placed here with desired status RUNNING -> translated (`lab.ecs.translate`), recorded in
  the world under the control plane's task ARN (so the ECS introspection API and task metadata
  describe the same task with the same id), started, then reported RUNNING;
- a task that cannot start (a secret ECS could not fetch, an unknown image, a field the lab cannot
  honour) -> reported STOPPED with the reason ECS would give, visible in `describe-tasks`
  (`stoppedReason`), never dropped;
- desired status STOPPED -> stopped and reported STOPPED;
- an essential container that exits -> the task stops ("Essential container in task exited"),
  and the service scheduler replaces it, as ECS does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from lab.ecs.agent_env import Redirects
from lab.ecs.awslogs import AwsLogsDriver, AwsLogsError
from lab.ecs.client import ControlPlaneClients
from lab.ecs.translate import (
    ControlPlaneSecrets,
    SecretFetcher,
    SecretResolutionError,
    attach_log_router,
    container_specs,
    world_task,
)
from lab.tasks import ContainerSpec, LabStopping, TaskRunner, UnsupportedField
from lab.world import ContainerInstance, Task, World, parse_iso

log = logging.getLogger("lab.ecs.instance_agent")

ESSENTIAL_EXITED = "Essential container in task exited"


@dataclass
class LocalTask:
    arn: str
    specs: list[ContainerSpec]
    reported: str = "PENDING"
    health: dict[str, str] = field(default_factory=dict)
    # Log drivers of its containers (awslogs), each fed by a thread following the container's output.
    log_drivers: list[AwsLogsDriver] = field(default_factory=list)
    log_threads: list[threading.Thread] = field(default_factory=list)
    log_stop: threading.Event = field(default_factory=threading.Event)


class TaskRefused(Exception):
    """A task that cannot start; the message is the stopped reason ECS would give."""


@dataclass
class StartFailure:
    task_arn: str
    reason: str


@dataclass
class InstanceAgent:
    """One per container instance. `with InstanceAgent(...)` runs the reconcile loop on a thread."""

    world: World
    instance: ContainerInstance
    runner: TaskRunner
    clients: ControlPlaneClients
    redirects: Redirects | None = None
    interval: float = 0.25
    on_error: Callable[[str], None] | None = None
    # Where container health goes (the ECS agent's telemetry channel); None keeps it in the world only.
    report_health: Callable[[str, dict[str, str], set[str]], None] | None = None
    # Where an awsvpc task's address goes once it runs (its ENI in the control plane); None: nowhere.
    report_address: Callable[[str, str], None] | None = None
    local: dict[str, LocalTask] = field(default_factory=dict)
    failures: list[StartFailure] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        # Set by `wake()` (the control plane's push of new assignments): the next pass runs now.
        self._wake = threading.Event()
        self.reconcile_passes = 0  # loop passes done (tests wait on it)
        self._thread: threading.Thread | None = None
        self._secrets = ControlPlaneSecrets(self.clients.secretsmanager, self.clients.ssm,
                                           getattr(self.clients, "iam", None))
        self._taskdefs: dict[str, dict] = {}
        # Tasks being started, each on its own thread: the ECS agent manages every task on its own
        # goroutine, so a slow container (a ddtrace app importing for seconds) delays no other task.
        self._starting: dict[str, threading.Thread] = {}
        self._starting_lock = threading.Lock()

    @property
    def cluster(self) -> str:
        return self.world.cluster.name

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> InstanceAgent:
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"ecs-instance-agent-{self.instance.index}")
        self._thread.start()
        return self

    def wake(self) -> None:
        """Reconcile now, not at the next poll: what ECS's ACS push of an assignment does."""
        self._wake.set()

    def stop(self, *, stop_tasks: bool = True) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)
        with self._starting_lock:
            starting = list(self._starting.values())
        for t in starting:
            t.join(timeout=30)
        if stop_tasks:
            for arn in list(self.local):
                try:
                    self._stop_local(arn, "Instance agent stopped")
                except Exception as exc:  # noqa: BLE001 - the control plane may be gone already
                    log.info("instance %s: could not report %s stopped: %r", self.instance.index, arn, exc)

    def __enter__(self) -> InstanceAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before the pass: a wake during it means another pass
            try:
                self.reconcile()
            except Exception as exc:  # noqa: BLE001 - a control plane hiccup must not end the agent
                log.warning("instance %s: reconcile failed: %r", self.instance.index, exc)
                if self.on_error:
                    self.on_error(repr(exc))
            self.reconcile_passes += 1
            self._wake.wait(self.interval)

    # -- one pass -------------------------------------------------------------------------------
    def reconcile(self) -> None:
        ecs = self.clients.ecs
        wanted = self._list(ecs, "RUNNING")
        for arn, desc in wanted.items():
            with self._starting_lock:
                new = (arn not in self.local and arn not in self._starting
                       and desc.get("lastStatus") != "STOPPED")
                if new:
                    starter = threading.Thread(target=self._start_thread, args=(desc,), daemon=True,
                                               name=f"ecs-instance-agent-{self.instance.index}-start")
                    self._starting[arn] = starter
            if new:
                starter.start()
        stopping = self._list(ecs, "STOPPED")
        for arn in list(self.local):
            if arn in self._starting:
                continue  # stopped on the next pass, once its start has settled
            if arn in stopping or arn not in wanted:
                self._stop_local(arn, None)
        self._watch_essential()
        self._watch_health()

    def _list(self, ecs, desired: str) -> dict[str, dict]:
        arns: list[str] = []
        kwargs = {"cluster": self.cluster, "containerInstance": self.instance.arn, "desiredStatus": desired}
        for page in ecs.get_paginator("list_tasks").paginate(**kwargs):
            arns.extend(page["taskArns"])
        if desired == "STOPPED":
            return {a: {} for a in arns if a in self.local}
        out: dict[str, dict] = {}
        for i in range(0, len(arns), 100):
            for t in ecs.describe_tasks(cluster=self.cluster, tasks=arns[i:i + 100],
                                        include=["TAGS"])["tasks"]:
                out[t["taskArn"]] = t
        return out

    def _taskdef(self, arn: str) -> dict:
        if arn not in self._taskdefs:
            resp = self.clients.ecs.describe_task_definition(taskDefinition=arn)
            self._taskdefs[arn] = resp["taskDefinition"]
        return self._taskdefs[arn]

    def _start_thread(self, desc: dict) -> None:
        try:
            self._start(desc)
        except Exception as exc:  # noqa: BLE001 - a control plane hiccup must not end the agent
            log.warning("instance %s: starting %s failed: %r", self.instance.index, desc["taskArn"], exc)
            if self.on_error:
                self.on_error(repr(exc))
        finally:
            with self._starting_lock:
                self._starting.pop(desc["taskArn"], None)

    def _task(self, desc: dict, td: dict, *, resolve_secret: SecretFetcher, redirects: Redirects | None,
              ec2_instance_id: str | None) -> tuple[list[ContainerSpec], Task]:
        """What the ECS agent does before it starts a task, on EC2 and on Fargate alike: translate the
        containers (secrets pulled), record the task, and generate the FireLens log router's
        configuration (with `ec2_instance_id` on EC2 only). Raises TaskRefused with ECS's reason."""
        group = desc.get("group", "")
        service = group.split(":", 1)[1] if group.startswith("service:") else ""
        try:
            specs = container_specs(td, resolve_secret=resolve_secret, redirects=redirects)
            # The container ARNs and tags of describe-tasks, so task metadata repeats them.
            task = world_task(td, arn=desc["taskArn"], service_name=service, described=desc)
            attach_log_router(td, specs, task, cluster=self.cluster, ec2_instance_id=ec2_instance_id,
                              redirects=redirects)
        except SecretResolutionError as exc:
            raise TaskRefused(str(exc)) from None
        except UnsupportedField as exc:
            raise TaskRefused(f"UnsupportedField: {exc}") from None
        return specs, task

    def _start(self, desc: dict) -> None:
        arn = desc["taskArn"]
        td = self._taskdef(desc["taskDefinitionArn"])
        try:
            specs, task = self._task(desc, td, resolve_secret=self._secrets.for_task(td),
                                     redirects=self.redirects, ec2_instance_id=self.instance.instance_id)
        except TaskRefused as exc:
            return self._refuse(arn, str(exc))
        # The docker daemon initialises a container's log driver before it starts it: a driver that
        # cannot start (an awslogs group that does not exist) fails the container.
        drivers: list[tuple[str, AwsLogsDriver]] = []
        try:
            for spec in specs:
                if spec.log_configuration and spec.log_configuration.driver == "awslogs":
                    drivers.append((spec.name, self._awslogs(spec, task)))
        except AwsLogsError as exc:
            for _, started in drivers:
                started.close()
            return self._refuse(arn, str(exc))
        self.world.add_task(self.instance, task)
        local = self.local[arn] = LocalTask(arn=arn, specs=specs, log_drivers=[d for _, d in drivers])
        try:
            self.runner.start_task(self.instance, task, specs)
        except LabStopping as exc:
            self._abandon(arn, str(exc))
            return
        except UnsupportedField as exc:
            self._fail_started(arn, f"UnsupportedField: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - the backend's reason becomes the stopped reason
            self._fail_started(arn, f"CannotStartContainerError: {exc}")
            return
        for name, driver in drivers:
            t = threading.Thread(target=self._ship_output, args=(arn, name, driver, local.log_stop),
                                 daemon=True, name=f"awslogs-{name}")
            local.log_threads.append(t)
            t.start()
        self._report(arn, "RUNNING")

    def _awslogs(self, spec: ContainerSpec, task: Task) -> AwsLogsDriver:
        assert spec.log_configuration is not None
        docker_id = task.container(spec.name).docker_id
        return AwsLogsDriver(self.clients.endpoint, self.instance.region, spec.log_configuration,
                             container=spec.name, task_arn=task.arn, docker_id=docker_id).start()

    def _ship_output(self, arn: str, container: str, driver: AwsLogsDriver, stop: threading.Event) -> None:
        follow = getattr(self.runner, "follow_output", None)
        try:
            if follow is None:
                log.warning("instance %s: the backend keeps no container output: %s's awslogs stream "
                            "stays empty", self.instance.index, container)
            else:
                follow(arn, container, driver.add, stop)
        except Exception as exc:  # noqa: BLE001 - a vanished container ends its stream
            log.info("instance %s: following %s of %s ended: %r", self.instance.index, container, arn, exc)
        finally:
            driver.close()

    def _refuse(self, arn: str, reason: str) -> None:
        log.warning("instance %s: task %s cannot start: %s", self.instance.index, arn, reason)
        self.failures.append(StartFailure(arn, reason))
        self.clients.ecs.submit_task_state_change(cluster=self.cluster, task=arn, status="STOPPED",
                                                  reason=reason)

    def _fail_started(self, arn: str, reason: str) -> None:
        try:
            self.runner.stop_task(arn)
        except Exception:  # noqa: BLE001 - best effort: it did not start properly anyway
            pass
        failed = self.local.pop(arn, None)
        for driver in failed.log_drivers if failed else []:
            driver.close()
        self._mark_world_stopped(arn)
        self._refuse(arn, reason)

    def _abandon(self, arn: str, reason: str) -> None:
        """A start the backend gave up because the lab is stopping: not a start failure of the
        task's (nothing to report in `failures`), only a task that stopped before it ran."""
        log.info("instance %s: task %s not started: %s", self.instance.index, arn, reason)
        abandoned = self.local.pop(arn, None)
        for driver in abandoned.log_drivers if abandoned else []:
            driver.close()
        self._mark_world_stopped(arn)
        try:
            self.clients.ecs.submit_task_state_change(cluster=self.cluster, task=arn, status="STOPPED",
                                                      reason=f"Task stopped: {reason}")
        except Exception as exc:  # noqa: BLE001 - the control plane may be stopping too
            log.info("instance %s: could not report %s stopped: %r", self.instance.index, arn, exc)

    def _stop_local(self, arn: str, reason: str | None) -> None:
        local = self.local.pop(arn, None)
        if local is None:
            return
        try:
            self.runner.stop_task(arn)
        finally:
            # The containers have stopped: their log drivers deliver what is left, then end.
            for t in local.log_threads:
                t.join(timeout=15)
            local.log_stop.set()
            self._mark_world_stopped(arn)
            self._report(arn, "STOPPED", reason or "")

    def _mark_world_stopped(self, arn: str) -> None:
        found = self.world.find_task(arn)
        if found:
            _, task = found
            task.desired_status = task.known_status = "STOPPED"
            for c in task.containers:
                if c.known_status != "STOPPED":
                    c.mark_stopped(c.exit_code)
            self.world.touch()

    def _watch_essential(self) -> None:
        for arn, local in list(self.local.items()):
            if arn in self._starting:
                continue
            found = self.world.find_task(arn)
            if not found:
                continue
            _, task = found
            essential = {s.name for s in local.specs if s.essential}
            exited = [c for c in task.containers if c.name in essential and c.known_status == "STOPPED"]
            if exited:
                c = exited[0]
                self._stop_local(arn, f"{ESSENTIAL_EXITED} ({c.name} exit code {c.exit_code})")

    def _watch_health(self) -> None:
        if self.report_health is None:
            return
        for arn, local in list(self.local.items()):
            found = self.world.find_task(arn)
            if not found:
                continue
            checked = {s.name for s in local.specs if s.health_check}
            health = {c.name: c.health_status for c in found[1].containers if c.name in checked}
            if health and health != local.health:
                local.health = health
                self.report_health(arn, health, {s.name for s in local.specs if s.essential})

    def _report(self, arn: str, status: str, reason: str = "") -> None:
        containers = []
        found = self.world.find_task(arn)
        if found:
            _, task = found
            if status == "RUNNING":
                task.known_status = "RUNNING"
                self.world.touch()
                addresses = task.containers[0].ipv4_addresses if task.containers else []
                if (task.network_mode == "awsvpc" and addresses and self.report_address is not None
                        and self.instance.launch_type != "FARGATE"):
                    self.report_address(arn, addresses[0])
            for c in task.containers:
                entry = {"containerName": c.name, "runtimeId": c.docker_id,
                         "status": "STOPPED" if status == "STOPPED" else (c.known_status or status)}
                if c.exit_code is not None:
                    entry["exitCode"] = c.exit_code
                if status == "RUNNING" and task.network_mode != "awsvpc" and c.ports:
                    # The ECS agent reports the host ports Docker published (bridge, host), which
                    # describe-tasks then shows as the container's networkBindings; an awsvpc task's
                    # ports are its ENI's, with no binding.
                    entry["networkBindings"] = [
                        {"bindIP": p.host_ip, "containerPort": p.container_port,
                         "hostPort": p.host_port if p.host_port is not None else p.container_port,
                         "protocol": p.protocol} for p in c.ports]
                containers.append(entry)
        kwargs = {"cluster": self.cluster, "task": arn, "status": status, "containers": containers}
        if found and status == "RUNNING":
            # The pull times the ECS agent keeps in its task state (and writes into task metadata).
            _, task = found
            kwargs["pullStartedAt"] = parse_iso(task.pull_started_at)
            kwargs["pullStoppedAt"] = parse_iso(task.pull_stopped_at or task.pull_started_at)
        if reason:
            kwargs["reason"] = reason
        self.clients.ecs.submit_task_state_change(**kwargs)
        if arn in self.local:
            self.local[arn].reported = status
