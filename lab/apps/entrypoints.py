"""How an app container on ECS (EC2 launch type) learns `DD_AGENT_HOST`: the variants of the docs.

The Datadog agent runs once per EC2 instance with 8126/tcp and 8125/udp published on the host, so
an app container in bridge mode reaches it through the instance's *private IP*. The "Tracing ECS
Applications" docs (docs.datadoghq.com/containers/amazon_ecs/apm) give these ways to find it:

- `imdsv1`: an `sh -c` entryPoint that curls IMDS `local-ipv4` and exports `DD_AGENT_HOST`;
- `imdsv2`: the same with the token flow (PUT `/latest/api/token`, TTL header 21600, then the
  token on the GET), for instances with `HttpTokens=required`;
- `metadata_file`: `jq -r .HostPrivateIPv4Address` of `$ECS_CONTAINER_METADATA_FILE`
  (needs `ECS_ENABLE_CONTAINER_METADATA=true` on the instance's ECS agent);
- `in_code`: Python/Node/Ruby/Go may ask IMDS from the app's own code instead.

The lines below are the docs' lines with ONE change: the metadata host is
`$AWS_EC2_METADATA_SERVICE_ENDPOINT` (botocore's variable) instead of the literal
`http://169.254.169.254`. On the docker backend the lab sets it to `http://169.254.169.254`, where
its own fake IMDS holds that address, so the line *is* the docs' line; on the local backend it points
at the instance's fake IMDS on loopback. On this machine 169.254.169.254 belongs to someone else
(docs/environment.md#link-local-addresses-belong-to-someone-else): a lab app must never fall back to it, so
every variant requires the variable.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Mapping

from lab.tasks import LAB_IMAGE

METADATA_ENDPOINT_ENV = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
METADATA_FILE_ENV = "ECS_CONTAINER_METADATA_FILE"

# The `<Python Startup Command>` of the docs. `exec` makes the app the container's PID 1, so the
# SIGTERM that `docker stop` / ECS StopTask sends reaches it (a plain `sh -c` parent would swallow it
# and the tracer would never flush); ddtrace-run is the docs' Python start command.
APP_COMMAND = "exec ddtrace-run python -m lab.apps web"
# The in-code variant has no entryPoint: the app resolves the host before ddtrace starts.
IN_CODE_COMMAND = ["python", "-m", "lab.apps", "web", "--agent-host-from", "imds"]

# variant -> the part of the `sh -c` line that exports DD_AGENT_HOST (None: no entryPoint).
# Quoting follows the docs' JSON strings, minus their escaping.
AGENT_HOST_LINES: dict[str, str | None] = {
    "imdsv1": (
        "export DD_AGENT_HOST=$(curl $AWS_EC2_METADATA_SERVICE_ENDPOINT/latest/meta-data/local-ipv4);"
    ),
    "imdsv2": (
        'export TOKEN=$(curl -X PUT "$AWS_EC2_METADATA_SERVICE_ENDPOINT/latest/api/token"'
        ' -H "X-aws-ec2-metadata-token-ttl-seconds: 21600");'
        ' export DD_AGENT_HOST=$(curl -H "X-aws-ec2-metadata-token: $TOKEN"'
        " $AWS_EC2_METADATA_SERVICE_ENDPOINT/latest/meta-data/local-ipv4);"
    ),
    "metadata_file": (
        "export DD_AGENT_HOST=$(cat $ECS_CONTAINER_METADATA_FILE | jq -r .HostPrivateIPv4Address);"
    ),
    "in_code": None,
}
VARIANTS: tuple[str, ...] = tuple(AGENT_HOST_LINES)

# The whole `sh -c` line per variant, as a user would paste it into a task definition.
ENTRYPOINT_LINES: dict[str, str | None] = {
    name: (f"{prefix} {APP_COMMAND}" if prefix is not None else None)
    for name, prefix in AGENT_HOST_LINES.items()
}

# Tools a variant's line needs inside the container (the lab image ships curl and jq).
REQUIRED_TOOLS: dict[str, tuple[str, ...]] = {
    "imdsv1": ("curl",),
    "imdsv2": ("curl",),
    "metadata_file": ("jq",),
    "in_code": (),
}

APP_PORT = 8080


class AgentHostError(RuntimeError):
    """The app could not learn DD_AGENT_HOST; the message says which input was missing."""


def _check_variant(variant: str) -> None:
    if variant not in AGENT_HOST_LINES:
        raise ValueError(f"unknown DD_AGENT_HOST variant {variant!r}; known: {', '.join(VARIANTS)}")


def shell_line(variant: str, command: str = APP_COMMAND) -> str | None:
    """The `sh -c` line of `variant` starting `command` (None for `in_code`)."""
    _check_variant(variant)
    prefix = AGENT_HOST_LINES[variant]
    return None if prefix is None else f"{prefix} {command}"


def entry_point(variant: str, command: str = APP_COMMAND) -> list[str] | None:
    """The task definition `entryPoint` of `variant`: `["sh", "-c", line]`, or None (`in_code`)."""
    line = shell_line(variant, command)
    return None if line is None else ["sh", "-c", line]


def container_command(variant: str) -> list[str] | None:
    """The task definition `command`: only `in_code` has one (its entryPoint is the image's)."""
    _check_variant(variant)
    return list(IN_CODE_COMMAND) if variant == "in_code" else None


def require_metadata_endpoint(env: Mapping[str, str] | None = None) -> str:
    """The IMDS base URL the lab handed this process; refuse to run without one.

    botocore and the AWS CLI fall back to http://169.254.169.254 when the variable is unset; on the
    lab's host that address is a real metadata service, so a lab app stops here instead.
    """
    env = os.environ if env is None else env
    endpoint = (env.get(METADATA_ENDPOINT_ENV) or "").strip()
    if not endpoint:
        raise AgentHostError(
            f"{METADATA_ENDPOINT_ENV} is not set: the lab hands every app its IMDS endpoint and a lab app "
            "never falls back to http://169.254.169.254 (on this host that address belongs to someone "
            "else). Set it to the fake IMDS URL (`ecs-lab status` shows imds_url)."
        )
    return endpoint.rstrip("/")


def require_agent_host(env: Mapping[str, str] | None = None) -> str:
    """DD_AGENT_HOST as the entryPoint line exported it; explain an empty result.

    The docs' lines never fail: a curl or jq error leaves DD_AGENT_HOST empty and the tracer would
    quietly send to localhost, which in bridge mode is the app's own container. Fail loudly instead.
    """
    env = os.environ if env is None else env
    host = (env.get("DD_AGENT_HOST") or "").strip()
    if not host and env.get("AWS_EXECUTION_ENV") == "AWS_ECS_FARGATE":
        # On Fargate the agent is a sidecar in the task's network namespace: the tracer's and the
        # DogStatsD client's default, localhost, is the agent (Datadog's ECS Fargate docs set no
        # DD_AGENT_HOST), and the task has no IMDS to ask.
        return "localhost"
    require_metadata_endpoint(env)
    if not host or host == "null":  # jq prints `null` for a missing key
        missing = [tool for tool in ("curl", "jq") if shutil.which(tool) is None]
        hint = f"; not installed here: {', '.join(missing)}" if missing else ""
        raise AgentHostError(
            f"DD_AGENT_HOST is {host or 'empty'!s}: the entryPoint's lookup found no agent host "
            f"({METADATA_ENDPOINT_ENV}={env.get(METADATA_ENDPOINT_ENV, '')!r}, "
            f"{METADATA_FILE_ENV}={env.get(METADATA_FILE_ENV, '')!r}); see the curl/jq error above{hint}"
        )
    return host


def fetch_local_ipv4(endpoint: str, timeout: float = 1.0) -> str:
    """IMDS `local-ipv4`, the way the SDKs ask: IMDSv2 token first, tokenless GET if the PUT fails.

    botocore's fetcher and the Datadog agent both try the token first and fall back to IMDSv1 when
    the PUT is refused or unsupported (404/403/405) or times out; a 401 on the GET means tokens are
    required and we had none.
    """
    base = endpoint.rstrip("/")
    token: str | None = None
    put = urllib.request.Request(
        f"{base}/latest/api/token", method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"},
    )
    try:
        with urllib.request.urlopen(put, timeout=timeout) as resp:  # noqa: S310 - lab-given URL
            token = resp.read().decode().strip() or None
    except urllib.error.HTTPError as exc:
        if exc.code not in (403, 404, 405):
            raise AgentHostError(f"IMDS token request to {base} failed: HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError) as exc:
        raise AgentHostError(f"IMDS at {base} is unreachable: {exc}") from None
    headers = {"X-aws-ec2-metadata-token": token} if token else {}
    get = urllib.request.Request(f"{base}/latest/meta-data/local-ipv4", headers=headers)
    try:
        with urllib.request.urlopen(get, timeout=timeout) as resp:  # noqa: S310 - lab-given URL
            ip = resp.read().decode().strip()
    except urllib.error.HTTPError as exc:
        raise AgentHostError(f"IMDS local-ipv4 from {base} failed: HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError) as exc:
        raise AgentHostError(f"IMDS at {base} is unreachable: {exc}") from None
    if not ip:
        raise AgentHostError(f"IMDS at {base} answered an empty local-ipv4")
    return ip


def task_definition(variant: str, *, image: str = LAB_IMAGE, service: str = "ecs-lab-web",
                    env: str = "lab", version: str = "1.0.0") -> dict:
    """The sample app's task definition for `variant`, as `aws ecs register-task-definition
    --cli-input-json` takes it (the files in `lab/apps/taskdefs/` are this, written out)."""
    _check_variant(variant)
    environment = {
        "DD_SERVICE": service,
        "DD_ENV": env,
        "DD_VERSION": version,
        # On a real instance this is where IMDS lives; the lab rewrites it to its fake (see module doc).
        METADATA_ENDPOINT_ENV: "http://169.254.169.254",
        "DD_LOGS_INJECTION": "true",
    }
    container: dict = {
        "name": "web",
        "image": image,
        "essential": True,
        "cpu": 64,
        "memory": 256,
        # A soft limit below the hard one: ECS places by it, and the agent's docker check reports it
        # (docker.mem.soft_limit) beside the hard limit (docker.mem.limit).
        "memoryReservation": 128,
        "portMappings": [{"containerPort": APP_PORT, "protocol": "tcp"}],
        "environment": [{"name": k, "value": v} for k, v in environment.items()],
        # Unified service tagging from labels, so the agent tags container metrics the same way.
        "dockerLabels": {
            "com.datadoghq.tags.service": service,
            "com.datadoghq.tags.env": env,
            "com.datadoghq.tags.version": version,
        },
    }
    ep = entry_point(variant)
    if ep is not None:
        container["entryPoint"] = ep
    cmd = container_command(variant)
    if cmd is not None:
        container["command"] = cmd
    return {
        "family": f"ecs-lab-web-{variant.replace('_', '-')}",
        "networkMode": "bridge",
        "requiresCompatibilities": ["EC2"],
        "containerDefinitions": [container],
    }


def task_definition_json(variant: str) -> str:
    """`task_definition(variant)` as the file text in `lab/apps/taskdefs/<variant>.json`."""
    return json.dumps(task_definition(variant), indent=2) + "\n"
