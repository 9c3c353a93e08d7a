"""container_metrics: per-task container metrics, the classic reason teams run the agent on ECS.

With the docker socket (docker backend) the agent's `container` and `docker` checks report each
container's cpu, memory, io, network and the running containers from docker stats; on the local
backend an ECS container is a process group and the same container.* metrics come from its
processes. Every series carries the task's ECS tags at high cardinality (task_family, task_version,
ecs_container_name, container_name, container_id, ...), so a task's usage can be graphed per task.
The values are real: the app that holds memory since the send phase (`/memory?mb=N`) uses that much
more than its twin that does not.

Waits: core check runs (rates need two) + one aggregator flush, counted from the send phase.
"""

from __future__ import annotations

import pytest

from lab.world import wait_until

pytestmark = pytest.mark.agent_offers("check_metrics")

MIB = 1 << 20


def _app_tags(app) -> list[str]:
    return [f"task_family:{app.service}-task", f"task_version:{app.task_version}", "ecs_container_name:app",
            "ecs_cluster_name:ecs-lab", f"container_id:{app.docker_id}"]


def _latest(intake, name: str, tags: list[str]) -> float | None:
    points = [(p["timestamp"], p["value"]) for s in intake.metrics(name, tags=tags) for p in s["points"]]
    return max(points)[1] if points else None


def test_the_app_task_s_container_metrics_arrive_with_its_ecs_tags(lab, apps, agent, send_phase):
    app, intake = apps["imdsv1"], send_phase.intake
    tags = _app_tags(app)
    with send_phase.wait("check_metrics") as timeout:
        series = intake.wait_for_metric("container.memory.usage", tags=tags, timeout=timeout)
    s = series[0]
    assert any(t.startswith("container_name:") for t in s["tags"]), s["tags"]
    resources = {(r["type"], r["name"]) for r in s.get("resources", [])}
    assert ("host", agent.instance_id) in resources or s.get("host") == agent.instance_id, s
    assert s["points"][0]["value"] > 5 * MIB, f"a Python app uses more than 5 MiB: {s['points']}"
    # Rates need two check runs.
    with send_phase.wait("check_metrics", runs=2) as timeout:
        cpu = intake.wait_for_metric("container.cpu.usage", tags=tags, timeout=timeout)
        threads = intake.wait_for_metric("container.pid.thread_count", tags=tags, timeout=timeout)
    assert all(p["value"] >= 0 for c in cpu for p in c["points"])
    assert threads[0]["points"][0]["value"] >= 1
    if lab.state.get("backend") == "docker":
        # The docker check's names for the same values, and what the engine runs.
        with send_phase.wait("check_metrics", runs=2) as timeout:
            intake.wait_for_metric("docker.mem.rss", tags=[*tags, "runtime:docker"], timeout=timeout)
            intake.wait_for_metric("container.net.rcvd", tags=tags, timeout=timeout)
            running = intake.wait_for_metric("docker.containers.running", timeout=timeout)
        assert sum(p["value"] for r in running for p in r["points"][:1]) >= 1 + len(apps)
    else:
        assert not intake.metrics("docker.containers.running"), "no docker socket on the local backend"


def test_memory_follows_what_the_app_holds(apps, send_phase):
    holder, twin, intake = apps["imdsv1"], apps["imdsv2"], send_phase.intake
    held = send_phase.held_mb.get("imdsv1")
    assert held == 96, f"the send phase should have made {holder.service} hold 96 MiB, it holds {held}"
    with send_phase.wait("check_metrics") as timeout:
        wait_until(lambda: (_latest(intake, "container.memory.usage", _app_tags(holder)) or 0)
                   > (_latest(intake, "container.memory.usage", _app_tags(twin)) or float("inf")) + 80 * MIB,
                   timeout, what=f"container.memory.usage of {holder.service} (holding {held} MiB) to "
                                 f"exceed its twin {twin.service}'s by 80 MiB")
    # Letting go: one more check run and flush from now on.
    before = _latest(intake, "container.memory.usage", _app_tags(holder))
    holder.get("/memory?mb=0")
    send_phase.held_mb.pop("imdsv1")
    with send_phase.wait_from_now("check_metrics") as timeout:
        wait_until(lambda: (_latest(intake, "container.memory.usage", _app_tags(holder)) or before)
                   < before - 40 * MIB, timeout,
                   what=f"container.memory.usage of {holder.service} to drop once the app lets the memory go")
