"""container_metrics: per-task container metrics, the classic reason teams run the agent on ECS.

With the docker socket (docker backend) the agent's `container` and `docker` checks report each
container's cpu, memory, io, network and the running containers from docker stats; on the local
backend an ECS container is a process group and the same container.* metrics come from its
processes. Every series carries the task's ECS tags at high cardinality (task_family, task_version,
ecs_container_name, container_name, container_id, ...), so a task's usage can be graphed per task.
The values are real: the app's memory grows when it holds memory (`/memory?mb=N`).
"""

from __future__ import annotations

from lab.world import wait_until

MIB = 1 << 20


def _app_tags(app) -> list[str]:
    return [f"task_family:{app.service}-task", "task_version:1", "ecs_container_name:app",
            "ecs_cluster_name:ecs-lab", f"container_id:{app.docker_id}"]


def _latest(intake, name: str, tags: list[str]) -> float | None:
    points = [(p["timestamp"], p["value"]) for s in intake.metrics(name, tags=tags) for p in s["points"]]
    return max(points)[1] if points else None


def test_the_app_task_s_container_metrics_arrive_with_its_ecs_tags(lab, apps, agent, intake):
    app = apps["imdsv1"]
    tags = _app_tags(app)
    series = intake.wait_for_metric("container.memory.usage", tags=tags, timeout=30)
    s = series[0]
    assert any(t.startswith("container_name:") for t in s["tags"]), s["tags"]
    resources = {(r["type"], r["name"]) for r in s.get("resources", [])}
    assert ("host", agent.instance_id) in resources or s.get("host") == agent.instance_id, s
    assert s["points"][0]["value"] > 5 * MIB, f"a Python app uses more than 5 MiB: {s['points']}"
    # Rates need two check runs: they follow.
    cpu = intake.wait_for_metric("container.cpu.usage", tags=tags, timeout=30)
    assert all(p["value"] >= 0 for c in cpu for p in c["points"])
    threads = intake.wait_for_metric("container.pid.thread_count", tags=tags, timeout=30)
    assert threads[0]["points"][0]["value"] >= 1
    if lab.state.get("backend") == "docker":
        # The docker check's names for the same values, and what the engine runs.
        intake.wait_for_metric("docker.mem.rss", tags=[*tags, "runtime:docker"], timeout=30)
        intake.wait_for_metric("container.net.rcvd", tags=tags, timeout=30)
        running = intake.wait_for_metric("docker.containers.running", timeout=30)
        assert sum(p["value"] for r in running for p in r["points"][:1]) >= 1 + len(apps)
    else:
        assert not intake.metrics("docker.containers.running"), "no docker socket on the local backend"


def test_memory_follows_what_the_app_holds(apps, intake):
    app = apps["imdsv1"]
    tags = _app_tags(app)
    app.get("/memory?mb=0")
    intake.wait_for_metric("container.memory.usage", tags=tags, timeout=30)
    before = _latest(intake, "container.memory.usage", tags)
    try:
        assert app.get("/memory?mb=96") == {"held_mb": 96}
        wait_until(lambda: (_latest(intake, "container.memory.usage", tags) or 0) > before + 80 * MIB, 30,
                   what=f"container.memory.usage of {app.service} to grow from {before / MIB:.0f} MiB by the "
                        "96 MiB the app now holds")
    finally:
        app.get("/memory?mb=0")
    wait_until(lambda: (_latest(intake, "container.memory.usage", tags) or 0) < before + 40 * MIB, 30,
               what="container.memory.usage to drop once the app lets the memory go")
