"""The agent's hostname: DD_HOSTNAME, else on ECS EC2 the IMDS `instance-id`, else the OS hostname.

pkg/util/ec2 (`GetInstanceID`): 300 ms timeout (`ec2_metadata_timeout`), an IMDSv2 token first
(`PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds`), then a tokenless GET when
the token call fails. The lab never falls back to the 169.254.169.254 default on the host: the
endpoint comes from `AWS_EC2_METADATA_SERVICE_ENDPOINT`, and the link-local default is used only
where the lab owns that address (`LAB_AGENT_ALLOW_LINK_LOCAL_IMDS=1`, the docker backend).
"""

from __future__ import annotations

import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from lab.agent.config import AgentConfig

log = logging.getLogger("lab.agent.hostname")

LINK_LOCAL_IMDS = "http://169.254.169.254"
TOKEN_TTL_SECONDS = "21600"

# No proxy for metadata calls, whatever the environment says (the agent bypasses proxies for IMDS).
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class HostnameResult:
    hostname: str
    provider: str  # "configuration", "aws" (IMDS instance-id), "os"
    detail: str = ""


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


def fetch_instance_id(base: str, timeout: float = 0.3) -> str:
    """Token first, tokenless GET as fallback; raises OSError when neither answers."""
    token = None
    try:
        req = urllib.request.Request(
            base + "/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": TOKEN_TTL_SECONDS},
        )
        with _opener.open(req, timeout=timeout) as resp:
            token = resp.read().decode().strip()
    except (OSError, urllib.error.URLError) as exc:
        log.debug("IMDSv2 token request failed (%s); trying IMDSv1", exc)
    headers = {"X-aws-ec2-metadata-token": token} if token else {}
    req = urllib.request.Request(base + "/latest/meta-data/instance-id", headers=headers)
    with _opener.open(req, timeout=timeout) as resp:
        value = resp.read().decode().strip()
    if not value:
        raise OSError("IMDS returned an empty instance-id")
    return value


def resolve_hostname(config: AgentConfig, env: Mapping[str, str]) -> HostnameResult:
    if config.hostname:
        return HostnameResult(config.hostname, "configuration")
    if config.ecs_fargate:
        # A sidecar has no host of its own: on ECS Fargate the agent reports an empty hostname and
        # never asks IMDS (unreachable from a Fargate task); the task's tags identify its data.
        return HostnameResult("", "fargate", "ECS_FARGATE=true")
    if is_ecs_ec2(env):
        base = imds_base(config)
        if base is None:
            log.warning(
                "on ECS EC2 but AWS_EC2_METADATA_SERVICE_ENDPOINT is not set; the lab never "
                "asks the host's 169.254.169.254 (set LAB_AGENT_ALLOW_LINK_LOCAL_IMDS=1 where "
                "the lab owns it)"
            )
        else:
            for attempt in range(3):
                try:
                    return HostnameResult(fetch_instance_id(base, config.imds_timeout), "aws", base)
                except (OSError, urllib.error.URLError) as exc:
                    log.warning("could not read instance-id from %s (attempt %d): %s", base, attempt + 1, exc)
    return HostnameResult(socket.gethostname(), "os")
