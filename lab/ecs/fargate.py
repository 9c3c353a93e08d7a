"""The FARGATE launch type's rules, as ECS applies them (docs/fargate.md#ecs-rules-and-error-texts).

Two moments, as in ECS:
- `register_errors(taskdef)`: what `RegisterTaskDefinition` refuses (`ClientException`) for a task
  definition that requires FARGATE compatibility: task-level cpu/memory from the valid sizes,
  `awsvpc`, no host volumes (the docker socket is one), no privileged container, an execution role
  for secrets and FireLens. The `awsvpc` host-port rule holds for every awsvpc definition.
- `launch_errors(...)`: what `RunTask`/`CreateService` refuse (`InvalidParameterException`) when the
  launch type is FARGATE: a definition not FARGATE-compatible, no `awsvpcConfiguration`, no subnets,
  an unknown subnet, the DAEMON strategy.

Texts are ECS's own where one was found in public reports of the real service (the doc lists each
with its source); the few not found follow the same sentence pattern and say so there.
"""

from __future__ import annotations

from typing import Any

# Task size (CPU units -> allowed memory MiB), AWS developer guide "Task size" for Linux Fargate tasks.
VALID_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}

DOCKER_SOCKET = "/var/run/docker.sock"

# Each rule's text; tests and docs name them through these constants.
NOT_AWSVPC = "Fargate only supports network mode \u2018awsvpc\u2019."
NO_TASK_CPU = "Fargate requires that 'cpu' be defined at the task level."
NO_TASK_MEMORY = "Fargate requires that 'memory' be defined at the task level."
HOST_PORT_MISMATCH = ("When networkMode=awsvpc, the host ports and container ports in port mappings "
                      "must match.")
SOURCE_PATH = "Fargate compatible task definitions do not support sourcePath"
PRIVILEGED = "Fargate compatible task definitions do not support privileged containers"
EXECUTION_ROLE_SECRETS = "Fargate requires task definition to have execution role ARN to support secrets."
EXECUTION_ROLE_FIRELENS = ("Fargate requires task definition to have execution role ARN to support log "
                           "driver awsfirelens.")
NOT_FARGATE_COMPATIBLE = "Task definition does not support launch_type FARGATE."
NO_NETWORK_CONFIGURATION = "Network Configuration must be provided when networkMode 'awsvpc' is specified."
NO_SUBNETS = "subnets can not be empty."
DAEMON = ("Tasks using the Fargate launch type or the CODE_DEPLOY or EXTERNAL deployment controller types "
          "don't support the DAEMON scheduling strategy.")


def size_error(cpu: Any, memory: Any) -> str:
    return (f"No Fargate configuration exists for given values: {cpu} CPU, {memory} memory. "
            "See the Amazon ECS documentation for the valid values.")


def unknown_subnet_error(subnet: str) -> str:
    return (f"Error retrieving subnet information for [{subnet}]: The subnet ID '{subnet}' does not exist "
            "(ErrorCode: InvalidSubnetID.NotFound)")


def requires_fargate(taskdef: dict) -> bool:
    return "FARGATE" in (taskdef.get("requiresCompatibilities") or [])


def _units(value: Any) -> int | None:
    """ECS takes task cpu/memory as strings ("256", "0.25 vCPU", "1 GB"); the lab reads the integer
    forms and the vCPU/GB forms the API reference documents."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    low = text.lower()
    try:
        if low.endswith("vcpu"):
            return int(float(low[:-4]) * 1024)
        if low.endswith("gb"):
            return int(float(low[:-2]) * 1024)
        return int(float(text))
    except ValueError:
        return None


def register_errors(taskdef: dict) -> list[str]:
    """ECS's `ClientException` texts for a task definition, FARGATE rules first (empty: accepted)."""
    problems: list[str] = []
    containers = [c for c in taskdef.get("containerDefinitions") or [] if isinstance(c, dict)]
    if taskdef.get("networkMode") == "awsvpc":
        for c in containers:
            for pm in c.get("portMappings") or []:
                host = pm.get("hostPort")
                if host not in (None, 0) and host != pm.get("containerPort"):
                    problems.append(HOST_PORT_MISMATCH)
    if not requires_fargate(taskdef):
        return problems
    fargate: list[str] = []
    if taskdef.get("networkMode") != "awsvpc":
        fargate.append(NOT_AWSVPC)
    cpu, memory = taskdef.get("cpu"), taskdef.get("memory")
    if cpu in (None, ""):
        fargate.append(NO_TASK_CPU)
    elif memory in (None, ""):
        fargate.append(NO_TASK_MEMORY)
    elif _units(memory) not in VALID_SIZES.get(_units(cpu) or -1, ()):
        fargate.append(size_error(cpu, memory))
    for v in taskdef.get("volumes") or []:
        if (v.get("host") or {}).get("sourcePath"):
            fargate.append(SOURCE_PATH)
            break
    if any(c.get("privileged") for c in containers):
        fargate.append(PRIVILEGED)
    if not taskdef.get("executionRoleArn"):
        if any(c.get("secrets") for c in containers):
            fargate.append(EXECUTION_ROLE_SECRETS)
        elif any((c.get("logConfiguration") or {}).get("logDriver") == "awsfirelens"
                 or c.get("firelensConfiguration") for c in containers):
            fargate.append(EXECUTION_ROLE_FIRELENS)
    return fargate + problems


def launch_errors(taskdef: dict, network_configuration: dict | None, known_subnets: set[str] | None,
                  scheduling_strategy: str | None = None) -> str | None:
    """ECS's `InvalidParameterException` text for launching `taskdef` on FARGATE, or None."""
    if scheduling_strategy == "DAEMON":
        return DAEMON
    # The network configuration is checked before the definition's compatibility (moto's order for
    # the same call, and the text it has from ECS).
    vpc = (network_configuration or {}).get("awsvpcConfiguration")
    if not vpc:
        return NO_NETWORK_CONFIGURATION
    subnets = vpc.get("subnets") or []
    if not subnets:
        return NO_SUBNETS
    compat = taskdef.get("compatibilities") or taskdef.get("requiresCompatibilities") or []
    if "FARGATE" not in compat:
        return NOT_FARGATE_COMPATIBLE
    if known_subnets is not None:
        for s in subnets:
            if s not in known_subnets:
                return unknown_subnet_error(s)
    return None
