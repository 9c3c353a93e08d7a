"""The ECS wire API as the lab serves it: a WSGI layer in front of moto's app, in the same process.

moto alone places a task by its own loose rules, drops a task silently on a port clash, and has no
`SubmitTaskStateChange` (the call the real ECS container agent reports task state with).
`EcsFront`:

- answers `RunTask`/`StartTask` with the lab's placement (`lab.ecs.scheduler`): refused
  placements come back in `failures` with ECS's reasons (RESOURCE:MEMORY, RESOURCE:PORTS, ...);
- starts new tasks in `PENDING` (moto starts them in RUNNING) with one container per definition;
- implements `SubmitTaskStateChange`, so the lab's instance agents report PENDING -> RUNNING ->
  STOPPED over the wire like the ECS agent does;
- filters `ListTasks` by `serviceName` and defaults it to `desiredStatus=RUNNING`, as ECS does.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from lab.ecs import fargate, scheduler
from lab.ecs.assignments import ASSIGNMENTS
from lab.ecs.moto_model import ECS_LOCK, FARGATE_PROVIDERS, MotoEcs, taskdef_dict
from lab.ecs.service_scheduler import start_deployment
from lab.world import DEFAULT_REGION

ECS_TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
_REGION_RE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")
# ECS's InvalidParameterException text for `assignPublicIp: ENABLED` on a launch other than Fargate: a
# task ENI on an EC2 instance gets no public address (developer guide, "Allocate a network interface
# for an Amazon ECS task"); the text as the real service answers it in public reports (aws/aws-cdk
# issue 13348, hashicorp/waypoint issue 643, both create-service on EC2).
PUBLIC_IP_NOT_SUPPORTED = "Assign public IP is not supported for this launch type."



def _task_definition_arn(ecs: MotoEcs, ref: str | None) -> str | None:
    """A service's task definition as an ARN (moto keeps what UpdateService was given: a family, a
    family:revision or an ARN)."""
    if not ref:
        return None
    try:
        return ecs.backend.describe_task_definition(ref).arn
    except Exception:  # noqa: BLE001 - moto's own error answers the call; compare as given
        return ref

class EcsFront:
    """WSGI middleware in front of moto's app (see the module docstring)."""

    def __init__(self, app: Callable, *, on_change: Callable[[], None] = lambda: None,
                 on_reset: Callable[[], Callable[[], None]] | None = None,
                 on_deleted: Callable[[str, dict], None] = lambda action, params: None) -> None:
        self.app = app
        self.on_change = on_change
        # Told of each DeleteCluster / DeregisterContainerInstance that succeeded: what the lab owns
        # and a user removed is no longer the lab's to keep or to miss.
        self.on_deleted = on_deleted
        # Called before moto's reset; what it returns is called after, under the same lock, so no
        # ECS call (an instance agent's poll) sees the lab's records missing in between.
        self.on_reset = on_reset

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/moto-api/reset" and self.on_reset is not None:
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            with ECS_LOCK:
                after = self.on_reset()
                status, headers, out = self._forward(environ, body)
                after()
            self.on_change()
            start_response(status, headers)
            return [out]
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
                if isinstance(params, dict) and params.get("task"):
                    ecs.stopped_before_attach(str(params["task"]))
                ASSIGNMENTS.publish()  # moto's own StopTask set desired STOPPED
            if action in ("DeleteCluster", "DeregisterContainerInstance") and status.startswith("200"):
                self.on_deleted(action, params if isinstance(params, dict) else {})
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

    @staticmethod
    def _moto_error(start_response: Callable, exc: Exception) -> list[bytes]:
        """moto's own exception as ECS's error: moto 5.x names the code `.code` (older `.error_type`);
        anything else moto raises (a KeyError for an unknown id) is the caller's bad parameter."""
        code = getattr(exc, "code", None) or getattr(exc, "error_type", None)
        if not isinstance(code, str) or not code:
            code = "InvalidParameterException"
        message = getattr(exc, "message", None) or str(exc)
        return EcsFront._client_error(start_response, code, message)

    # -- actions ----------------------------------------------------------------------------------
    def _launch_errors(self, p: dict, start_response: Callable) -> list[bytes] | None:
        """ECS's checks of the launch parameters, made before it looks at the cluster."""
        launch_type = p.get("launchType")
        if launch_type and launch_type not in ("EC2", "FARGATE", "EXTERNAL"):
            return self._client_error(start_response, "InvalidParameterException",
                                      "launch type should be one of [EC2,FARGATE,EXTERNAL]")
        if launch_type and p.get("capacityProviderStrategy"):
            return self._client_error(start_response, "InvalidParameterException",
                                      "Specifying both a launch type and capacity provider strategy is not "
                                      "supported. Remove one and try again.")
        return None

    def _launch(self, ecs: MotoEcs, p: dict, cluster: Any, td: Any,
                start_response: Callable) -> tuple[str, str | None] | list[bytes]:
        """(launch type, capacity provider) for new tasks, or ECS's error (API reference, RunTask):
        with neither a launch type nor a strategy the cluster's default strategy applies, and
        without one the launch type is EC2."""
        launch_type = p.get("launchType")
        strategy = p.get("capacityProviderStrategy") or []
        if not launch_type and not strategy:
            strategy = list(getattr(cluster, "default_capacity_provider_strategy", None) or [])
        provider = ""
        if strategy:
            # ECS spreads over the providers by weight after each one's base; the lab's EC2 providers
            # all stand for the same instances, so the first with a weight (or base) takes the tasks.
            chosen = next((s for s in strategy if int(s.get("weight") or 0) or int(s.get("base") or 0)),
                          strategy[0])
            provider = chosen.get("capacityProvider") or ""
        if launch_type == "FARGATE" or provider in FARGATE_PROVIDERS:
            why = fargate.launch_errors(
                {"compatibilities": list(getattr(td, "compatibilities", None) or ["FARGATE"])},
                p.get("networkConfiguration"), set(ecs.subnets()), p.get("schedulingStrategy"))
            if why:
                return self._client_error(start_response, "InvalidParameterException", why)
            return ("FARGATE", None) if launch_type else ("", provider)
        if td is not None and td.network_mode == "awsvpc" and not p.get("networkConfiguration"):
            return self._client_error(start_response, "InvalidParameterException",
                                      fargate.NO_NETWORK_CONFIGURATION)
        vpc = (p.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
        if isinstance(vpc, dict) and vpc.get("assignPublicIp") == "ENABLED":
            return self._client_error(start_response, "InvalidParameterException", PUBLIC_IP_NOT_SUPPORTED)
        if launch_type == "EXTERNAL":
            # ECS Anywhere: the definition must say it runs there (requiresCompatibilities).
            if td is not None and "EXTERNAL" not in (getattr(td, "requires_compatibilities", None) or []):
                return self._client_error(start_response, "InvalidParameterException",
                                          "Task definition does not support launch_type EXTERNAL.")
            return "EXTERNAL", None
        if not provider:
            return "EC2", None
        if provider not in ecs.backend.capacity_providers:
            return self._client_error(start_response, "InvalidParameterException",
                                      f"The specified capacity provider '{provider}' was not found.")
        return "", provider

    def _RunTask(self, ecs: MotoEcs, p: dict, environ: dict, body: bytes, start_response: Callable):
        refused = self._launch_errors(p, start_response)
        if refused:
            return refused
        count = p.get("count", 1)
        if not isinstance(count, int) or not 1 <= count <= 10:
            return self._client_error(start_response, "InvalidParameterException",
                                      "count must be between 1 and 10.")
        try:
            cluster = ecs.backend._get_cluster(p.get("cluster", "default"))
            td = ecs.backend.describe_task_definition(p["taskDefinition"])
        except Exception as exc:  # noqa: BLE001 - moto raises its own ServiceException subclasses
            return self._moto_error(start_response, exc)
        launch = self._launch(ecs, p, cluster, td, start_response)
        if isinstance(launch, list):
            return launch
        group = p.get("group") or f"family:{td.family}"
        if launch[0] == "FARGATE" or launch[1] in FARGATE_PROVIDERS:
            return self._start_fargate_and_reply(ecs, cluster.name, td.arn, p, count, group, environ,
                                                 start_response, capacity_provider=launch[1])
        needs = scheduler.TaskNeeds.from_task_definition(taskdef_dict(td))
        constraints = list(td.placement_constraints or []) + list(p.get("placementConstraints") or [])
        try:
            placement = scheduler.place(needs, ecs.views_for_launch_type(cluster.name, launch[0]), count,
                                        group=group, constraints=constraints,
                                        strategy=p.get("placementStrategy") or ())
        except ValueError as exc:
            return self._client_error(start_response, "InvalidParameterException", str(exc))
        return self._start_and_reply(ecs, cluster.name, td.arn, p, placement, group, environ,
                                     start_response, launch=launch)

    def _StartTask(self, ecs: MotoEcs, p: dict, environ: dict, body: bytes, start_response: Callable):
        try:
            cluster = ecs.backend._get_cluster(p.get("cluster", "default"))
            td = ecs.backend.describe_task_definition(p["taskDefinition"])
        except Exception as exc:  # noqa: BLE001
            return self._moto_error(start_response, exc)
        refs = p.get("containerInstances")
        if not isinstance(refs, list) or not refs:
            return self._client_error(start_response, "InvalidParameterException",
                                      "Container instances cannot be empty.")
        if len(refs) > 10:
            return self._client_error(start_response, "InvalidParameterException",
                                      "Up to 10 container instances can be specified.")
        if ((p.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}).get("assignPublicIp") \
                == "ENABLED":
            return self._client_error(start_response, "InvalidParameterException", PUBLIC_IP_NOT_SUPPORTED)
        needs = scheduler.TaskNeeds.from_task_definition(taskdef_dict(td))
        views = {v.short_id: v for v in ecs.instance_views(cluster.name)}
        placement = scheduler.Placement()
        for ref in refs:
            view = views.get(str(ref).rsplit("/", 1)[-1])
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
                                     start_response, launch=("EC2", None))

    def _start_and_reply(self, ecs: MotoEcs, cluster_name: str, td_arn: str, p: dict,
                         placement: scheduler.Placement, group: str, environ: dict,
                         start_response: Callable, *, launch: tuple[str, str | None]):
        try:
            tasks = ecs.start_on(cluster_name, td_arn, placement.placed, started_by=p.get("startedBy", ""),
                                 group=group, overrides=p.get("overrides"), tags=p.get("tags"),
                                 launch_type=launch[0], capacity_provider=launch[1],
                                 network_configuration=p.get("networkConfiguration")) \
                if placement.placed else []
        except Exception as exc:  # noqa: BLE001 - moto's own checks on the task it builds
            return self._moto_error(start_response, exc)
        described: list = []
        if tasks:
            # moto's own DescribeTasks renders the tasks, so the reply has every field it knows;
            # ECS's RunTask reply carries the tags, which DescribeTasks shows only when asked.
            body = json.dumps({"cluster": cluster_name, "tasks": [t.task_arn for t in tasks],
                               "include": ["TAGS"]}).encode()
            status, _, out = self._forward(environ, body, "DescribeTasks")
            if status.startswith("200"):
                described = json.loads(out).get("tasks", [])
        self.on_change()
        return self._reply(start_response, {"tasks": described,
                                            "failures": [f.as_ecs() for f in placement.failures]})

    def _start_fargate_and_reply(self, ecs: MotoEcs, cluster_name: str, td_arn: str, p: dict, count: int,
                                 group: str, environ: dict, start_response: Callable, *,
                                 capacity_provider: str | None):
        """RunTask on FARGATE: no container instance to place on, so no placement failures; each task
        gets its own ENI (moto's EC2) and the lab's Fargate agent runs it."""
        try:
            tasks = ecs.start_fargate(cluster_name, td_arn, count,
                                      network_configuration=p["networkConfiguration"],
                                      started_by=p.get("startedBy", ""), group=group,
                                      overrides=p.get("overrides"), tags=p.get("tags"),
                                      capacity_provider=capacity_provider)
        except Exception as exc:  # noqa: BLE001 - moto's own checks on the task it builds
            return self._moto_error(start_response, exc)
        body = json.dumps({"cluster": cluster_name, "tasks": [t.task_arn for t in tasks],
                           "include": ["TAGS"]}).encode()
        status, _, out = self._forward(environ, body, "DescribeTasks")
        described = (self._fargate_fields(ecs, json.loads(out).get("tasks", []))
                     if status.startswith("200") else [])
        self.on_change()
        return self._reply(start_response, {"tasks": described, "failures": []})

    @staticmethod
    def _fargate_fields(ecs: MotoEcs, described: list[dict]) -> list[dict]:
        """What ECS shows of a Fargate task and moto leaves out: its availability zone (its subnet's),
        connectivity once its ENI is attached, and no container instance."""
        for d in described:
            found = ecs.find_task(d.get("taskArn", ""))
            t = found[1] if found else None
            az = getattr(t, "lab_availability_zone", None) if t is not None else None
            if az is None:
                continue
            d["availabilityZone"] = az
            d.pop("containerInstanceArn", None)
            d["platformFamily"] = "Linux"
            if d.get("lastStatus") not in ("PROVISIONING", "STOPPED"):
                d["connectivity"] = "CONNECTED"
                d.setdefault("connectivityAt", d.get("createdAt"))
        return described

    def _DescribeTasks(self, ecs: MotoEcs, p: dict, environ: dict, body: bytes, start_response: Callable):
        status, headers, out = self._forward(environ, body)
        if not status.startswith("200"):
            start_response(status, headers)
            return [out]
        data = json.loads(out)
        data["tasks"] = self._fargate_fields(ecs, self._task_times(ecs, data.get("tasks", [])))
        return self._reply(start_response, data)

    @staticmethod
    def _task_times(ecs: MotoEcs, described: list[dict]) -> list[dict]:
        """What ECS's DescribeTasks shows of a task on a container instance and moto leaves out: its
        times (`createdAt`; once RUNNING `pullStartedAt`, `pullStoppedAt`, `startedAt`,
        `connectivityAt`; once STOPPED `stoppedAt`), its instance's availability zone and, when
        placed without a capacity provider, `launchType` (moto answers it empty)."""
        for d in described:
            found = ecs.find_task(d.get("taskArn", ""))
            if not found:
                continue
            cluster_name, t = found
            created = getattr(t, "lab_created_at", None)
            if created is not None:
                d.setdefault("createdAt", created)
            started = getattr(t, "lab_started_at", None)
            if started is not None:
                # The pull times the instance's agent reported with the task's state change, as ECS.
                d.setdefault("pullStartedAt", getattr(t, "lab_pull_started_at", None) or created or started)
                d.setdefault("pullStoppedAt", getattr(t, "lab_pull_stopped_at", None) or started)
                for key in ("startedAt", "connectivityAt"):
                    d.setdefault(key, started)
                d.setdefault("connectivity", "CONNECTED")
            stopped = getattr(t, "lab_stopped_at", None)
            if stopped is not None:
                d.setdefault("stoppedAt", stopped)
                d.setdefault("executionStoppedAt", stopped)
            if not d.get("launchType") and not d.get("capacityProviderName"):
                d.pop("launchType", None)
                if t.container_instance_arn:
                    d["launchType"] = "EC2"
            ci = ecs.backend.container_instances.get(cluster_name, {}).get(
                (t.container_instance_arn or "").rsplit("/", 1)[-1])
            zone = ci.attributes.get("ecs.availability-zone") if ci is not None else None
            if zone:  # an external instance has none
                d.setdefault("availabilityZone", zone)
        return described

    def _refuses_capacity(self, ecs: MotoEcs, p: dict, start_response: Callable) -> list[bytes] | None:
        """For CreateService/CreateTaskSet: moto validates the request; the lab refuses, as ECS's
        error and before anything is recorded, the capacity it has not got (Fargate, external)."""
        cluster = ecs.backend.clusters.get(str(p.get("cluster") or "default").rsplit("/", 1)[-1])
        if cluster is None or p.get("launchType") not in (None, "EC2", "FARGATE", "EXTERNAL"):
            return None  # moto's own error follows
        try:
            td = (ecs.backend.describe_task_definition(p["taskDefinition"])
                  if p.get("taskDefinition") else None)
        except Exception:  # noqa: BLE001 - moto's own error for an unknown definition follows
            return None
        # An awsvpc definition needs its network configuration on EC2 too (ECS's text as RunTask's).
        launch = self._launch(ecs, p, cluster, td, start_response)
        return launch if isinstance(launch, list) else None

    def _CreateService(self, ecs: MotoEcs, p: dict, environ: dict, body: bytes, start_response: Callable):
        refused = self._refuses_capacity(ecs, p, start_response)
        if refused:
            return refused
        vpc = (p.get("networkConfiguration") or {}).get("awsvpcConfiguration")
        if isinstance(vpc, dict) and vpc.get("subnets") and not vpc.get("securityGroups"):
            vpc["securityGroups"] = ecs.default_security_groups(vpc["subnets"][0])
            body = json.dumps(p).encode()
        # moto refuses the EXTERNAL launch type for services: recorded as EC2, then set back.
        external = p.get("launchType") == "EXTERNAL"
        if external:
            body = json.dumps({**p, "launchType": "EC2"}).encode()
        status, headers, out = self._forward(environ, body)
        if external and status.startswith("200"):
            data = json.loads(out)
            data.get("service", {})["launchType"] = "EXTERNAL"
            out = json.dumps(data, default=str).encode()
            headers = [(k, str(len(out)) if k.lower() == "content-length" else v) for k, v in headers]
        # moto keeps neither of these on a service; ECS's service scheduler places by them.
        if status.startswith("200"):
            cluster = str(p.get("cluster") or "default").rsplit("/", 1)[-1]
            svc = ecs.backend.services.get(f"{cluster}:{p.get('serviceName')}")
            if svc is not None:
                if external:
                    svc.launch_type = "EXTERNAL"
                svc.lab_placement_constraints = list(p.get("placementConstraints") or [])
                svc.lab_placement_strategy = list(p.get("placementStrategy") or [])
                # A new service has placed nothing yet: ECS counts a task pending once the scheduler
                # placed it (moto starts at desiredCount). The scheduler counts from here.
                svc.pending_count = svc.running_count = 0
                for d in svc.deployments:
                    d["pendingCount"] = d["runningCount"] = 0
            self.on_change()
        start_response(status, headers)
        return [out]

    def _UpdateService(self, ecs: MotoEcs, p: dict, environ: dict, body: bytes, start_response: Callable):
        cluster = str(p.get("cluster") or "default").rsplit("/", 1)[-1]
        svc = ecs.backend.services.get(f"{cluster}:{str(p.get('service', '')).rsplit('/', 1)[-1]}")
        before = _task_definition_arn(ecs, svc.task_definition) if svc is not None else None
        status, headers, out = self._forward(environ, body)
        after = _task_definition_arn(ecs, svc.task_definition) if svc is not None else None
        if status.startswith("200") and svc is not None and svc.deployments and (
            after != before or p.get("forceNewDeployment")
        ):
            # ECS starts a deployment (moto only renames the one it has): a new PRIMARY for the new
            # revision, the running one ACTIVE until its tasks are replaced (the scheduler settles it).
            start_deployment(svc, after or svc.task_definition)
            out = self._forward(environ, json.dumps({"cluster": cluster, "services": [svc.name]}).encode(),
                                "DescribeServices")[2]
            described = json.loads(out).get("services") or [{}]
            out = json.dumps({"service": described[0]}, default=str).encode()
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(out))))
        self.on_change()
        start_response(status, headers)
        return [out]

    def _CreateTaskSet(self, ecs: MotoEcs, p: dict, environ: dict, body: bytes, start_response: Callable):
        refused = self._refuses_capacity(ecs, p, start_response)
        if refused:
            return refused
        cluster = ecs.backend.clusters.get(str(p.get("cluster") or "default").rsplit("/", 1)[-1])
        before = set(ecs.backend.tasks.get(cluster.name if cluster else "", {}))
        status, headers, out = self._forward(environ, body)
        # ECS groups every task of a service, its task sets' included, as "service:<name>".
        service = str(p.get("service", "")).rsplit("/", 1)[-1]
        for arn, t in ecs.backend.tasks.get(cluster.name if cluster else "", {}).items():
            if arn not in before:
                t.group = f"service:{service}"
        start_response(status, headers)
        return [out]

    def _DescribeClusters(self, ecs: MotoEcs, p: dict, environ: dict, body: bytes, start_response: Callable):
        ecs.recount()
        return self._passthrough(environ, body, start_response)

    def _DescribeContainerInstances(self, ecs: MotoEcs, p: dict, environ: dict, body: bytes,
                                    start_response: Callable):
        ecs.recount()
        return self._passthrough(environ, body, start_response)

    def _RegisterContainerInstance(self, ecs: MotoEcs, p: dict, environ: dict, body: bytes,
                                   start_response: Callable):
        # ECS records the `versionInfo` the container agent registers with (describe-container-
        # instances shows it); moto answers a fixed 1.0.0 whatever was sent.
        status, headers, out = self._forward(environ, body)
        if status.startswith("200") and isinstance(p.get("versionInfo"), dict):
            data = json.loads(out)
            arn = data.get("containerInstance", {}).get("containerInstanceArn", "")
            for by_id in ecs.backend.container_instances.values():
                ci = by_id.get(arn.rsplit("/", 1)[-1])
                if ci is not None:
                    ci.version_info = {**ci.version_info, **p["versionInfo"]}
                    data["containerInstance"]["versionInfo"] = ci.version_info
                    out = json.dumps(data, default=str).encode()
                    headers = [(k, str(len(out)) if k.lower() == "content-length" else v) for k, v in headers]
        self.on_change()
        start_response(status, headers)
        return [out]

    def _RegisterTaskDefinition(self, ecs: MotoEcs, p: dict, environ: dict, body: bytes,
                                start_response: Callable):
        # ECS's server-side checks that moto skips (a container without image, no memory on EC2).
        from lab.ecs.taskdef import server_side_errors

        # A container without name or image is refused before the Fargate rules look at the task.
        problems = server_side_errors(p) + fargate.register_errors(p)
        if problems:
            return self._client_error(start_response, "ClientException", problems[0])
        required = p.get("requiresCompatibilities") or []
        if "EXTERNAL" not in required or "FARGATE" in required:
            return self._passthrough(environ, body, start_response)
        # moto takes any requirement but EC2 for Fargate's (network mode forced to awsvpc); an
        # EXTERNAL definition keeps its network mode (bridge by default) and is EC2-compatible too.
        status, headers, out = self._forward(environ, body)
        if status.startswith("200"):
            data = json.loads(out)
            arn = data["taskDefinition"]["taskDefinitionArn"]
            td = ecs.backend.describe_task_definition(arn)
            td.network_mode = p.get("networkMode") or "bridge"
            td.compatibilities = ["EC2", "EXTERNAL"]
            data["taskDefinition"].update(networkMode=td.network_mode, compatibilities=td.compatibilities)
            return self._reply(start_response, data)
        start_response(status, headers)
        return [out]

    def _SubmitTaskStateChange(self, ecs: MotoEcs, p: dict, environ: dict, body: bytes,
                               start_response: Callable):
        try:
            ecs.submit_state_change(p["task"], p.get("status", ""), p.get("reason", ""),
                                    p.get("containers") or [],
                                    pull_times=(p.get("pullStartedAt"), p.get("pullStoppedAt")))
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
