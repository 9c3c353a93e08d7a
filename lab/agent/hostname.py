"""The agent's hostname, by the real agent's providers in their order (pkg/util/hostname/providers.go,
common.go and container.go of DataDog/datadog-agent):

1. configuration: DD_HOSTNAME;
2. fargate: on ECS Fargate no hostname at all;
3. container: a containerized agent asks its docker daemon (`docker info` Name, the host's name).
   The lab's agent runs as a process on the local backend and has no docker daemon of the
   instance to ask: the backend hands it that name in LAB_INSTANCE_HOSTNAME (ECS Anywhere hosts);
4. os: the OS hostname, only when no earlier provider found one;
5. aws: on ECS (pkg/config/env IsECS: AWS_EXECUTION_ENV=AWS_ECS_EC2 or the ECS agent's metadata
   variables, so ECS Anywhere too) the EC2 `instance-id` from IMDS replaces what was found; when IMDS
   does not answer (on-premises), the earlier hostname stays and the error is recorded.

pkg/util/ec2 (`GetInstanceID`): 300 ms timeout (`ec2_metadata_timeout`), an IMDSv2 token first (`PUT
/latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds`), then a tokenless GET when the token
call fails. The timeout is a deadline for each whole request (pkg/util/http `Get`/`Put` give it to
Go's `http.Client.Timeout`: connecting, the answer and its body), so an IMDS slower than 300 ms is a
timeout however the agent's own process is scheduled meanwhile. The lab never falls back to the
169.254.169.254 default on the host: the endpoint comes from `AWS_EC2_METADATA_SERVICE_ENDPOINT`,
and the link-local default is used only where the lab owns that address
(`LAB_AGENT_ALLOW_LINK_LOCAL_IMDS=1`, the docker backend). Each provider's error is kept as `agent
status` shows it (`hostnameStats.errors`, keyed by the provider's expvar name).
"""

from __future__ import annotations

import http.client
import logging
import socket
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from lab.agent.config import AgentConfig
from lab.tasks import INSTANCE_HOSTNAME_ENV

log = logging.getLogger("lab.agent.hostname")

LINK_LOCAL_IMDS = "http://169.254.169.254"
TOKEN_TTL_SECONDS = "21600"

# The most of an IMDS answer's body that is read (an instance-id or a token is tens of bytes).
MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class HostnameResult:
    hostname: str
    provider: str  # "configuration", "fargate", "container", "os", "aws" (IMDS instance-id)
    detail: str = ""
    # Provider (its expvar name) -> why it gave no hostname, as `agent status` lists them.
    errors: dict[str, str] = field(default_factory=dict, compare=False)


def is_ecs_ec2(env: Mapping[str, str]) -> bool:
    """pkg/config/env IsECS: AWS_EXECUTION_ENV=AWS_ECS_EC2, or the ECS agent's env on our container."""
    if env.get("AWS_EXECUTION_ENV") == "AWS_ECS_EC2":
        return True
    return any(
        env.get(k)
        for k in (
            "ECS_CONTAINER_METADATA_URI_V4",
            "ECS_CONTAINER_METADATA_URI",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        )
    )


def imds_base(config: AgentConfig) -> str | None:
    if config.imds_endpoint:
        return config.imds_endpoint
    if config.allow_link_local:
        return LINK_LOCAL_IMDS
    return None


def imds_call(method: str, url: str, headers: Mapping[str, str], timeout: float) -> str:
    """One IMDS request under one deadline for the whole of it: connect, send, the answer and its
    body, as the agent's Go client (`http.Client.Timeout`). The body of a 200 answer, else OSError.

    A per-socket-call timeout (urllib's) restarts at every read: an agent that stalls between
    sending and reading (a GC pause, waiting for a CPU on a loaded host) would still take an answer
    that came long after the deadline, and report the instance-id where the real agent falls back.
    An answer that completes after the deadline is a timeout here, whatever came in meanwhile.
    Never through a proxy, whatever the environment says (the agent bypasses proxies for IMDS).
    """
    deadline = time.monotonic() + timeout

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{method} {url}: no complete answer within {timeout * 1000:.0f} ms "
                               "(ec2_metadata_timeout)")
        return remaining

    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=left())
    try:
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(left())
        conn.request(method, parts.path or "/", headers=dict(headers))
        conn.sock.settimeout(left())
        resp = conn.getresponse()
        body = resp.read(MAX_BODY)  # the socket waits at most what was left before the answer
        left()  # the whole exchange, body included, within the deadline
    except http.client.HTTPException as exc:
        raise OSError(f"{method} {url}: {exc!r}") from exc
    finally:
        conn.close()
    if resp.status != 200:
        raise OSError(f"status code {resp.status} trying to {method} {url}")  # pkg/util/http's wording
    return body.decode(errors="replace").strip()


def fetch_instance_id(base: str, timeout: float = 0.3) -> str:
    """Token first, tokenless GET as fallback; raises OSError when neither answers in time."""
    token = None
    try:
        token = imds_call("PUT", base + "/latest/api/token",
                          {"X-aws-ec2-metadata-token-ttl-seconds": TOKEN_TTL_SECONDS}, timeout)
    except OSError as exc:
        log.debug("IMDSv2 token request failed (%s); trying IMDSv1", exc)
    headers = {"X-aws-ec2-metadata-token": token} if token else {}
    value = imds_call("GET", base + "/latest/meta-data/instance-id", headers, timeout)
    if not value:
        raise OSError("IMDS returned an empty instance-id")
    return value


def resolve_hostname(config: AgentConfig, env: Mapping[str, str]) -> HostnameResult:
    errors: dict[str, str] = {}
    if config.hostname:
        return HostnameResult(config.hostname, "configuration")
    errors["'hostname' configuration/environment"] = "hostname is empty"
    if config.ecs_fargate:
        # A sidecar has no host of its own: on ECS Fargate the agent reports an empty hostname and
        # never asks IMDS (unreachable from a Fargate task); the task's tags identify its data.
        return HostnameResult("", "fargate", "ECS_FARGATE=true", errors)
    errors["fargate"] = "agent is not runnning on Fargate"  # sic: upstream's wording
    hostname, provider, detail = "", "", ""
    instance_name = (env.get(INSTANCE_HOSTNAME_ENV) or "").strip()
    if instance_name:
        hostname, provider, detail = instance_name, "container", "the instance's docker daemon"
    else:
        errors["container"] = "no container environment detected or none of them detected a valid hostname"
    if not hostname:
        hostname, provider = socket.gethostname(), "os"
    else:
        errors["os"] = "Skipping OS hostname as a previous provider found a valid hostname"
    if not is_ecs_ec2(env):
        errors["aws"] = ("not retrieving hostname from AWS: the host is not an ECS instance and other "
                         "providers already retrieve non-default hostnames")
        return HostnameResult(hostname, provider, detail, errors)
    base = imds_base(config)
    if base is None:
        log.warning(
            "on ECS but AWS_EC2_METADATA_SERVICE_ENDPOINT is not set; the lab never asks the host's "
            "169.254.169.254 (set LAB_AGENT_ALLOW_LINK_LOCAL_IMDS=1 where the lab owns it)"
        )
        errors["aws"] = "Unable to determine hostname from EC2: no metadata endpoint"
        return HostnameResult(hostname, provider, detail, errors)
    last: Exception | None = None
    for attempt in range(3):
        try:
            return HostnameResult(fetch_instance_id(base, config.imds_timeout), "aws", base, errors)
        except OSError as exc:
            last = exc
            log.warning("could not read instance-id from %s (attempt %d): %s", base, attempt + 1, exc)
    errors["aws"] = f"Unable to determine hostname from EC2: {last}"
    return HostnameResult(hostname, provider, detail, errors)
