"""The agent's hostname where IMDS answers nothing (an ECS Anywhere host): the EC2 provider is tried
(the agent is on ECS) and fails at once, and the hostname an earlier provider found stays: the
instance's name from its docker daemon, else the OS hostname."""

from __future__ import annotations

import socket
import time

import pytest

from lab.agent.config import AgentConfig
from lab.agent.hostname import resolve_hostname
from lab.tasks import INSTANCE_HOSTNAME_ENV


@pytest.fixture
def refused_url():
    """A loopback port that refuses connections: bound, never listening, held for the test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def on_prem_env(imds_url: str, **extra: str) -> dict[str, str]:
    # What an ECS Anywhere container has: the ECS agent's metadata URIs, no AWS_EXECUTION_ENV.
    return {"DD_API_KEY": "k", "ECS_CONTAINER_METADATA_URI_V4": "http://127.0.0.1:51679/v4/x",
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds_url, **extra}


def test_the_instances_docker_name_stays_when_imds_refuses(refused_url):
    env = on_prem_env(refused_url, **{INSTANCE_HOSTNAME_ENV: "onprem-host-2"})
    t0 = time.monotonic()
    result = resolve_hostname(AgentConfig.from_env(env), env)
    assert (result.hostname, result.provider) == ("onprem-host-2", "container")
    assert result.errors["aws"].startswith("Unable to determine hostname from EC2")
    assert "container" not in result.errors
    assert time.monotonic() - t0 < 2.0, "a refused IMDS must fail fast, not wait out timeouts"


def test_without_a_docker_name_the_os_hostname_is_used(refused_url):
    env = on_prem_env(refused_url)
    result = resolve_hostname(AgentConfig.from_env(env), env)
    assert (result.hostname, result.provider) == (socket.gethostname(), "os")
    assert set(result.errors) >= {"container", "aws"}
    assert not result.hostname.startswith(("i-", "mi-"))


def test_dd_hostname_still_wins_on_premises(refused_url):
    env = on_prem_env(refused_url, DD_HOSTNAME="given", **{INSTANCE_HOSTNAME_ENV: "onprem-host-2"})
    assert resolve_hostname(AgentConfig.from_env(env), env).hostname == "given"
