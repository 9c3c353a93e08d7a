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

from lab.ecs import scheduler
from lab.ecs.assignments import ASSIGNMENTS
from lab.ecs.moto_model import ECS_LOCK, MotoEcs, taskdef_dict
from lab.world import DEFAULT_REGION

ECS_TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
_REGION_RE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")


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
        needs = scheduler.TaskNeeds.from_task_definition(taskdef_dict(td))
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
        needs = scheduler.TaskNeeds.from_task_definition(taskdef_dict(td))
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
