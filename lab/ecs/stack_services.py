"""The lab's own stack, deployed the way users deploy on ECS: task definitions registered on the
control plane, the agent as a DAEMON service, each sample app as a REPLICA service.

`ecs-lab up` (and the pytest plugin's labs) go through here, so what runs is exactly what
`aws ecs list-services` / `describe-tasks` show, with the task ARNs the ECS introspection API and
task metadata serve:

- the agent: the docs' `datadog-agent-ecs-full.json` (APM + DogStatsD + processes, with its
  8126/tcp and 8125/udp host ports and `agent health` check), with the stack's feature switches and
  `--agent-env` set in its `environment` (`lab.ecs.agent_env.agent_settings`), as a user edits the
  docs' file; when that environment enables the OTLP receiver, its ports (4317/tcp, 4318/tcp) are
  published as host ports too, as a user who enables it adds them (docs/otlp.md#on-ecs); with the
  `fips` feature, the docs' FIPS definition's shape (host network mode, the
  `fips-proxy` sidecar); with the `npm` feature, the docs' NPM additions from
  `datadog-agent-sysprobe-ecs.json` (its capabilities, the debugfs volume and mount point,
  `DD_SYSTEM_PROBE_ENABLED=true`: docs/npm.md#the-task-definition). The lab's redirects (intake
  URLs, `.invalid` DD_SITE, egress proxy, each instance's IMDS and ECS agent endpoints) are not in
  it: instance agents apply them at deploy time (`lab.ecs.agent_env.Redirects`);
- the sample apps: `lab/apps/taskdefs/<variant>.json`, each with its own `DD_SERVICE`
  (`web-<variant>`, also its service name), family (`web-<variant>-task`) and container name
  (`app`), so the four variants are told apart at the intake.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.agent_images import SERVERLESS_COMPAT, agent_kind
from lab.ecs.agent_env import agent_settings, fips_proxy_settings, otlp_receiver_ports
from lab.stack import AGENT_SERVICE, EXTERNAL_AGENT_SERVICE, Stack, app_service

AGENT_TASKDEF_FILE = Path(__file__).parent / "taskdefs" / "datadog-agent-ecs-full.json"
APP_TASKDEF_DIR = Path(__file__).parent.parent / "apps" / "taskdefs"
def _env_list(env: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in env.items()]


AGENT_FIPS_TASKDEF_FILE = AGENT_TASKDEF_FILE.with_name("datadog-agent-ecs-fips.json")
AGENT_SYSPROBE_TASKDEF_FILE = AGENT_TASKDEF_FILE.with_name("datadog-agent-sysprobe-ecs.json")


def add_npm(td: dict) -> None:
    """What the docs' NPM section tells a user to add to an existing agent task definition, taken
    from their `datadog-agent-sysprobe-ecs.json`: the capabilities, the debugfs mount point and
    volume, and its system-probe setting."""
    sysprobe = json.loads(AGENT_SYSPROBE_TASKDEF_FILE.read_text())
    source = sysprobe["containerDefinitions"][0]
    c = next(x for x in td["containerDefinitions"] if x["name"] == source["name"])
    c["linuxParameters"] = {**(c.get("linuxParameters") or {}), **source["linuxParameters"]}
    debug = [m for m in source["mountPoints"] if m["sourceVolume"] == "debug"]
    c["mountPoints"] = [m for m in c.get("mountPoints") or [] if m["sourceVolume"] != "debug"] + debug
    td["volumes"] = [v for v in td.get("volumes") or [] if v["name"] != "debug"] + \
        [v for v in sysprobe["volumes"] if v["name"] == "debug"]
    env = {e["name"]: e["value"] for e in c.get("environment") or []}
    env.update({e["name"]: e["value"] for e in source["environment"]
                if e["name"].startswith("DD_SYSTEM_PROBE")})
    c["environment"] = _env_list(env)


def agent_task_definition(stack: Stack) -> dict:
    """The agent's task definition for this stack (see the module docstring)."""
    td = json.loads(AGENT_TASKDEF_FILE.read_text())
    c = td["containerDefinitions"][0]
    c["image"] = stack.agent_image
    p = stack.ports
    env = {e["name"]: e["value"] for e in c.get("environment") or []}
    env.update(agent_settings(stack))
    c["environment"] = _env_list(env)
    c["portMappings"] = [{"containerPort": p.apm, "hostPort": p.apm, "protocol": "tcp"},
                         {"containerPort": p.dogstatsd, "hostPort": p.dogstatsd, "protocol": "udp"}]
    # The OTLP receiver is reached like 8126: apps on the instance send to its private IP, which in
    # bridge mode only a published host port delivers to the agent's container.
    otlp = otlp_receiver_ports(env)
    c["portMappings"] += [{"containerPort": port, "hostPort": port, "protocol": "tcp"} for port in otlp]
    # The docs' check (interval 30, startPeriod 15) at the lab's shorter interval, so `status`
    # shows HEALTHY within seconds; ECS accepts intervals from 5 s. Its start period is the lab's
    # readiness bound: failures while the agent starts do not count (a passing check ends it at
    # once), so an agent that starts slowly on a loaded machine is not marked UNHEALTHY, which the
    # service scheduler answers, as ECS does, by replacing the task.
    c["healthCheck"] = {"command": ["CMD-SHELL", "agent health"],
                        "interval": max(5, int(stack.health_interval)), "timeout": 5, "retries": 3,
                        "startPeriod": min(300, max(15, int(stack.ready_timeout)))}
    if agent_kind(stack.agent_image) == SERVERLESS_COMPAT:
        # It has no `agent health` (its image answers 127, and ECS would replace a task whose
        # essential container stays unhealthy): checked, as a user of it would, by its trace
        # receiver accepting a connection - what its launcher also calls ready.
        probe = f"import socket; socket.create_connection(('127.0.0.1', {p.apm}), 2).close()"
        c["healthCheck"]["command"] = ["CMD-SHELL", f'python3 -c "{probe}"']
    if stack.has("fips"):
        # The docs' FIPS definition: the proxy sidecar shares the agent's network (host mode), so
        # the agent's 127.0.0.1 reaches it; its ports are the instance's, hence no portMappings on
        # the agent (host mode publishes nothing).
        fips = json.loads(AGENT_FIPS_TASKDEF_FILE.read_text())
        proxy = next(x for x in fips["containerDefinitions"] if x["name"] == "fips-proxy")
        proxy["environment"] = _env_list(fips_proxy_settings(stack))
        proxy["portMappings"] = [{"containerPort": p.fips_start + i, "protocol": "tcp"} for i in range(16)]
        td["networkMode"] = "host"
        c["portMappings"] = [{"containerPort": p.apm, "protocol": "tcp"},
                             {"containerPort": p.dogstatsd, "protocol": "udp"}] + \
            [{"containerPort": port, "protocol": "tcp"} for port in otlp]
        c["dependsOn"] = [{"containerName": "fips-proxy", "condition": "START"}]
        td["containerDefinitions"] = [proxy, c]
    if stack.has("npm"):
        add_npm(td)
    if stack.external_instances:
        # The docs' optional step for ECS Anywhere clusters: the same definition, declared
        # compatible with EXTERNAL (ECS then reports it compatible with EC2 and EXTERNAL).
        td["requiresCompatibilities"] = ["EXTERNAL"]
    return td


def app_task_definition(stack: Stack, variant: str) -> dict:
    """A sample app's task definition: the shipped file, with this variant's service name."""
    td = json.loads((APP_TASKDEF_DIR / f"{variant}.json").read_text())
    c = td["containerDefinitions"][0]
    service = app_service(variant)
    # The stack's own names (family `web-<variant>-task`, container `app`): what its scenarios
    # expect in the ECS tags (task_family, ecs_container_name) whichever way the stack started.
    td["family"] = f"{service}-task"
    c["name"] = "app"
    env = {e["name"]: e["value"] for e in c.get("environment") or []}
    env.update({"DD_SERVICE": service, "LAB_APP_VARIANT": variant,
                "DD_TRACE_AGENT_PORT": str(stack.ports.apm), "DD_DOGSTATSD_PORT": str(stack.ports.dogstatsd)})
    c["environment"] = _env_list(env)
    labels = dict(c.get("dockerLabels") or {})
    if "com.datadoghq.tags.service" in labels:
        labels["com.datadoghq.tags.service"] = service
        c["dockerLabels"] = labels
    return td


@dataclass
class StackDeployment:
    """What `deploy_stack` registered: task definition ARNs and service names, by role."""

    cluster: str
    agent_task_definition: str = ""
    agent_service: str = AGENT_SERVICE
    # The agent's DAEMON service on the ECS Anywhere hosts (launch type EXTERNAL), if the stack has any.
    external_agent_service: str = ""
    app_services: dict[str, str] = field(default_factory=dict)  # variant -> service name
    app_task_definitions: dict[str, str] = field(default_factory=dict)

    def service_names(self) -> list[str]:
        return [*self.agent_services(), *(s for s in self.app_services.values() if s)]

    def agent_services(self) -> list[str]:
        return [s for s in (self.agent_service, self.external_agent_service) if s]


def deploy_stack(ecs: Any, stack: Stack, cluster: str | None = None,
                 apps_on: str | None = None, agent_daemon: bool = True) -> StackDeployment:
    """Register the stack's task definitions and create its services on `ecs` (a boto3 ECS client
    of the control plane), exactly as `aws ecs register-task-definition` / `create-service` do.
    `apps_on`: the EC2 instance id the sample apps are placed on (a service placement constraint),
    so a scenario knows which instance's agent they report through."""
    cluster = cluster or stack.cluster
    out = StackDeployment(cluster=cluster)
    td = ecs.register_task_definition(**agent_task_definition(stack))["taskDefinition"]
    out.agent_task_definition = td["taskDefinitionArn"]
    if not agent_daemon or not stack.instances:
        # Something else starts the agent on each instance (user data's `aws ecs start-task`), or the
        # stack has no EC2 instance for it.
        out.agent_service = ""
    else:
        ecs.create_service(cluster=cluster, serviceName=AGENT_SERVICE,
                           taskDefinition=out.agent_task_definition, schedulingStrategy="DAEMON",
                           launchType="EC2")
    if stack.external_instances:
        # ECS places a service's tasks with one launch type: the external hosts get the agent through a
        # DAEMON service of their own, of the same task definition (the docs' "External" launch type).
        ecs.create_service(cluster=cluster, serviceName=EXTERNAL_AGENT_SERVICE,
                           taskDefinition=out.agent_task_definition, schedulingStrategy="DAEMON",
                           launchType="EXTERNAL")
        out.external_agent_service = EXTERNAL_AGENT_SERVICE
    for variant in stack.apps:
        td = ecs.register_task_definition(**app_task_definition(stack, variant))["taskDefinition"]
        service = app_service(variant)
        placement = ([{"type": "memberOf", "expression": f"ec2InstanceId == {apps_on}"}] if apps_on else [])
        ecs.create_service(cluster=cluster, serviceName=service, taskDefinition=td["taskDefinitionArn"],
                           desiredCount=1, schedulingStrategy="REPLICA", launchType="EC2",
                           placementConstraints=placement)
        out.app_services[variant] = service
        out.app_task_definitions[variant] = td["taskDefinitionArn"]
    return out


def redeploy_agent(ecs: Any, stack: Stack, deployment: StackDeployment) -> str:
    """Deploy the agent anew with `stack`'s settings, as a user redeploys it on ECS: a new revision
    of its task definition, then `update-service`; the service scheduler replaces the old tasks.
    Returns the new task definition ARN (also recorded in `deployment`)."""
    td = ecs.register_task_definition(**agent_task_definition(stack))["taskDefinition"]
    for service in deployment.agent_services():
        ecs.update_service(cluster=deployment.cluster, service=service,
                           taskDefinition=td["taskDefinitionArn"])
    deployment.agent_task_definition = td["taskDefinitionArn"]
    return td["taskDefinitionArn"]


def remove_cluster(ecs: Any, cluster: str) -> None:
    """What a user's teardown does: every service deleted (`--force`), every container instance
    deregistered, the cluster deleted. The lab's exit does it so that a later lab in the same process
    (moto's state is per process) starts from an empty cluster; it is also done before deploying, for
    what a lab that died in this process left."""
    found = ecs.describe_clusters(clusters=[cluster]).get("clusters", [])
    if not found or found[0].get("status") != "ACTIVE":
        return
    for page in ecs.get_paginator("list_services").paginate(cluster=cluster):
        for arn in page["serviceArns"]:
            ecs.delete_service(cluster=cluster, service=arn, force=True)
    for page in ecs.get_paginator("list_container_instances").paginate(cluster=cluster):
        for arn in page["containerInstanceArns"]:
            ecs.deregister_container_instance(cluster=cluster, containerInstance=arn, force=True)
    ecs.delete_cluster(cluster=cluster)


def services_status(ecs: Any, cluster: str) -> list[dict]:
    """Every service of the cluster with its running/desired counts, for `ecs-lab status`."""
    arns: list[str] = []
    for page in ecs.get_paginator("list_services").paginate(cluster=cluster):
        arns.extend(page["serviceArns"])
    out = []
    for i in range(0, len(arns), 10):
        for svc in ecs.describe_services(cluster=cluster, services=arns[i:i + 10])["services"]:
            out.append({"name": svc["serviceName"], "arn": svc["serviceArn"],
                        "scheduling_strategy": svc.get("schedulingStrategy", "REPLICA"),
                        "task_definition": svc.get("taskDefinition"), "status": svc.get("status"),
                        "desired": svc.get("desiredCount", 0), "running": svc.get("runningCount", 0),
                        "pending": svc.get("pendingCount", 0),
                        "last_event": (svc.get("events") or [{}])[0].get("message")})
    return out


__all__ = ["AGENT_SERVICE", "StackDeployment", "agent_task_definition", "app_task_definition", "deploy_stack",
           "redeploy_agent", "remove_cluster", "services_status"]
