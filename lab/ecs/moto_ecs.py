"""The ECS API as the lab serves it: moto's ECS, with what moto leaves out put back in front of it.

moto keeps ECS as data only (docs/control_plane.md#moto-and-localstack-as-found): it places a task by its own
loose rules, drops a task silently on a port clash, schedules nothing for a service, and has no
`SubmitTaskStateChange` (the call the real ECS container agent reports task state with). `EcsFront` is a WSGI
layer in front of moto's app, in the same process, that:

- answers `RunTask`/`StartTask` with the lab's placement (`lab.ecs.scheduler`): refused
  placements come back in `failures` with ECS's reasons (RESOURCE:MEMORY, RESOURCE:PORTS, ...);
- starts new tasks in `PENDING` (moto starts them in RUNNING) with one container per definition;
- implements `SubmitTaskStateChange`, so the lab's instance agents report PENDING -> RUNNING ->
  STOPPED over the wire like the ECS agent does;
- filters `ListTasks` by `serviceName` and defaults it to `desiredStatus=RUNNING`, as ECS does.

`ServiceScheduler` plays the ECS service scheduler: a DAEMON service gets exactly one task per
ACTIVE container instance (instances registered later included), a REPLICA service gets
`desiredCount` tasks placed by the same rules, and a task it cannot place becomes a service event
in ECS's words. Both work on moto's in-process backend under one lock.

`ASSIGNMENTS` plays ECS's Agent Communication Service: the real ECS agent holds a websocket on which
the control plane pushes task assignments, so a placed task starts at once. Every write that places
or stops a task publishes on it, and the lab's instance agents wake on it instead of waiting for
their next poll.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from lab.ecs import scheduler
from lab.world import DEFAULT_ACCOUNT, DEFAULT_REGION

ECS_TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
# One lock for every ECS call and every reconcile: moto's backend is plain dicts, not thread-safe.
ECS_LOCK = threading.RLock()
_REGION_RE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")


class AssignmentFeed:
    """Who wants to hear that tasks were placed or asked to stop (ACS's push, module docstring).
    Listeners must be quick and non-blocking: they run under `ECS_LOCK`, in the writer's thread."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Add a listener; the returned callable removes it."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    def publish(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener()


# One feed per process, as moto's backends are one per process.
ASSIGNMENTS = AssignmentFeed()


def ecs_backend(region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT) -> Any:
    from moto.ecs.models import ecs_backends

    return ecs_backends[account][region]


def _taskdef_dict(td: Any) -> dict:
    return {"networkMode": td.network_mode, "containerDefinitions": td.container_definitions,
            "cpu": td.cpu, "memory": td.memory, "family": td.family, "revision": td.revision}


class MotoEcs:
    """The lab's view of (and the few writes it makes to) moto's ECS backend for one region."""

    def __init__(self, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT) -> None:
        self.region = region
        self.account = account

    @property
    def backend(self) -> Any:
        return ecs_backend(self.region, self.account)

    # -- views ----------------------------------------------------------------------------------
    def needs_of(self, task_definition_arn: str) -> scheduler.TaskNeeds:
        return scheduler.TaskNeeds.from_task_definition(
            _taskdef_dict(self.backend.describe_task_definition(task_definition_arn)))

    def live_tasks(self, cluster_name: str) -> list[Any]:
        return [t for t in self.backend.tasks.get(cluster_name, {}).values()
                if t.last_status != "STOPPED" and t.desired_status != "STOPPED"]

    def instance_views(self, cluster_name: str) -> list[scheduler.InstanceView]:
        by_arn: dict[str, list[scheduler.PlacedTask]] = {}
        for t in self.live_tasks(cluster_name):
            if t.container_instance_arn:
                by_arn.setdefault(t.container_instance_arn, []).append(scheduler.PlacedTask(
                    arn=t.task_arn, needs=self.needs_of(t.task_definition_arn), group=t.group))
        views = []
        for ci in self.backend.container_instances.get(cluster_name, {}).values():
            reg = {r["name"]: r for r in ci.registered_resources}
            views.append(scheduler.InstanceView(
                arn=ci.container_instance_arn, ec2_instance_id=ci.ec2_instance_id, status=ci.status,
                agent_connected=ci.agent_connected,
                cpu=int(reg.get("CPU", {}).get("integerValue", scheduler.DEFAULT_INSTANCE_CPU)),
                memory=int(reg.get("MEMORY", {}).get("integerValue", scheduler.DEFAULT_INSTANCE_MEMORY)),
                reserved_tcp=frozenset(int(p) for p in reg.get("PORTS", {}).get("stringSetValue", [])),
                reserved_udp=frozenset(int(p) for p in reg.get("PORTS_UDP", {}).get("stringSetValue", [])),
                attributes=dict(ci.attributes), tasks=by_arn.get(ci.container_instance_arn, [])))
        return views

    # -- writes ---------------------------------------------------------------------------------
    def start_on(self, cluster_name: str, task_definition: str, instance_arns: list[str], *,
                 started_by: str = "", group: str | None = None, overrides: dict | None = None,
                 tags: list | None = None) -> list[Any]:
        """Create tasks on the given instances, in PENDING, one moto container per definition."""
        from moto.ecs.models import Container

        b = self.backend
        tasks = b.start_task(cluster_name, task_definition, instance_arns, overrides or {}, started_by,
                             tags, group)
        td = b.describe_task_definition(task_definition)
        for t in tasks:
            t.last_status = "PENDING"
            containers = []
            for cdef in td.container_definitions:
                c = Container(td)
                c.name, c.image = cdef.get("name"), cdef.get("image")
                c.cpu, c.memory = cdef.get("cpu"), cdef.get("memory")
                c.environment, c.command = cdef.get("environment"), cdef.get("command")
                c.container_arn = c.container_arn.replace(td.arn, t.task_arn.replace(":task/", ":container/"))
                c.task_arn = t.task_arn
                c.health_status = "UNKNOWN"
                containers.append(c)
            t.containers = containers
        if tasks:
            ASSIGNMENTS.publish()
        return tasks

    def find_task(self, task: str) -> tuple[str, Any] | None:
        tid = task.rsplit("/", 1)[-1]
        for cluster_name, tasks in self.backend.tasks.items():
            for arn, t in tasks.items():
                if arn.rsplit("/", 1)[-1] == tid:
                    return cluster_name, t
        return None

    def submit_state_change(self, task: str, status: str, reason: str = "",
                            containers: Iterable[dict] = ()) -> None:
        found = self.find_task(task)
        if not found:
            raise KeyError(task)
        cluster_name, t = found
        was_stopped = t.last_status == "STOPPED"
        t.last_status = status
        by_name = {c.name: c for c in t.containers}
        for rep in containers:
            c = by_name.get(rep.get("containerName"))
            if c is None:
                continue
            if rep.get("status"):
                c.last_status = rep["status"]
            if rep.get("runtimeId"):
                c.runtime_id = rep["runtimeId"]
            if rep.get("exitCode") is not None:
                c.exit_code = rep["exitCode"]
            if rep.get("reason"):
                c.reason = rep["reason"]
        if status == "STOPPED" and not was_stopped:
            t.desired_status = "STOPPED"
            t.stopped_reason = reason or t.stopped_reason
            self._release(cluster_name, t)

    def set_health(self, task: str, container_health: dict[str, str], essential: set[str]) -> None:
        """Container health as the agent saw it run (the ECS agent reports it over its private
        telemetry channel, not a public API); the task is HEALTHY when every essential container
        with a health check is, UNHEALTHY when one is not (developer guide, "task health")."""
        found = self.find_task(task)
        if not found:
            return
        t = found[1]
        for c in t.containers:
            if c.name in container_health:
                c.health_status = container_health[c.name]
        judged = [h for name, h in container_health.items() if name in essential and h != "UNKNOWN"]
        if any(h == "UNHEALTHY" for h in judged):
            t.health_status = "UNHEALTHY"
        elif judged and all(h == "HEALTHY" for h in judged):
            t.health_status = "HEALTHY"
        else:
            t.health_status = "UNKNOWN"

    def stop(self, cluster_name: str, task_arn: str, reason: str) -> None:
        """Ask for a task to stop (desired STOPPED); its agent reports STOPPED once it has."""
        t = self.backend.tasks.get(cluster_name, {}).get(task_arn)
        if t is None or t.desired_status == "STOPPED":
            return
        t.desired_status = "STOPPED"
        t.stopped_reason = reason
        ASSIGNMENTS.publish()

    def _release(self, cluster_name: str, t: Any) -> None:
        if not t.container_instance_arn or not t.resource_requirements:
            return
        ci = self.backend.container_instances.get(cluster_name, {}).get(
            t.container_instance_arn.rsplit("/", 1)[-1])
        if ci is None:
            return
        try:
            self.backend.update_container_instance_resources(ci, t.resource_requirements, removing=True)
        except ValueError:  # moto's own port bookkeeping already dropped it (StopTask)
            pass


class EcsFront:
    """WSGI middleware in front of moto's app (see the module docstring)."""

    def __init__(self, app: Callable, *, on_change: Callable[[], None] = lambda: None) -> None:
        self.app = app
        self.on_change = on_change

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(ECS_TARGET_PREFIX):
            return self.app(environ, start_response)
        action = target[len(ECS_TARGET_PREFIX):]
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        m = _REGION_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
        ecs = MotoEcs(region=m.group(1) if m else DEFAULT_REGION)
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = None
        handler = getattr(self, f"_{action}", None)
        with ECS_LOCK:
            if handler is not None and isinstance(params, dict):
                return handler(ecs, params, environ, body, start_response)
            status, headers, out = self._forward(environ, body)
            if action == "StopTask" and status.startswith("200"):
                ASSIGNMENTS.publish()  # moto's own StopTask set desired STOPPED
        if action in ("CreateService", "UpdateService", "DeleteService", "RegisterContainerInstance",
                      "DeregisterContainerInstance", "StopTask", "UpdateContainerInstancesState"):
            self.on_change()
        start_response(status, headers)
        return [out]

    # -- plumbing -------------------------------------------------------------------------------
    def _forward(self, environ: dict, body: bytes, target: str | None = None
                 ) -> tuple[str, list[tuple[str, str]], bytes]:
        env = dict(environ)
        env["wsgi.input"] = io.BytesIO(body)
        env["CONTENT_LENGTH"] = str(len(body))
        if target:
            env["HTTP_X_AMZ_TARGET"] = ECS_TARGET_PREFIX + target
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list, exc_info: Any = None) -> Callable:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        chunks = self.app(env, capture)
        try:
            out = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        return captured["status"], captured["headers"], out

    @staticmethod
    def _reply(start_response: Callable, payload: dict, status: str = "200 OK") -> list[bytes]:
        out = json.dumps(payload, default=str).encode()
        start_response(status, [("Content-Type", "application/x-amz-json-1.1"),
                                ("Content-Length", str(len(out)))])
        return [out]

    @staticmethod
    def _client_error(start_response: Callable, code: str, message: str) -> list[bytes]:
        return EcsFront._reply(start_response, {"__type": code, "message": message}, "400 Bad Request")

    # -- actions ----------------------------------------------------------------------------------
    def _RunTask(self, ecs: MotoEcs, p: dict, environ: dict, body: bytes, start_response: Callable):
        if (p.get("launchType") or "EC2") != "EC2":
            return self._passthrough(environ, body, start_response)
        try:
            cluster = ecs.backend._get_cluster(p.get("cluster", "default"))
            td = ecs.backend.describe_task_definition(p["taskDefinition"])
        except Exception as exc:  # noqa: BLE001 - moto raises its own ClientError subclasses
            return self._client_error(start_response, getattr(exc, "error_type", "ClientException"),
                                      getattr(exc, "message", str(exc)))
        needs = scheduler.TaskNeeds.from_task_definition(_taskdef_dict(td))
        group = p.get("group") or f"family:{td.family}"
        constraints = list(td.placement_constraints or []) + list(p.get("placementConstraints") or [])
        try:
            placement = scheduler.place(needs, ecs.instance_views(cluster.name), int(p.get("count") or 1),
                                        group=group, constraints=constraints,
                                        strategy=p.get("placementStrategy") or ())
        except ValueError as exc:
            return self._client_error(start_response, "InvalidParameterException", str(exc))
        return self._start_and_reply(ecs, cluster.name, td.arn, p, placement, group, environ,
                                     start_response)

    def _StartTask(self, ecs: MotoEcs, p: dict, environ: dict, body: bytes, start_response: Callable):
        try:
            cluster = ecs.backend._get_cluster(p.get("cluster", "default"))
            td = ecs.backend.describe_task_definition(p["taskDefinition"])
        except Exception as exc:  # noqa: BLE001
            return self._client_error(start_response, getattr(exc, "error_type", "ClientException"),
                                      getattr(exc, "message", str(exc)))
        needs = scheduler.TaskNeeds.from_task_definition(_taskdef_dict(td))
        views = {v.short_id: v for v in ecs.instance_views(cluster.name)}
        placement = scheduler.Placement()
        for ref in p.get("containerInstances") or []:
            view = views.get(ref.rsplit("/", 1)[-1])
            if view is None:
                placement.failures.append(scheduler.Failure(ref, "MISSING"))
                continue
            why = scheduler.check_fit(view, needs)
            if why:
                placement.failures.append(why)
            else:
                placement.placed.append(view.arn)
                view.tasks.append(scheduler.PlacedTask(arn="", needs=needs))
        group = p.get("group") or f"family:{td.family}"
        return self._start_and_reply(ecs, cluster.name, td.arn, p, placement, group, environ,
                                     start_response)

    def _start_and_reply(self, ecs: MotoEcs, cluster_name: str, td_arn: str, p: dict,
                         placement: scheduler.Placement, group: str, environ: dict,
                         start_response: Callable):
        tasks = ecs.start_on(cluster_name, td_arn, placement.placed, started_by=p.get("startedBy", ""),
                             group=group, overrides=p.get("overrides"), tags=p.get("tags")) \
            if placement.placed else []
        described: list = []
        if tasks:
            # moto's own DescribeTasks renders the tasks, so the reply has every field it knows.
            body = json.dumps({"cluster": cluster_name, "tasks": [t.task_arn for t in tasks]}).encode()
            status, _, out = self._forward(environ, body, "DescribeTasks")
            if status.startswith("200"):
                described = json.loads(out).get("tasks", [])
        self.on_change()
        return self._reply(start_response, {"tasks": described,
                                            "failures": [f.as_ecs() for f in placement.failures]})

    def _RegisterTaskDefinition(self, ecs: MotoEcs, p: dict, environ: dict, body: bytes,
                                start_response: Callable):
        # ECS's server-side checks that moto skips (a container without image, no memory on EC2).
        from lab.ecs.taskdef import server_side_errors

        problems = server_side_errors(p)
        if problems:
            return self._client_error(start_response, "ClientException", problems[0])
        return self._passthrough(environ, body, start_response)

    def _SubmitTaskStateChange(self, ecs: MotoEcs, p: dict, environ: dict, body: bytes,
                               start_response: Callable):
        try:
            ecs.submit_state_change(p["task"], p.get("status", ""), p.get("reason", ""),
                                    p.get("containers") or [])
        except KeyError:
            return self._client_error(start_response, "InvalidParameterException",
                                      f"The referenced task was not found: {p.get('task')}")
        self.on_change()
        return self._reply(start_response, {"acknowledgment": "ACK"})

    def _ListTasks(self, ecs: MotoEcs, p: dict, environ: dict, body: bytes, start_response: Callable):
        # ECS lists tasks whose desired status is RUNNING unless told otherwise.
        service = p.pop("serviceName", None)
        p.setdefault("desiredStatus", "RUNNING")
        status, headers, out = self._forward(environ, json.dumps(p).encode())
        if service and status.startswith("200"):
            data = json.loads(out)
            name = service.rsplit("/", 1)[-1]
            keep = []
            for arn in data.get("taskArns", []):
                found = ecs.find_task(arn)
                if found and found[1].group == f"service:{name}":
                    keep.append(arn)
            return self._reply(start_response, {"taskArns": keep})
        start_response(status, headers)
        return [out]

    def _passthrough(self, environ: dict, body: bytes, start_response: Callable):
        status, headers, out = self._forward(environ, body)
        start_response(status, headers)
        return [out]


class ServiceScheduler:
    """The ECS service scheduler over moto's backend: DAEMON and REPLICA services (module docstring)."""

    def __init__(self, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT,
                 interval: float = 0.5) -> None:
        self.ecs = MotoEcs(region, account)
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []
        # ECS throttles a service whose tasks keep failing to start ("service task launch
        # throttling"): relaunches on one instance back off, 1 s doubling up to 30 s here.
        self._launches: dict[tuple[str, str], tuple[float, int]] = {}

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

    def __enter__(self) -> ServiceScheduler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.reconcile()
            except Exception as exc:  # noqa: BLE001 - keep scheduling; the error is kept for status
                self.errors.append(repr(exc))
                del self.errors[:-20]

    def reconcile(self) -> None:
        with ECS_LOCK:
            b = self.ecs.backend
            for svc in list(b.services.values()):
                self._reconcile_service(svc)

    def _reconcile_service(self, svc: Any) -> None:
        group = f"service:{svc.name}"
        cluster = svc.cluster_name
        mine = [t for t in self.ecs.live_tasks(cluster) if t.group == group]
        if svc.status != "ACTIVE" or not svc.task_definition:
            for t in mine:
                self.ecs.stop(cluster, t.task_arn, "Service was deleted")
            svc.running_count = svc.pending_count = 0
            return
        # A new revision in the service: replace tasks of the old one (a rolling deployment).
        for t in mine:
            if t.task_definition_arn != svc.task_definition:
                self.ecs.stop(cluster, t.task_arn, "Deployment replaced this task")
        mine = [t for t in mine if t.task_definition_arn == svc.task_definition]
        views = self.ecs.instance_views(cluster)
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
                self.ecs.start_on(cluster, svc.task_definition, [view.arn], started_by=started_by,
                                  group=group)
        else:
            missing = svc.desired_count - len(mine)
            if running and len(running) == len(mine):
                self._launches.pop((svc.arn, ""), None)
            if missing > 0 and self._may_launch(svc, ""):
                placement = scheduler.place(needs, views, missing, group=group)
                if placement.placed:
                    self.ecs.start_on(cluster, svc.task_definition, placement.placed,
                                      started_by=started_by, group=group)
                if placement.failures and len(placement.placed) < missing:
                    self._event(svc, placement.service_event(svc.name)
                                or scheduler.Placement(failures=placement.failures).service_event(svc.name))
            elif missing < 0:
                for t in sorted(mine, key=lambda t: t.task_arn)[:(-missing)]:
                    self.ecs.stop(cluster, t.task_arn, "Service scaled in")
        mine = [t for t in self.ecs.live_tasks(cluster) if t.group == group]
        svc.running_count = sum(1 for t in mine if t.last_status == "RUNNING")
        svc.pending_count = sum(1 for t in mine if t.last_status != "RUNNING")
        for d in svc.deployments:
            d["runningCount"], d["pendingCount"], d["desiredCount"] = (
                svc.running_count, svc.pending_count, svc.desired_count)
            if svc.running_count >= svc.desired_count:
                d["rolloutState"] = "COMPLETED"

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
