"""A registered task definition -> what a backend runs: the world's `Task` + one `ContainerSpec` each.

Field by field, as the ECS container agent reads a container definition: image, entryPoint/command
(the docs' `sh -c` lines pass through untouched), environment, `secrets` resolved from the control
plane's Secrets Manager / SSM Parameter Store (as the agent does with the task execution role),
portMappings under the task's network mode, mountPoints joined with the task's host volumes,
healthCheck, essential, dependsOn, linuxParameters.capabilities, pidMode, cpu/memory.

A field the lab cannot honour is never dropped: `UnsupportedField` names it (the task then stops
with that reason, as a task ECS cannot start does). The lab's redirects (intake URLs, an `.invalid`
DD_SITE, the recording egress proxy, remote configuration off, the instance's IMDS and ECS agent
endpoints) are applied here, at deploy time, to agent containers only: the user's file is never
edited, and a setting the user got wrong (no DD_DOGSTATSD_NON_LOCAL_TRAFFIC, no 8126 hostPort)
stays wrong, so the lab shows what ECS would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from lab.ecs.agent_env import Redirects
from lab.log_router import firelens
from lab.tasks import (
    ContainerSpec,
    HealthCheck,
    LogConfiguration,
    Mount,
    PortSpec,
    UnsupportedField,
    is_agent_image,
    is_fips_proxy_image,
)
from lab.world import Container, Task

# Container-definition fields the lab honours (mapped into ContainerSpec or acted on here).
HONOURED_CONTAINER_FIELDS = frozenset({
    "name", "image", "cpu", "memory", "memoryReservation", "essential", "entryPoint", "command",
    "environment", "secrets", "portMappings", "mountPoints", "healthCheck", "dependsOn",
    "linuxParameters", "workingDirectory", "user", "dockerLabels", "logConfiguration",
    "firelensConfiguration",
    # Placement/start-up bookkeeping with no runtime effect the lab could get wrong:
    "startTimeout", "stopTimeout", "versionConsistency",
})
# Log drivers the lab runs: awslogs (to the control plane's CloudWatch Logs), awsfirelens (to the
# task's log router), json-file (docker's default: the output the backend keeps anyway).
HONOURED_LOG_DRIVERS = frozenset({"awslogs", "awsfirelens", "json-file"})
HONOURED_LINUX_PARAMETERS = frozenset({"capabilities", "initProcessEnabled"})
# Task-level fields: used for placement, identity or resolution (execution role -> secrets).
HONOURED_TASK_FIELDS = frozenset({
    "family", "containerDefinitions", "volumes", "networkMode", "pidMode", "cpu", "memory",
    "requiresCompatibilities", "taskRoleArn", "executionRoleArn", "tags", "placementConstraints",
    "runtimePlatform",
})
# Fields moto adds to what describe-task-definition returns (not the user's input).
_DESCRIBE_KEYS = frozenset({"taskDefinitionArn", "revision", "status", "requiresAttributes",
                            "compatibilities", "registeredAt", "registeredBy", "deregisteredAt"})

SECRETS_ERROR_PREFIX = "ResourceInitializationError: unable to pull secrets or registry auth: "


class SecretResolutionError(RuntimeError):
    """A `secrets` entry the control plane cannot resolve; the text is the ECS stopped reason."""


# -- secrets --------------------------------------------------------------------------------------

SecretFetcher = Callable[[str], str]


# The principal an ECS task execution role must trust for ECS to assume it on a task's behalf.
ECS_TASKS_PRINCIPAL = "ecs-tasks.amazonaws.com"
EXECUTION_ROLE_TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": ECS_TASKS_PRINCIPAL}, "Action": "sts:AssumeRole"}]}


def execution_role(iam: Any, name: str = "ecsTaskExecutionRole") -> str:
    """The ARN of a task execution role ECS can assume (created in the control plane's IAM if
    missing), as the ECS developer guide's "Amazon ECS task execution IAM role" page sets it up."""
    try:
        return iam.get_role(RoleName=name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EXECUTION_ROLE_TRUST),
                               Description="ECS task execution role (ecs-agent-lab)")["Role"]["Arn"]


class ControlPlaneSecrets:
    """Resolve `valueFrom` against the control plane's Secrets Manager and SSM Parameter Store.

    `for_task` first does what the ECS agent does before it fetches any secret: it needs the task
    execution role's credentials. A task definition without `executionRoleArn`, or whose role does
    not exist in the control plane's IAM or does not trust ecs-tasks.amazonaws.com (so ECS could not
    assume it), gets none, and the task stops with the ECS agent's text for that
    (amazon-ecs-agent agent/taskresource/asmsecret and ssmsecret: "unable to find execution role
    credentials"). The role's permission policies are not evaluated (moto does not enforce IAM)."""

    def __init__(self, secretsmanager: Any, ssm: Any, iam: Any | None = None) -> None:
        self.secretsmanager = secretsmanager
        self.ssm = ssm
        self.iam = iam

    def _role_assumable(self, role_arn: str) -> bool:
        if self.iam is None:
            return True
        try:
            role = self.iam.get_role(RoleName=role_arn.rsplit("/", 1)[-1])["Role"]
        except Exception:  # noqa: BLE001 - NoSuchEntity and a malformed name alike: not assumable
            return False
        trust = role.get("AssumeRolePolicyDocument") or {}
        if isinstance(trust, str):
            from urllib.parse import unquote

            trust = json.loads(unquote(trust))
        return role.get("Arn") == role_arn and ECS_TASKS_PRINCIPAL in json.dumps(trust)

    def for_task(self, taskdef: dict) -> SecretFetcher:
        """The resolver for one task definition's secrets, with its execution role checked first."""
        role = taskdef.get("executionRoleArn") or ""
        assumable = bool(role) and self._role_assumable(role)

        def resolve(value_from: str) -> str:
            if not assumable:
                kind = "ASM" if ":secretsmanager:" in value_from else "ssm"
                raise SecretResolutionError(
                    SECRETS_ERROR_PREFIX + f"execution resource retrieval failed: {kind} secret resource: "
                    "unable to find execution role credentials")
            return self.resolve(value_from)
        return resolve

    def resolve(self, value_from: str) -> str:
        if value_from.startswith("arn:") and ":secretsmanager:" in value_from:
            return self._asm(value_from)
        return self._ssm(value_from)

    def _asm(self, value_from: str) -> str:
        # arn:aws:secretsmanager:region:acct:secret:name[:json-key:version-stage:version-id]
        parts = value_from.split(":")
        secret_id = ":".join(parts[:7])
        json_key = parts[7] if len(parts) > 7 else ""
        stage = parts[8] if len(parts) > 8 else ""
        version = parts[9] if len(parts) > 9 else ""
        kwargs: dict[str, str] = {"SecretId": secret_id}
        if stage:
            kwargs["VersionStage"] = stage
        if version:
            kwargs["VersionId"] = version
        try:
            value = self.secretsmanager.get_secret_value(**kwargs)["SecretString"]
        except Exception as exc:  # noqa: BLE001 - botocore ClientError and transport errors alike
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            msg = getattr(exc, "response", {}).get("Error", {}).get("Message", str(exc))
            raise SecretResolutionError(
                SECRETS_ERROR_PREFIX + "execution resource retrieval failed: unable to retrieve secret "
                "from asm: service call has been retried 1 time(s): failed to fetch secret "
                f"{secret_id} from secrets manager: {code}: {msg}") from None
        if not json_key:
            return value
        try:
            return str(json.loads(value)[json_key])
        except (ValueError, KeyError, TypeError):
            raise SecretResolutionError(
                SECRETS_ERROR_PREFIX + "execution resource retrieval failed: unable to retrieve secret "
                f"from asm: failed to find key {json_key} in secret {secret_id}") from None

    def _ssm(self, value_from: str) -> str:
        name = value_from.split(":parameter", 1)[1] if value_from.startswith("arn:") else value_from
        try:
            return self.ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        except Exception as exc:  # noqa: BLE001
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            raise SecretResolutionError(
                SECRETS_ERROR_PREFIX + "execution resource retrieval failed: unable to retrieve secrets "
                f"from ssm: service call has been retried 1 time(s): {code}: invalid parameters: "
                f"{name}") from None


# -- translation ----------------------------------------------------------------------------------


def check_supported(taskdef: dict) -> None:
    """Raise UnsupportedField naming the first field the lab cannot honour."""
    for key in taskdef:
        if key in HONOURED_TASK_FIELDS or key in _DESCRIBE_KEYS:
            continue
        if taskdef[key] not in (None, [], {}):
            raise UnsupportedField(f"task definition field {key!r} is not supported by the lab")
    if taskdef.get("networkMode") not in (None, "bridge", "host", "awsvpc"):
        raise UnsupportedField(f"networkMode {taskdef['networkMode']!r} is not supported by the lab")
    if taskdef.get("pidMode") not in (None, "host", "task"):
        raise UnsupportedField(f"pidMode {taskdef['pidMode']!r} is not supported by the lab")
    for i, v in enumerate(taskdef.get("volumes") or []):
        for key in v:
            if key not in ("name", "host") and v[key] not in (None, {}, []):
                raise UnsupportedField(f"volumes[{i}].{key} ({v.get('name')}) is not supported by the lab: "
                                       "only host volumes are")
    for i, c in enumerate(taskdef.get("containerDefinitions") or []):
        where = f"containerDefinitions[{i}] ({c.get('name')})"
        for key, value in c.items():
            if key not in HONOURED_CONTAINER_FIELDS and value not in (None, [], {}, False):
                raise UnsupportedField(f"{where}.{key} is not supported by the lab")
        for key, value in (c.get("linuxParameters") or {}).items():
            if key not in HONOURED_LINUX_PARAMETERS and value not in (None, [], {}):
                raise UnsupportedField(f"{where}.linuxParameters.{key} is not supported by the lab")
        caps = (c.get("linuxParameters") or {}).get("capabilities") or {}
        if caps.get("drop"):
            raise UnsupportedField(f"{where}.linuxParameters.capabilities.drop is not supported by the lab")
        lc = c.get("logConfiguration") or {}
        driver = lc.get("logDriver")
        if driver and driver not in HONOURED_LOG_DRIVERS:
            # ECS accepts the driver; an instance whose ECS agent does not offer it cannot run it.
            raise UnsupportedField(f"{where}.logConfiguration.logDriver {driver!r} is not supported by "
                                   f"the lab (it runs {', '.join(sorted(HONOURED_LOG_DRIVERS))})")
        if lc.get("secretOptions"):
            raise UnsupportedField(f"{where}.logConfiguration.secretOptions is not supported by the lab")


def _ports(c: dict, network_mode: str) -> list[PortSpec]:
    out = []
    for pm in c.get("portMappings") or []:
        cport = pm.get("containerPort")
        if cport is None:
            continue
        proto = pm.get("protocol", "tcp")
        if network_mode in ("host", "awsvpc"):
            host = cport  # no translation: the container's port is the host's / the ENI's
        else:
            host = pm.get("hostPort") or None  # bridge: absent/0 = a dynamic host port
        out.append(PortSpec(container_port=int(cport), host_port=host, protocol=proto))
    return out


def _reachable_on_host(c: dict, env: dict[str, str], network_mode: str) -> bool:
    """Can an app on the instance reach this agent at the instance's IP? In bridge mode only through
    a published hostPort (the docs' 8126/tcp and 8125/udp mappings); in host mode always; in awsvpc
    the agent has its own ENI address instead (docs/agent_contract.md#the-agent-task-on-ecs)."""
    if network_mode == "host":
        return True
    if network_mode == "awsvpc":
        return False
    apm = int(env.get("DD_APM_RECEIVER_PORT") or 8126)
    dsd = int(env.get("DD_DOGSTATSD_PORT") or 8125)
    for pm in c.get("portMappings") or []:
        if not pm.get("hostPort"):
            continue
        proto = pm.get("protocol", "tcp")
        if (pm.get("containerPort"), proto) in ((apm, "tcp"), (dsd, "udp")):
            return True
    return False


def _mounts(c: dict, volumes: dict[str, dict]) -> list[Mount]:
    out = []
    for mp in c.get("mountPoints") or []:
        vol = volumes.get(mp.get("sourceVolume", ""))
        if vol is None:
            raise UnsupportedField(f"mountPoints sourceVolume {mp.get('sourceVolume')!r} of container "
                                   f"{c.get('name')!r} names no volume of the task")
        source = (vol.get("host") or {}).get("sourcePath")
        if not source:
            raise UnsupportedField(f"volume {vol.get('name')!r} has no host.sourcePath: the lab runs host "
                                   "volumes only")
        out.append(Mount(source=source, target=mp["containerPath"], read_only=bool(mp.get("readOnly"))))
    return out


def _health(c: dict) -> HealthCheck | None:
    hc = c.get("healthCheck")
    if not hc:
        return None
    # ECS defaults: interval 30, timeout 5, retries 3, startPeriod 0 (off).
    return HealthCheck(command=list(hc["command"]), interval=float(hc.get("interval", 30)),
                       timeout=float(hc.get("timeout", 5)), retries=int(hc.get("retries", 3)),
                       start_period=float(hc.get("startPeriod", 0)))


def _container_spec(taskdef: dict, c: dict, network_mode: str, volumes: dict[str, dict],
                    resolve_secret: SecretFetcher | None, redirects: Redirects | None) -> ContainerSpec:
    """One container definition as the runner's ContainerSpec."""
    env = {e["name"]: e.get("value", "") for e in c.get("environment") or []}
    for s in c.get("secrets") or []:
        if resolve_secret is None:
            raise SecretResolutionError(SECRETS_ERROR_PREFIX + f"no secrets backend to resolve "
                                        f"{s['valueFrom']} for {s['name']}")
        env[s["name"]] = resolve_secret(s["valueFrom"])
    image = c.get("image", "")
    if redirects is not None:
        if is_agent_image(image):
            env = redirects.agent_env(env, _reachable_on_host(c, env, network_mode))
        elif is_fips_proxy_image(image):
            env = redirects.fips_proxy_env(env)
    caps = ((c.get("linuxParameters") or {}).get("capabilities") or {}).get("add") or []
    return ContainerSpec(
        name=c["name"], image=image, entry_point=c.get("entryPoint"), command=c.get("command"),
        env=env, ports=_ports(c, network_mode), mounts=_mounts(c, volumes), health_check=_health(c),
        essential=c.get("essential", True),
        depends_on=[(d["containerName"], d["condition"]) for d in c.get("dependsOn") or []],
        cpu=int(c.get("cpu") or 0), memory=c.get("memory"), memory_reservation=c.get("memoryReservation"),
        capabilities_add=list(caps), pid_mode=taskdef.get("pidMode"),
        working_directory=c.get("workingDirectory"), user=c.get("user"),
        docker_labels=dict(c.get("dockerLabels") or {}),
        log_configuration=_log_configuration(c),
    )


def _log_configuration(c: dict) -> LogConfiguration | None:
    lc = c.get("logConfiguration") or {}
    if not lc.get("logDriver"):
        return None
    return LogConfiguration(driver=lc["logDriver"],
                            options={str(k): str(v) for k, v in (lc.get("options") or {}).items()})


def attach_log_router(taskdef: dict, specs: list[ContainerSpec], task: Task, *, cluster: str,
                      ec2_instance_id: str | None, redirects: Redirects | None) -> None:
    """FireLens: give the task's log router container the fluent-bit configuration ECS generates for
    this task (lab.log_router.firelens), its datadog outputs redirected to the lab's intake."""
    try:
        router = firelens.router_container(taskdef)
        if router is None:
            return
        identity = firelens.TaskIdentity(cluster=cluster, task_arn=task.arn, family=task.family,
                                         revision=task.revision, ec2_instance_id=ec2_instance_id)
        text = firelens.generate(taskdef, identity,
                                 redirect=redirects.log_router_redirect() if redirects else None)
    except firelens.FirelensError as exc:
        raise UnsupportedField(f"firelensConfiguration: {exc}") from None
    for spec in specs:
        if spec.name == router["name"]:
            spec.log_router_config = text


def container_specs(taskdef: dict, *, resolve_secret: SecretFetcher | None = None,
                    redirects: Redirects | None = None) -> list[ContainerSpec]:
    """Translate every container definition; raise UnsupportedField / SecretResolutionError."""
    check_supported(taskdef)
    try:
        router = firelens.router_container(taskdef)
    except firelens.FirelensError as exc:
        raise UnsupportedField(f"firelensConfiguration: {exc}") from None
    network_mode = taskdef.get("networkMode") or "bridge"
    volumes = {v["name"]: v for v in taskdef.get("volumes") or [] if v.get("name")}
    specs = []
    for i, c in enumerate(taskdef.get("containerDefinitions") or []):
        try:
            specs.append(_container_spec(taskdef, c, network_mode, volumes, resolve_secret, redirects))
        except (UnsupportedField, SecretResolutionError):
            raise
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            # A shape botocore lets through (e.g. an environment entry without a name): say which
            # container and what, instead of a bare KeyError from deep inside.
            name = c.get("name") if isinstance(c, dict) else None
            raise UnsupportedField(f"containerDefinitions[{i}] ({name!r}) cannot be run: "
                                   f"{type(exc).__name__}: {exc}") from None
    if router is not None:
        # The ECS agent starts the log router first: every container logging through it gets a
        # START dependency on it (amazon-ecs-agent, task.go addFirelensContainerDependency).
        for spec in specs:
            lc = spec.log_configuration
            if lc and lc.driver == "awsfirelens" and router["name"] not in {d for d, _ in spec.depends_on}:
                spec.depends_on.append((router["name"], "START"))
    return specs


def world_task(taskdef: dict, *, arn: str, service_name: str = "", described: dict | None = None) -> Task:
    """The world's record of a task: same ARN as the control plane, one Container per definition.

    `described` (the task as DescribeTasks shows it) gives each container the control plane's
    container ARN and the task its tags, so task metadata repeats what the ECS API says."""
    mode = taskdef.get("networkMode") or "bridge"
    arns = {c.get("name"): c.get("containerArn", "") for c in (described or {}).get("containers") or []}
    volumes = {v.get("name"): v for v in taskdef.get("volumes") or []}
    containers = [
        Container(name=c["name"], image=c.get("image", ""), network_mode=mode, cpu=int(c.get("cpu") or 0),
                  memory=c.get("memory"), arn=arns.get(c["name"], ""),
                  health_checked=bool(c.get("healthCheck")),
                  env={e["name"]: e.get("value", "") for e in c.get("environment") or []},
                  volumes=_metadata_volumes(c, volumes))
        for c in taskdef.get("containerDefinitions") or []
    ]
    tags = {t["key"]: t.get("value", "") for t in (described or {}).get("tags") or [] if "key" in t}
    cpu = taskdef.get("cpu")
    memory = taskdef.get("memory")
    return Task(family=taskdef["family"], revision=int(taskdef.get("revision") or 1), containers=containers,
                arn=arn, network_mode=mode, service_name=service_name, tags=tags,
                cpu=int(cpu) if cpu else None, memory=int(memory) if memory else None,
                fault_injection_enabled=bool(taskdef.get("enableFaultInjection")))


def _metadata_volumes(c: dict, volumes: dict[str, dict]) -> list[dict[str, str]]:
    """A container's host volumes as task metadata shows them (the ECS agent's VolumeResponse:
    `Source` the host path, `Destination` the container path; `DockerName` only for docker volumes,
    which the lab does not run). A mount naming no host volume is left out here: the runner refuses
    it when the task starts (`_mounts`)."""
    out = []
    for mp in c.get("mountPoints") or []:
        source = ((volumes.get(mp.get("sourceVolume", "")) or {}).get("host") or {}).get("sourcePath")
        if source and mp.get("containerPath"):
            out.append({"Source": source, "Destination": mp["containerPath"]})
    return out
