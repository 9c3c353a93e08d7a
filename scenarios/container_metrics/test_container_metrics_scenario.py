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


# The docker.* names a user of the ECS integration graphs (the seed document's list of 20), by what
# the docker check tags them with: per container (the task's ECS tags + runtime:docker), per tag
# group (docker.containers.running / .stopped) or untagged (the totals).
PER_CONTAINER = ("docker.cpu.system", "docker.cpu.throttled", "docker.cpu.usage", "docker.cpu.user",
                 "docker.io.read_bytes", "docker.io.write_bytes", "docker.mem.cache", "docker.mem.in_use",
                 "docker.mem.limit", "docker.mem.rss", "docker.mem.soft_limit", "docker.mem.sw_in_use",
                 "docker.mem.sw_limit", "docker.mem.swap", "docker.net.bytes_rcvd", "docker.net.bytes_sent")
UNTAGGED = ("docker.containers.running.total", "docker.containers.stopped.total")
PER_GROUP = ("docker.containers.running", "docker.containers.stopped")
SEED_LIST = PER_CONTAINER + UNTAGGED + PER_GROUP


def test_every_docker_metric_of_the_ecs_integration_arrives(lab, apps, send_phase):
    """The docker check's 20 names on the docker backend, each with the semantics a graph relies on:
    limits from the task definition (`memory` 256 MiB, `memoryReservation` 128 MiB, docker's default
    swap of as much again), a stopped container counted by its image."""
    import docker as docker_sdk

    assert len(set(SEED_LIST)) == 20
    app, intake = apps["imdsv1"], send_phase.intake
    if lab.state.get("backend") != "docker":
        # A process has no cgroup of its own and no engine counts it: no docker.* at all, while the
        # container.* equivalents a process can report (its swap among them) arrive.
        with send_phase.wait("check_metrics") as timeout:
            intake.wait_for_metric("container.memory.swap", tags=_app_tags(app), timeout=timeout)
        assert not [n for n in SEED_LIST if intake.metrics(n)], "no docker.* without a docker socket"
        return
    engine = docker_sdk.from_env()
    # A container that exists but does not run (as an exited task container left on an instance).
    stopped = engine.containers.create("ecs-agent-lab/lab:latest", command=["true"],
                                       labels={"ecs-agent-lab.scenario": "container_metrics"})
    try:
        tags = [*_app_tags(app), "runtime:docker"]
        with send_phase.wait("check_metrics", runs=2) as timeout:
            got = {n: intake.wait_for_metric(n, tags=tags, timeout=timeout)[-1] for n in PER_CONTAINER}
        # Series sent before the stopped container existed count none: wait for one that counts it.
        counts_it = lambda s: s["points"][-1]["value"] >= 1  # noqa: E731
        with send_phase.wait_from_now("check_metrics") as timeout:
            got.update({n: intake.wait_for_metric(n, timeout=timeout)[-1] for n in UNTAGGED
                        if n != "docker.containers.stopped.total"})
            got["docker.containers.stopped.total"] = intake.wait_for_metric(
                "docker.containers.stopped.total", timeout=timeout, predicate=counts_it)[-1]
            got["docker.containers.stopped"] = intake.wait_for_metric(
                "docker.containers.stopped", tags=["short_image:lab", "image_tag:latest"],
                timeout=timeout, predicate=counts_it)[-1]
            got["docker.containers.running"] = intake.wait_for_metric(
                "docker.containers.running", tags=[f"task_family:{app.service}-task"], timeout=timeout)[-1]
    finally:
        stopped.remove(force=True)
    value = {n: s["points"][-1]["value"] for n, s in got.items()}
    mib = float(MIB)
    assert value["docker.mem.limit"] == 256 * mib and value["docker.mem.soft_limit"] == 128 * mib, value
    assert value["docker.mem.sw_limit"] == 512 * mib, "docker's default swap: as much again as the limit"
    assert 0 < value["docker.mem.in_use"] < 1 and 0 < value["docker.mem.sw_in_use"] < 1, value
    assert value["docker.containers.stopped.total"] >= 1 and value["docker.containers.stopped"] >= 1
    assert value["docker.containers.running.total"] >= 1 + len(apps)
    assert value["docker.containers.running"] >= 1, "the app task's running container, by its tags"
    assert got["docker.containers.running.total"]["tags"] == [], got["docker.containers.running.total"]
    assert all(p["value"] >= 0 for n in PER_CONTAINER for p in got[n]["points"])
