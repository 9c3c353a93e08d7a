"""What ECS generates for a task whose log router is FireLens with fluent-bit (AWS: "Custom log
routing" in the ECS developer guide; the generated file is shown in aws-samples/
amazon-ecs-firelens-under-the-hood, generated-configs/fluent-bit):

    [INPUT] forward on unix_path /var/run/fluent.sock       (the awsfirelens driver's socket)
    [INPUT] forward Listen 0.0.0.0 Port 24224               (fluent-logger libraries in app code)
    [FILTER] record_modifier Match *                        (with enable-ecs-log-metadata, default true)
        Record ec2_instance_id <id>   (EC2 launch type only)
        Record ecs_cluster <cluster name>
        Record ecs_task_arn <task ARN>
        Record ecs_task_definition <family>:<revision>
    @INCLUDE <config-file-value>                            (config-file-type "file")
    [OUTPUT] Match <container>-firelens*  + the container's logConfiguration.options, per app container

Logs of a container's stdout/stderr are tagged `<container>-firelens-<task id>`.

The lab's one change: a `redirect` (the lab intake's host and port) replaces every datadog output's
Host/Port and turns TLS off, as the deploy-time redirects do for the agent, so nothing leaves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lab.log_router.config import ConfigError, Section, render

FORWARD_PORT = 24224
UNIX_SOCKET = "/var/run/fluent.sock"


class FirelensError(ConfigError):
    """The task definition's FireLens settings are not something ECS would run."""


@dataclass(frozen=True)
class Redirect:
    host: str
    port: int


@dataclass(frozen=True)
class TaskIdentity:
    cluster: str
    task_arn: str
    family: str
    revision: int
    ec2_instance_id: str | None = None  # None on Fargate

    @property
    def task_id(self) -> str:
        return self.task_arn.rsplit("/", 1)[-1]


def router_container(taskdef: Mapping[str, Any]) -> dict[str, Any] | None:
    """The container definition with `firelensConfiguration`, checked; None when there is none."""
    routers = [c for c in taskdef.get("containerDefinitions", []) if c.get("firelensConfiguration")]
    users = [c["name"] for c in taskdef.get("containerDefinitions", [])
             if (c.get("logConfiguration") or {}).get("logDriver") == "awsfirelens"]
    if len(routers) > 1:
        raise FirelensError("only one container of a task may have firelensConfiguration: "
                            + ", ".join(c["name"] for c in routers))
    if not routers:
        if users:
            raise FirelensError(f"container(s) {', '.join(users)} use the awsfirelens log driver but no "
                                "container has a firelensConfiguration (the log router)")
        return None
    router = routers[0]
    fc = router["firelensConfiguration"]
    if fc.get("type") not in ("fluentbit", "fluentd"):
        raise FirelensError(f"firelensConfiguration.type {fc.get('type')!r} must be fluentbit or fluentd")
    if fc["type"] == "fluentd":
        raise FirelensError("firelensConfiguration.type fluentd is not supported by the lab (fluentbit is)")
    for name in users:
        if name == router["name"]:
            raise FirelensError(f"the log router {name!r} cannot send its own logs with awsfirelens")
    return router


def tag_for(container: str, task_id: str) -> str:
    return f"{container}-firelens-{task_id}"


def generate(taskdef: Mapping[str, Any], task: TaskIdentity, *, redirect: Redirect | None = None,
             forward_listen: str = "0.0.0.0", forward_port: int = FORWARD_PORT,
             unix_path: str | None = UNIX_SOCKET) -> str:
    """The fluent-bit configuration FireLens would write for `taskdef` running as `task`."""
    router = router_container(taskdef)
    if router is None:
        raise FirelensError("the task definition has no firelensConfiguration container")
    options = router["firelensConfiguration"].get("options") or {}
    sections: list[Section] = []
    if unix_path:
        sections.append(Section("INPUT", {"name": "forward", "unix_path": unix_path}))
    sections.append(Section("INPUT", {"name": "forward", "listen": forward_listen,
                                      "port": str(forward_port)}))
    metadata = str(options.get("enable-ecs-log-metadata", "true")).lower()
    if metadata not in ("true", "false"):
        raise FirelensError(f"enable-ecs-log-metadata must be true or false, not {metadata!r}")
    if metadata == "true":
        records = []
        if task.ec2_instance_id:
            records.append(("record", f"ec2_instance_id {task.ec2_instance_id}"))
        records += [("record", f"ecs_cluster {task.cluster}"), ("record", f"ecs_task_arn {task.task_arn}"),
                    ("record", f"ecs_task_definition {task.family}:{task.revision}")]
        sections.append(Section("FILTER", {"name": "record_modifier", "match": "*"}, records))
    text = render(sections)
    file_type = options.get("config-file-type")
    if file_type:
        if file_type != "file":
            raise FirelensError(f"config-file-type {file_type!r} is not supported by the lab (file is)")
        if not options.get("config-file-value"):
            raise FirelensError("config-file-type file needs config-file-value (a path in the router image)")
        text += f"@INCLUDE {options['config-file-value']}\n\n"
    outputs = []
    for c in taskdef.get("containerDefinitions", []):
        lc = c.get("logConfiguration") or {}
        if lc.get("logDriver") != "awsfirelens":
            continue
        opts = dict(lc.get("options") or {})
        if not opts.get("Name"):
            continue  # routed by the user's own config file only
        section = Section("OUTPUT", {"name": opts.pop("Name"), "match": f"{c['name']}-firelens*"})
        for key, value in opts.items():
            section.props[key.lower()] = str(value)
        if redirect is not None and section.name == "datadog":
            section.props.update({"host": redirect.host, "port": str(redirect.port), "tls": "off"})
        outputs.append(section)
    return text + render(outputs)
