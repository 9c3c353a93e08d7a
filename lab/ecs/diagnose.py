"""What ECS users get wrong in the agent's task definition, said plainly (socket-free).

Each finding names the field, says what breaks on a real cluster, and how the docs fix it. The
lab does not fix the user's file: it runs it as ECS would (so the breakage is observable), and
`ecs-lab deploy` and the scenarios print these findings next to what was (not) seen.

Sources: the Datadog ECS docs (APM: 8126/tcp host port; DogStatsD: 8125/udp host port and
`DD_DOGSTATSD_NON_LOCAL_TRAFFIC=true`; FIPS proxy sidecar) and the agent's FIPS rule that
`DD_FIPS_LOCAL_ADDRESS` is a loopback address (docs/agent_contract.md#the-agent-task-on-ecs
and #fips-mode).
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.tasks import is_agent_image, is_fips_proxy_image

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Finding:
    code: str  # apm_host_port | dogstatsd_non_local | dogstatsd_host_port | fips_bridge | ...
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _env(c: dict) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in c.get("environment") or []}


def _published(c: dict, port: int, proto: str, mode: str) -> bool:
    if mode == "host":
        return True  # the agent binds the instance's own interfaces
    return any(pm.get("containerPort") == port and pm.get("hostPort") == port
               and pm.get("protocol", "tcp") == proto for pm in c.get("portMappings") or [])


def _intends(taskdef: dict, prefix: str, port: int) -> bool:
    """Does the file show it wants this feature (its DD_<prefix>_* env, or a mapping of its port)?"""
    for c in taskdef.get("containerDefinitions") or []:
        if any(name.startswith(prefix) for name in _env(c)):
            return True
        if any(pm.get("containerPort") == port for pm in c.get("portMappings") or []):
            return True
    return False


def agent_findings(taskdef: dict, *, expects_apm: bool | None = None,
                   expects_dogstatsd: bool | None = None) -> list[Finding]:
    """Problems in an agent task definition, for apps that send traces and/or DogStatsD metrics.

    By default a feature is checked when the file shows it wants it (`DD_APM_*` env or an 8126
    mapping; `DD_DOGSTATSD_*` env or an 8125 mapping)."""
    if expects_apm is None:
        expects_apm = _intends(taskdef, "DD_APM_", 8126)
    if expects_dogstatsd is None:
        expects_dogstatsd = _intends(taskdef, "DD_DOGSTATSD_", 8125)
    out: list[Finding] = []
    mode = taskdef.get("networkMode") or "bridge"
    containers = taskdef.get("containerDefinitions") or []
    for i, c in enumerate(containers):
        if not is_agent_image(c.get("image", "")):
            continue
        where = f"containerDefinitions[{i}] ({c.get('name')})"
        env = _env(c)
        if mode == "awsvpc":
            out.append(Finding("awsvpc_agent", f"{where} networkMode",
                               "the agent runs in awsvpc mode: apps cannot find its ENI address through "
                               "IMDS local-ipv4; the docs recommend bridge mode with host port mappings"))
        apm_port = int(env.get("DD_APM_RECEIVER_PORT") or 8126)
        if expects_apm and mode == "bridge" and not _published(c, apm_port, "tcp", mode):
            out.append(Finding("apm_host_port", f"{where}.portMappings",
                               f"no hostPort {apm_port}/tcp: apps send traces to the instance's private IP "
                               f"on {apm_port} and find nothing listening. Add "
                               f'{{"containerPort": {apm_port}, "hostPort": {apm_port}, "protocol": "tcp"}}'))
        dsd_port = int(env.get("DD_DOGSTATSD_PORT") or 8125)
        if expects_dogstatsd:
            if mode == "bridge" and not _published(c, dsd_port, "udp", mode):
                out.append(Finding("dogstatsd_host_port", f"{where}.portMappings",
                                   f"no hostPort {dsd_port}/udp: DogStatsD packets sent to the instance's "
                                   f"private IP are dropped. Add "
                                   f'{{"containerPort": {dsd_port}, "hostPort": {dsd_port}, '
                                   f'"protocol": "udp"}}'))
            if env.get("DD_DOGSTATSD_NON_LOCAL_TRAFFIC", "").strip().lower() not in _TRUE:
                out.append(Finding("dogstatsd_non_local", f"{where}.environment",
                                   "DD_DOGSTATSD_NON_LOCAL_TRAFFIC is not true: the agent listens for "
                                   "DogStatsD on its own localhost only and ignores metrics from other "
                                   "containers. Set DD_DOGSTATSD_NON_LOCAL_TRAFFIC=true"))
        if env.get("DD_FIPS_ENABLED", "").strip().lower() in _TRUE:
            proxies = [p for p in containers if is_fips_proxy_image(p.get("image", ""))]
            local = env.get("DD_FIPS_LOCAL_ADDRESS", "localhost")
            if mode == "bridge" and proxies and local in ("localhost", "127.0.0.1", "::1"):
                out.append(Finding("fips_bridge", "networkMode",
                                   f"bridge mode with DD_FIPS_LOCAL_ADDRESS={local}: each container of the "
                                   f"task has its own 127.0.0.1, so the agent reaches no FIPS proxy on "
                                   f"{local} and sends nothing. Use networkMode host (or awsvpc) so the "
                                   f"agent and the {proxies[0].get('name')} sidecar share a network "
                                   "namespace"))
            if not proxies:
                out.append(Finding("fips_no_proxy", f"{where}.environment",
                                   "DD_FIPS_ENABLED=true but the task has no datadog/fips-proxy container: "
                                   "nothing listens on the FIPS ports"))
    return out


def secrets_findings(stopped_reason: str) -> list[Finding]:
    """Turn an ECS stopped reason about secrets into a finding naming the fix."""
    if "unable to pull secrets" not in stopped_reason:
        return []
    if "unable to find execution role credentials" in stopped_reason:
        return [Finding("execution_role_missing", "executionRoleArn",
                        "ECS fetches secrets with the task execution role, and this task has none it can "
                        "assume: set executionRoleArn to a role that trusts ecs-tasks.amazonaws.com "
                        "(aws iam create-role --role-name ecsTaskExecutionRole --assume-role-policy-document "
                        "...). ECS said: " + stopped_reason)]
    return [Finding("secret_missing", "containerDefinitions[].secrets[].valueFrom",
                    "ECS could not fetch a secret, so no container started: check that the ARN exists "
                    "(aws secretsmanager describe-secret --secret-id <arn>) in the task's region and that "
                    f"the task execution role may read it. ECS said: {stopped_reason}")]
