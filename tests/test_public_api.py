"""The entry point for users' own test suites, used exactly as such a suite uses it:
`from lab import EcsLab, Stack`, a `with` block, and only what `EcsLab` exposes (intake client,
agents, apps, endpoints). The lab runs on a free loopback subnet with port 0 for its shared servers,
so it never meets another lab on this machine."""

from __future__ import annotations

import socket
import urllib.request
from urllib.parse import urlparse

import psutil

from lab import EcsLab, Stack
from lab.pytest_plugin import free_subnet
from lab.stack import Ports


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _answers(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=1):
            return True
    except OSError:
        return False


def _get(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as resp:
        return resp.read().decode()


def test_a_users_suite_starts_a_lab_sends_a_trace_checks_the_agent_and_leaves_nothing(tmp_path):
    import boto3

    subnet = free_subnet()
    stack = Stack(apps=("imdsv1",), subnet=subnet, services_host=f"{subnet}.0.1", ports=Ports.ephemeral(),
                  run_dir=tmp_path / "run", cluster=f"users-suite-{subnet.replace('.', '-')}")

    with EcsLab(stack, backend="local") as lab:
        # The agents: one per instance, at the instance's private IP, each a task of the cluster.
        (agent,) = lab.agents
        assert agent.private_ip == stack.private_ip(1)
        assert agent.apm_url == f"http://{stack.private_ip(1)}:{stack.ports.apm}"
        assert agent.dogstatsd == (stack.private_ip(1), stack.ports.dogstatsd)
        assert agent.instance_id.startswith("i-")
        assert agent.task_arn and f":task/{stack.cluster}/" in agent.task_arn

        # The endpoints answer as their real counterparts: the ECS API knows the agent's task, the
        # instance's IMDS names the agent's instance, the intake is fakeintake-healthy.
        ends = lab.endpoints
        ecs = boto3.client("ecs", endpoint_url=ends.control_plane, region_name="us-east-1",
                           aws_access_key_id="test", aws_secret_access_key="test")
        assert agent.task_arn in ecs.list_tasks(cluster=stack.cluster)["taskArns"]
        assert _get(f"{ends.imds[1]}/latest/meta-data/instance-id") == agent.instance_id
        assert lab.intake.health()

        # A trace from a sample app reaches the intake through the agent, under the instance's id.
        app = lab.apps["imdsv1"]
        trace_id = int(app.get("/work?ms=2&depth=2")["trace_id"])
        # The tracer's ids are 128-bit; a span on the wire carries the low 64 bits (the high half is
        # the `_dd.p.tid` tag).
        low = trace_id & (2**64 - 1)
        spans = lab.intake.wait_for_spans(service=app.service, timeout=30,
                                          predicate=lambda s: int(s.get("trace_id") or 0) == low)
        assert spans[0]["hostname"] == agent.instance_id

        # The agent answers its own CLI in its container, as `docker exec ... agent health` does.
        code, out = agent.health()
        assert code == 0, out
        assert "Agent health: PASS" in out

        status = lab.status()
        pids = {name: p["pid"] for name, p in status["processes"].items() if p.get("pid")}
        assert "agent-1" in pids and status["apps"]["imdsv1"]["pid"] in pids.values(), pids
        assert all(_alive(pid) for pid in pids.values()), pids
        intake_url = ends.intake

    gone_late = {name: pid for name, pid in pids.items() if _alive(pid)}
    assert not gone_late, f"processes still running after the lab stopped: {gone_late}"
    assert not _answers(intake_url), f"the intake still answers at {intake_url} after the lab stopped"
