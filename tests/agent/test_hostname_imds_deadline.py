"""The agent's IMDS timeout (`ec2_metadata_timeout`, 300 ms) is a deadline for each whole request, as
the real agent's Go client has it (`http.Client.Timeout`), not a limit per socket call.

The flake this pins (scenarios/resilience `test_imds_slow_or_off[slow]`, one local run in eleven on
a loaded host): with IMDS answering after 500 ms, a restarted agent still reported the instance-id.
Its per-socket-call timeout restarted when it began to read; had it stalled 200 ms between sending
and reading (a GC pause, waiting for a CPU), the 500 ms answer came within "300 ms" of the read.
The stall is made here on purpose, at the same place, so the test does not depend on the host's load.
"""

from __future__ import annotations

import http.client
import time

import pytest

from lab.agent.config import AgentConfig
from lab.agent.hostname import imds_call, resolve_hostname
from lab.fakes.imds.server import ImdsServer
from lab.world import World

STALL = 0.25  # seconds between sending a request and reading its answer


@pytest.fixture
def imds():
    world = World()
    inst = world.add_instance("127.0.0.1")
    with ImdsServer(world) as server:
        yield server, server.listen("127.0.0.1", 0, inst).url, inst


@pytest.fixture
def stalled_reads(monkeypatch):
    """Every HTTP client of this process stalls STALL seconds after sending, before reading."""
    getresponse = http.client.HTTPConnection.getresponse

    def stalled(self, *args, **kwargs):
        time.sleep(STALL)
        return getresponse(self, *args, **kwargs)

    monkeypatch.setattr(http.client.HTTPConnection, "getresponse", stalled)


def ecs_ec2_env(url: str) -> dict[str, str]:
    return {"DD_API_KEY": "k", "AWS_EXECUTION_ENV": "AWS_ECS_EC2", "AWS_EC2_METADATA_SERVICE_ENDPOINT": url}


def test_an_imds_slower_than_the_timeout_is_a_timeout_even_when_the_agent_stalls(imds, stalled_reads):
    server, url, inst = imds
    server.model.faults.add(path="*", delay=0.5)
    env = ecs_ec2_env(url)
    result = resolve_hostname(AgentConfig.from_env(env), env)
    assert (result.hostname, result.provider) != (inst.instance_id, "aws"), (
        "an IMDS answering after 500 ms was taken within a 300 ms timeout")
    assert result.provider == "os"
    assert "within 300 ms" in result.errors["aws"], result.errors


def test_a_stall_within_the_deadline_still_reads_the_instance_id(imds, stalled_reads):
    _, url, inst = imds
    env = ecs_ec2_env(url)
    result = resolve_hostname(AgentConfig.from_env(env), env)
    assert (result.hostname, result.provider) == (inst.instance_id, "aws")


def test_the_deadline_follows_ec2_metadata_timeout(imds):
    server, url, inst = imds
    server.model.faults.add(path="*", delay=0.5)
    env = {**ecs_ec2_env(url), "DD_EC2_METADATA_TIMEOUT": "2000"}
    result = resolve_hostname(AgentConfig.from_env(env), env)
    assert (result.hostname, result.provider) == (inst.instance_id, "aws")


def test_a_refusal_names_the_status_as_the_agent_does(imds):
    server, url, inst = imds
    server.model.faults.add(path="*", status=403)
    with pytest.raises(OSError, match=r"^status code 403 trying to GET .*/latest/meta-data/instance-id$"):
        imds_call("GET", url + "/latest/meta-data/instance-id", {}, 0.3)
    env = ecs_ec2_env(url)
    result = resolve_hostname(AgentConfig.from_env(env), env)
    assert result.provider == "os"
    assert "status code 403" in result.errors["aws"], result.errors
