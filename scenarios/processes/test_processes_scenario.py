"""processes: with DD_PROCESS_AGENT_ENABLED=true the app's process shows up in the process payloads
(`/api/v1/collector`, v3 process codec) under the instance's hostname, attributed to its container,
and the payloads carry that container with its ECS tags.

Waits: the process check's interval, twice (its first run sends nothing), from the send phase."""

from __future__ import annotations

import psutil
import pytest

pytestmark = pytest.mark.agent_offers("processes")


def test_the_app_process_is_in_the_process_payloads(apps, agent, send_phase):
    app = apps["imdsv1"]
    # The container's process tree: the entryPoint's shell `exec`s ddtrace-run, which runs the app.
    tree = {app.pid, *(p.pid for p in psutil.Process(app.pid).children(recursive=True))}
    with send_phase.wait("processes") as timeout:
        found = send_phase.intake.wait_for_processes(
            lambda p: p.get("pid") in tree and "lab.apps" in p["cmdline"], timeout=timeout)
    mine = found[0]
    assert mine["hostName"] == agent.instance_id, "process payloads carry the agent's hostname (instance-id)"
    assert mine.get("containerId") == app.docker_id, (
        f"the app's process should be attributed to its container {app.docker_id[:12]}, "
        f"got {mine.get('containerId')!r}")


def test_process_payloads_carry_the_app_container_with_ecs_tags(apps, send_phase):
    """With process collection on, the agent's process check sends the containers too (its
    container check, `/api/v1/container`, runs only when process collection is off)."""
    app = apps["imdsv1"]
    with send_phase.wait("processes") as timeout:
        payloads = send_phase.intake.wait_for_payloads("/api/v1/collector", timeout=timeout,
                                                       container_id=app.docker_id)
    containers = [c for p in payloads for c in p["data"]["body"].get("containers", [])
                  if c["id"] == app.docker_id]
    assert containers, f"no process payload carries container {app.docker_id[:12]} in its containers"
    assert f"task_family:{app.service}-task" in containers[0]["tags"]
    assert "ecs_cluster_name:ecs-lab" in containers[0]["tags"]
