"""The ECS service scheduler over moto's models, on a thread beside the front.

A DAEMON service gets exactly one task per ACTIVE container instance (instances registered later
included), a REPLICA service gets `desiredCount` tasks placed by the same rules as `RunTask`, and a
task it cannot place becomes a service event in ECS's words. It works under `ECS_LOCK`, as the
front does.

Service events, newest first, in the words of the ECS developer guide's "Service event messages":
`(service S) has started N tasks: (task ID) ...`, `(service S) has stopped N running tasks: (task
ID) ...`, `(service S) has reached a steady state.`, and for a task whose essential container's
health check (run by the instance's backend at the task definition's interval, timeout, retries and
startPeriod) turned UNHEALTHY: `(service S) (task ID) failed container health checks.`, after which
the task is stopped with the stopped reason `Task failed container health checks` and replaced.

moto keeps one model per process, so every embedded control plane of a process (each lab's own, a
test session's) schedules the same services. What a scheduler keeps about them is the process's
too: a cluster paused (a lab stopping, a test holding a rollout open) is paused for all of them
until it is resumed or deleted, and a service's launch back-off is one, whichever scheduler
launches. One service whose reconcile fails is recorded with its cluster and does not stop the
others'.
"""

from __future__ import annotations

import threading
from typing import Any

from lab.ecs import scheduler
from lab.ecs.moto_model import ECS_LOCK, MotoEcs
from lab.world import DEFAULT_ACCOUNT, DEFAULT_REGION

# The stopped reason ECS gives a service task its scheduler replaced for failing its health checks.
HEALTH_CHECK_STOPPED_REASON = "Task failed container health checks"

# Clusters no scheduler of this process touches, and each (service, instance)'s launch back-off
# (see the module docstring). Under ECS_LOCK.
_PAUSED: set[str] = set()
_LAUNCHES: dict[tuple[str, str], tuple[float, int]] = {}


def _task_id(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _tasks_list(arns: list[str]) -> str:
    return " ".join(f"(task {_task_id(a)})" for a in arns)


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def start_deployment(svc: Any, task_definition_arn: str) -> dict:
    """A new PRIMARY deployment of `task_definition_arn` (what UpdateService with a new revision, or
    forceNewDeployment, starts on ECS); the deployments before it become ACTIVE until the scheduler
    has replaced their tasks."""
    import secrets

    now = _now()
    for d in svc.deployments:
        d["status"] = "ACTIVE"
        d["updatedAt"] = now
    dep_id = f"ecs-svc/{secrets.randbelow(10**19):019d}"
    template = dict(svc.deployments[0]) if svc.deployments else {}
    template.update({
        "id": dep_id, "status": "PRIMARY", "taskDefinition": task_definition_arn,
        "desiredCount": svc.desired_count, "pendingCount": 0, "runningCount": 0, "failedTasks": 0,
        "createdAt": now, "updatedAt": now, "rolloutState": "IN_PROGRESS",
        "rolloutStateReason": f"ECS deployment {dep_id} in progress.",
    })
    svc.deployments.insert(0, template)
    return template


class ServiceScheduler:
    """The ECS service scheduler over moto's backend: DAEMON and REPLICA services (module docstring)."""

    def __init__(self, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT,
                 interval: float = 0.5) -> None:
        self.ecs = MotoEcs(region, account)
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # The latest errors, each with the cluster whose service raised it (None: the whole pass).
        self.errors: list[tuple[str | None, str]] = []
        # ECS throttles a service whose tasks keep failing to start ("service task launch
        # throttling"): relaunches on one instance back off, 1 s doubling up to 30 s here.
        self._launches = _LAUNCHES
        # Clusters whose lab is stopping: their services are left alone (the scheduler is shared by
        # every lab of the process; stopping it for one lab would stop it for all). The set is the
        # process's, as moto's model is: another control plane's scheduler must not go on with them.
        self.paused: set[str] = _PAUSED

    def pause(self, cluster: str) -> None:
        """Stop relaunching `cluster`'s tasks (its lab is stopping them), in every scheduler of the
        process; other clusters go on."""
        with ECS_LOCK:
            self.paused.add(cluster)

    def resume(self, cluster: str) -> None:
        """Schedule `cluster` again (a lab starting on it; its deletion does it too)."""
        with ECS_LOCK:
            self.paused.discard(cluster)
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> ServiceScheduler:
        self._thread = threading.Thread(target=self._run, name="ecs-service-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.reconcile()
            except Exception as exc:  # noqa: BLE001 - keep scheduling; the error is kept for status
                self._error(None, exc)

    def _error(self, cluster: str | None, exc: Exception) -> None:
        self.errors.append((cluster, repr(exc)))
        del self.errors[:-20]

    def errors_for(self, clusters: set[str]) -> list[str]:
        """The recent errors of these clusters' services, and of whole passes, oldest first."""
        return [text for cluster, text in self.errors if cluster is None or cluster in clusters]

    def reconcile(self) -> None:
        with ECS_LOCK:
            b = self.ecs.backend
            for svc in list(b.services.values()):
                # Labs in one process share the control plane, each its own cluster: a service left
                # in moto's model by a cluster already deleted has nothing to run on (ECS deletes a
                # cluster's services with it), and must not fail the reconcile of the others.
                if svc.cluster_name not in self.paused and svc.cluster_name in b.clusters:
                    try:
                        self._reconcile_service(svc)
                    except Exception as exc:  # noqa: BLE001 - one service must not stop the others'
                        self._error(svc.cluster_name, exc)

    def _task_tags(self, svc: Any) -> list[dict]:
        """The tags a service's tasks get: its own or its task definition's, by `propagateTags`."""
        if svc.propagate_tags == "SERVICE":
            return list(svc.tags or [])
        if svc.propagate_tags == "TASK_DEFINITION":
            return list(self.ecs.backend.describe_task_definition(svc.task_definition).tags or [])
        return []

    def _reconcile_service(self, svc: Any) -> None:
        # With an EXTERNAL or CODE_DEPLOY controller the service's tasks come from its task sets,
        # which their owner creates (CreateTaskSet); ECS's scheduler launches none of its own.
        if (svc.deployment_controller or {}).get("type", "ECS") != "ECS":
            return
        group = f"service:{svc.name}"
        cluster = svc.cluster_name
        mine = [t for t in self.ecs.live_tasks(cluster) if t.group == group]
        if svc.status != "ACTIVE" or not svc.task_definition:
            for t in mine:
                self.ecs.stop(cluster, t.task_arn, "Service was deleted")
            svc.running_count = svc.pending_count = 0
            return
        # A task whose essential container failed its health check: ECS's scheduler stops and replaces it.
        unhealthy = [t for t in mine if t.last_status == "RUNNING" and t.desired_status != "STOPPED"
                     and getattr(t, "health_status", "UNKNOWN") == "UNHEALTHY"]
        for t in unhealthy:
            self._event(svc, f"(service {svc.name}) (task {_task_id(t.task_arn)}) failed container "
                             "health checks.")
            self.ecs.stop(cluster, t.task_arn, HEALTH_CHECK_STOPPED_REASON)
        if unhealthy:
            self._event(svc, f"(service {svc.name}) has stopped {len(unhealthy)} running tasks: "
                             f"{_tasks_list([t.task_arn for t in unhealthy])}.")
            mine = [t for t in mine if t not in unhealthy]
        # A new revision in the service: replace tasks of the old one (a rolling deployment).
        for t in mine:
            if t.task_definition_arn != svc.task_definition and t.desired_status != "STOPPED":
                self.ecs.stop(cluster, t.task_arn, "Deployment replaced this task")
                self._event(svc, f"(service {svc.name}) has stopped 1 running tasks: "
                                 f"(task {_task_id(t.task_arn)}).")
        mine = [t for t in mine if t.task_definition_arn == svc.task_definition]
        # An EXTERNAL service runs on the external instances only; any other, on EC2 instances only.
        views = self.ecs.views_for_launch_type(cluster, svc.launch_type)
        running = {t.task_arn for t in mine if t.last_status == "RUNNING"}
        started_by = svc.deployments[0]["id"] if svc.deployments else "ecs-svc"
        needs = self.ecs.needs_of(svc.task_definition)
        if svc.scheduling_strategy == "DAEMON":
            for arn in scheduler.daemon_surplus(group, views):
                self.ecs.stop(cluster, arn, "Daemon service runs one task per instance")
            active = [v for v in views if v.status == "ACTIVE"]
            svc.desired_count = len(active)
            for view in active:
                if any(t.group == group and t.arn in running for t in view.tasks):
                    self._launches.pop((svc.arn, view.arn), None)
            for view in scheduler.daemon_gaps(group, views):
                why = scheduler.check_fit(view, needs)
                if why:
                    self._event(svc, scheduler.Placement(failures=[why]).service_event(svc.name))
                    continue
                if not self._may_launch(svc, view.arn):
                    continue
                self._started(svc, self.ecs.start_on(cluster, svc.task_definition, [view.arn],
                                                     started_by=started_by, group=group,
                                                     tags=self._task_tags(svc),
                                                     launch_type=self._launch_type(svc),
                                                     network_configuration=svc.network_configuration))
        else:
            missing = svc.desired_count - len(mine)
            if running and len(running) == len(mine):
                self._launches.pop((svc.arn, ""), None)
            if missing > 0 and self._on_fargate(svc):
                # Fargate: no instance to place on; each task its own ENI in the service's subnets.
                if self._may_launch(svc, ""):
                    provider = self._on_fargate(svc)
                    self.ecs.start_fargate(cluster, svc.task_definition, missing,
                                           network_configuration=svc.network_configuration,
                                           started_by=started_by, group=group, tags=self._task_tags(svc),
                                           capacity_provider=(None if provider == "FARGATE-LAUNCH"
                                                              else provider))
            elif missing > 0 and self._may_launch(svc, ""):
                placement = scheduler.place(needs, views, missing, group=group,
                                            constraints=getattr(svc, "lab_placement_constraints", ()),
                                            strategy=getattr(svc, "lab_placement_strategy", ()))
                if placement.placed:
                    self._started(svc, self.ecs.start_on(cluster, svc.task_definition, placement.placed,
                                                         started_by=started_by, group=group,
                                                         tags=self._task_tags(svc),
                                                         launch_type=self._launch_type(svc),
                                                         network_configuration=svc.network_configuration))
                if placement.failures and len(placement.placed) < missing:
                    self._event(svc, placement.service_event(svc.name)
                                or scheduler.Placement(failures=placement.failures).service_event(svc.name))
            elif missing < 0:
                for t in sorted(mine, key=lambda t: t.task_arn)[:(-missing)]:
                    self.ecs.stop(cluster, t.task_arn, "Service scaled in")
        mine = [t for t in self.ecs.live_tasks(cluster) if t.group == group]
        svc.running_count = sum(1 for t in mine if t.last_status == "RUNNING")
        svc.pending_count = sum(1 for t in mine if t.last_status != "RUNNING")
        self._settle_deployments(svc, mine)
        healthy = all(getattr(t, "health_status", "UNKNOWN") != "UNHEALTHY" for t in mine)
        if mine and svc.pending_count == 0 and svc.running_count == svc.desired_count and healthy \
                and svc.deployments and svc.deployments[0].get("rolloutState") == "COMPLETED":
            self._event(svc, f"(service {svc.name}) has reached a steady state.")

    def _settle_deployments(self, svc: Any, live: list[Any]) -> None:
        """Each deployment's counts are its own revision's tasks; the PRIMARY one is COMPLETED when it
        runs its desired count and no task of an older one is left, and the older ones are dropped
        then (ECS's deployment list), with the events ECS writes."""
        if not svc.deployments:
            return
        for i, d in enumerate(svc.deployments):
            tasks = [t for t in live if t.task_definition_arn == d.get("taskDefinition")]
            counts = (sum(1 for t in tasks if t.last_status == "RUNNING"),
                      sum(1 for t in tasks if t.last_status != "RUNNING"),
                      svc.desired_count if i == 0 else 0)
            if (d.get("runningCount"), d.get("pendingCount"), d.get("desiredCount")) != counts:
                d["runningCount"], d["pendingCount"], d["desiredCount"] = counts
                d["updatedAt"] = _now()
        primary = svc.deployments[0]
        old_left = any(t.task_definition_arn != primary.get("taskDefinition") for t in live)
        if primary.get("rolloutState") != "COMPLETED" and not old_left \
                and primary["runningCount"] >= svc.desired_count:
            primary["rolloutState"] = "COMPLETED"
            primary["rolloutStateReason"] = f"ECS deployment {primary['id']} completed."
            del svc.deployments[1:]
            self._event(svc, f"(service {svc.name}) (deployment {primary['id']}) deployment completed.")
            self._event(svc, f"(service {svc.name}) has reached a steady state.")

    def _started(self, svc: Any, tasks: list[Any]) -> None:
        if tasks:
            self._event(svc, f"(service {svc.name}) has started {len(tasks)} tasks: "
                             f"{_tasks_list([t.task_arn for t in tasks])}.")

    @staticmethod
    def _launch_type(svc: Any) -> str:
        return "EXTERNAL" if svc.launch_type == "EXTERNAL" else "EC2"

    @staticmethod
    def _on_fargate(svc: Any) -> str | None:
        """"FARGATE-LAUNCH" for a service with launch type FARGATE, the provider's name for one on a
        FARGATE/FARGATE_SPOT capacity provider, else None."""
        if svc.launch_type == "FARGATE":
            return "FARGATE-LAUNCH"
        for item in getattr(svc, "capacity_provider_strategy", None) or []:
            if item.get("capacityProvider") in ("FARGATE", "FARGATE_SPOT"):
                return item["capacityProvider"]
        return None

    def _may_launch(self, svc: Any, where: str) -> bool:
        import time

        key = (svc.arn, where)
        last, attempts = self._launches.get(key, (0.0, 0))
        now = time.monotonic()
        if attempts and now - last < min(2.0 ** (attempts - 1), 30.0):
            return False
        if attempts >= 3:
            self._event(svc, f"(service {svc.name}) is unable to consistently start tasks successfully. "
                             "For more information, see the Troubleshooting section of the Amazon ECS "
                             "Developer Guide.")
        self._launches[key] = (now, attempts + 1)
        return True

    @staticmethod
    def _event(svc: Any, message: str | None) -> None:
        from datetime import UTC, datetime

        if not message:
            return
        if svc.events and svc.events[0].get("message") == message:
            return
        svc.events.insert(0, {"id": f"{len(svc.events) + 1:08d}-lab", "createdAt": datetime.now(UTC),
                              "message": message})
        del svc.events[100:]
