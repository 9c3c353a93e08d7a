"""Per-container metrics (the agent's `container` / `docker` checks): docker stats and a local
container's processes become container.* / docker.* series, tagged with the task's ECS tags."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from lab.agent.containers import (
    ContainerCheck,
    EngineContainers,
    image_tags,
    read_memory_cgroup,
    sample_from_docker_stats,
    sample_from_processes,
)
from lab.fakes.ecs_metadata.model import container_env
from lab.fakes.ecs_metadata.server import EcsMetadataServer
from lab.world import Container, Task, World, wait_until

# `docker stats --no-stream` of a cgroup v1 container (the engine here), trimmed to what is read.
STATS_V1 = {
    "cpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000, "usage_in_usermode": 1_500_000_000,
                                "usage_in_kernelmode": 400_000_000}},
    "memory_stats": {"usage": 50_000_000, "limit": 8_000_000_000,
                     "stats": {"rss": 30_000_000, "cache": 15_000_000}},
    "blkio_stats": {
        "io_service_bytes_recursive": [{"major": 8, "minor": 0, "op": "Read", "value": 4096},
                                       {"major": 8, "minor": 0, "op": "Write", "value": 8192},
                                       {"major": 8, "minor": 0, "op": "Total", "value": 12288}],
        "io_serviced_recursive": [{"major": 8, "minor": 0, "op": "Read", "value": 2},
                                  {"major": 8, "minor": 0, "op": "Write", "value": 3}]},
    "networks": {"eth0": {"rx_bytes": 1000, "tx_bytes": 500}, "eth1": {"rx_bytes": 10, "tx_bytes": 5}},
    "pids_stats": {"current": 7},
}
INSPECT = {"HostConfig": {"Memory": 536_870_912}, "State": {"StartedAt": "2026-01-01T00:00:00.5Z"},
           "Config": {"Image": "ecs-agent-lab/lab:latest"}}


def test_docker_stats_become_the_checks_values():
    s = sample_from_docker_stats("c1", STATS_V1, INSPECT, now=1767225610.5)
    assert s.runtime == "docker" and s.image == "ecs-agent-lab/lab:latest"
    assert s.values == {
        "container.cpu.usage": 2e9, "container.cpu.user": 1.5e9, "container.cpu.system": 4e8,
        "container.memory.usage": 5e7, "container.memory.rss": 3e7, "container.memory.cache": 1.5e7,
        "container.memory.limit": 536_870_912.0,  # the container's limit, not the host's memory
        "container.io.read": 4096.0, "container.io.write": 8192.0,
        "container.io.read.operations": 2.0, "container.io.write.operations": 3.0,
        "container.net.rcvd": 1010.0, "container.net.sent": 505.0,
        "container.pid.thread_count": 7.0, "container.uptime": 10.0,
    }


def test_cgroup_v2_stats_and_a_shared_netns():
    stats = {"memory_stats": {"usage": 9, "stats": {"anon": 6, "file": 2}},
             "blkio_stats": {"io_service_bytes_recursive": None}, "pids_stats": {}}
    s = sample_from_docker_stats("c1", stats, {"HostConfig": {"Memory": 0}})
    assert s.values == {"container.memory.usage": 9.0, "container.memory.rss": 6.0,
                        "container.memory.cache": 2.0}


def test_rates_need_two_runs_and_docker_names_follow_the_agent_s_adapter():
    check = ContainerCheck("i-0abc")
    tags = ["task_family:web", "ecs_container_name:app"]
    first = check.run([sample_from_docker_stats("c1", STATS_V1, INSPECT, now=1767225610.5)],
                      lambda cid: tags, now=1767225610.5)
    names = {s.name for s in first}
    assert "container.memory.usage" in names and "docker.mem.rss" in names
    assert "container.cpu.usage" not in names, "a rate has no value on the first run"
    later = {**STATS_V1, "cpu_stats": {"cpu_usage": {
        "total_usage": 3_000_000_000, "usage_in_usermode": 1_500_000_000,
        "usage_in_kernelmode": 400_000_000}}}
    engine = EngineContainers()
    for _ in range(3):
        engine.add(image_tags("ecs-agent-lab/lab:latest"), running=True)
    second = check.run([sample_from_docker_stats("c1", later, INSPECT, now=1767225612.5)],
                       lambda cid: tags, now=1767225612.5, engine=engine)
    by_name = {s.name: s for s in second}
    assert by_name["container.cpu.usage"].points[0][1] == pytest.approx(5e8)  # ns per second
    assert by_name["docker.cpu.usage"].points[0][1] == pytest.approx(50.0)  # % of one core
    assert by_name["docker.containers.running.total"].points[0][1] == 3.0
    assert by_name["docker.containers.stopped.total"].points[0][1] == 0.0
    assert by_name["docker.containers.running.total"].tags == []
    assert "docker.containers.stopped" not in by_name, "a group's gauge only when it counts one"
    assert by_name["container.cpu.user"].points[0][1] == 0.0
    assert "docker.memory.usage" not in by_name and "container.memory.usage" in by_name
    assert set(by_name["container.memory.rss"].tags) == set(tags)
    assert "runtime:docker" in by_name["docker.mem.rss"].tags and by_name["docker.mem.rss"].host == "i-0abc"
    running = by_name["docker.containers.running"]
    assert running.points[0][1] == 3.0
    assert {"short_image:lab", "image_tag:latest", "image_name:ecs-agent-lab/lab"} <= set(running.tags)
    assert {s.mtype for s in second} == {3}  # the agent's check rates go out as gauges


def test_a_counter_reset_sends_no_negative_rate():
    check = ContainerCheck("h")
    s1 = sample_from_docker_stats("c1", STATS_V1, now=100)
    check.run([s1], lambda cid: [], now=100)
    restarted = {**STATS_V1, "cpu_stats": {"cpu_usage": {"total_usage": 10}}}
    out = check.run([sample_from_docker_stats("c1", restarted, now=102)], lambda cid: [], now=102)
    assert "container.cpu.usage" not in {s.name for s in out}


HOLDER = textwrap.dedent("""
    import sys
    held = []
    print("ready", flush=True)
    for line in sys.stdin:
        held.append(bytearray(b"\\x01" * (int(line) << 20)))
        print("held", flush=True)
""")


def test_a_local_container_s_processes_are_summed():
    import psutil

    child = subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        proc = psutil.Process(child.pid)
        before = sample_from_processes("c1", [proc]).values
        child.stdin.write("64\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "held"
        after = sample_from_processes("c1", [proc]).values
        assert after["container.memory.usage"] - before["container.memory.usage"] > 60 * (1 << 20)
        assert after["container.cpu.usage"] >= before["container.cpu.usage"] > 0
        assert after["container.pid.thread_count"] >= 1 and after["container.pid.open_files"] >= 3
    finally:
        child.kill()
        child.wait()
    assert sample_from_processes("c1", [proc]) is None  # all gone: no sample, not zeros


def test_the_agent_reports_a_local_task_container_s_metrics_with_its_ecs_tags(start_agent, intake):
    from lab.proto import metrics_payload_pb2

    world = World()
    inst = world.add_instance("127.0.0.1")
    task = world.add_task(inst, Task(family="web", revision=3,
                                     containers=[Container(name="app", image="web:1")]))
    c = task.containers[0]
    with EcsMetadataServer(world) as ecs:
        intro = ecs.listen_introspection("127.0.0.1", 0, inst)
        ecs.listen_task_metadata("127.0.0.1", 0)
        # No docker socket: the local backend's agent (LAB_AGENT_DOCKER_SOCKET="") reads processes.
        start_agent(DD_ECS_AGENT_URL=intro.url, LAB_AGENT_DOCKER_SOCKET="")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
        env.update(container_env(inst, task, c, base_url=ecs.task_metadata_url, relative_credentials=False))
        child = subprocess.Popen([sys.executable, "-c", HOLDER], env=env, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        c.pid = child.pid
        c.mark_running()
        world.touch()
        try:
            assert child.stdout.readline().strip() == "ready"
            expected = {"task_family:web", "task_version:3", "ecs_container_name:app",
                        f"container_name:{c.docker_name}", f"container_id:{c.docker_id}"}

            def memory(cap) -> float | None:
                p = metrics_payload_pb2.MetricPayload()
                p.ParseFromString(cap.body)
                for s in p.series:
                    if s.metric == "container.memory.usage" and expected <= set(s.tags):
                        return s.points[0].value
                return None

            first = memory(intake.wait_for("/api/v2/series", lambda cp: memory(cp) is not None, timeout=15))
            assert first > 1 << 20
            child.stdin.write("64\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "held"
            wait_until(lambda: any((memory(cp) or 0) > first + 60 * (1 << 20) for cp in intake.payloads(
                "/api/v2/series")), 15, what="container.memory.usage to grow by the 64 MiB the app holds")

            def has_cpu_rate(cap) -> bool:
                p = metrics_payload_pb2.MetricPayload()
                p.ParseFromString(cap.body)
                return any(s.metric == "container.cpu.usage" and expected <= set(s.tags) for s in p.series)

            intake.wait_for("/api/v2/series", has_cpu_rate, timeout=15)
        finally:
            child.kill()
            child.wait()


# A cgroup v1 container with `memory: 256, memoryReservation: 128` (docker's default swap: as much
# again as the memory limit), throttled by a CFS quota: what docker stats and the cgroup say.
STATS_V1_LIMITED = {
    **STATS_V1,
    "cpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000, "usage_in_usermode": 1_500_000_000,
                                "usage_in_kernelmode": 400_000_000},
                  "throttling_data": {"periods": 40, "throttled_periods": 10, "throttled_time": 300_000_000}},
    "memory_stats": {"usage": 64 << 20, "limit": 256 << 20,
                     "stats": {"rss": 48 << 20, "cache": 8 << 20, "hierarchical_memsw_limit": 512 << 20}},
}
INSPECT_LIMITED = {"HostConfig": {"Memory": 256 << 20, "MemoryReservation": 128 << 20,
                                  "MemorySwap": 512 << 20},
                   "State": {"StartedAt": "2026-01-01T00:00:00Z"}, "Config": {"Image": "app:1"}}


def test_limits_swap_and_throttling_become_the_docker_check_s_names():
    check = ContainerCheck("i-0abc")
    first = sample_from_docker_stats("c1", STATS_V1_LIMITED, INSPECT_LIMITED, now=100)
    check.run([first], lambda c: [], now=100)
    later = {**STATS_V1_LIMITED, "cpu_stats": {**STATS_V1_LIMITED["cpu_stats"], "throttling_data": {
        "periods": 60, "throttled_periods": 14, "throttled_time": 500_000_000}}}
    out = check.run([sample_from_docker_stats("c1", later, INSPECT_LIMITED, now=102)], lambda c: ["a:b"],
                    now=102)
    got = {s.name: s.points[0][1] for s in out}
    assert got["docker.cpu.throttled"] == pytest.approx(2.0)  # throttled periods per second
    assert got["container.cpu.throttled"] == pytest.approx(1e8)  # ns per second
    assert got["docker.cpu.throttled.time"] == pytest.approx(10.0)  # % of one core
    assert got["docker.mem.soft_limit"] == 128 << 20
    assert got["docker.mem.limit"] == 256 << 20
    assert got["docker.mem.in_use"] == pytest.approx(0.25)
    assert got["docker.mem.sw_limit"] == 512 << 20
    assert got["docker.mem.sw_in_use"] == pytest.approx(48 / 512)  # (swap 0 + rss) / memsw limit
    assert all("runtime:docker" in s.tags for s in out if s.name.startswith("docker."))


def test_no_limit_no_limit_metrics():
    unlimited = {**STATS_V1, "memory_stats": {"usage": 5, "stats": {
        "rss": 4, "hierarchical_memsw_limit": 9223372036854771712}}}
    s = sample_from_docker_stats("c1", unlimited, {"HostConfig": {"Memory": 0, "MemoryReservation": 0}})
    assert "container.memory.soft_limit" not in s.values and "container.memory.limit" not in s.values
    assert s.docker_gauges == {}, "in_use and sw_limit need a limit: the agent sends none without"


def test_the_memory_cgroup_is_read_as_the_agent_s_cgroup_reader_does(tmp_path):
    cid = "abc123"
    v1 = tmp_path / "v1" / "memory" / "docker" / cid
    v1.mkdir(parents=True)
    (v1 / "memory.stat").write_text("rss 100\nswap 7\ntotal_swap 9\n")
    (v1 / "memory.soft_limit_in_bytes").write_text(str(128 << 20))
    (v1 / "memory.memsw.limit_in_bytes").write_text("9223372036854771712")
    assert read_memory_cgroup(cid, str(tmp_path / "v1")) == {"swap": 9.0, "soft_limit": float(128 << 20),
                                                            "swap_limit": None}
    v2 = tmp_path / "v2" / "system.slice" / f"docker-{cid}.scope"
    v2.mkdir(parents=True)
    (v2 / "memory.swap.current").write_text("4096")
    (v2 / "memory.low").write_text("0")
    (v2 / "memory.swap.max").write_text("max")
    assert read_memory_cgroup(cid, str(tmp_path / "v2")) == {"swap": 4096.0, "soft_limit": None,
                                                            "swap_limit": None}
    assert read_memory_cgroup("other", str(tmp_path / "v1")) == {}
    # The cgroup wins over docker stats (the agent prefers its cgroup reader when the host's is mounted).
    s = sample_from_docker_stats(cid, STATS_V1_LIMITED, INSPECT_LIMITED,
                                 cgroup=read_memory_cgroup(cid, str(tmp_path / "v1")))
    assert s.values["container.memory.swap"] == 9.0 and "docker.mem.sw_limit" not in s.docker_gauges


def test_stopped_containers_are_counted_by_image_and_in_the_totals():
    engine = EngineContainers()
    engine.add(["task_family:web", *image_tags("app:1")], running=True)
    engine.add(image_tags("app:1"), running=False)
    engine.add(image_tags("app:1"), running=False)
    out = ContainerCheck("h").run([], lambda c: [], now=100, engine=engine)
    by = {(s.name, tuple(s.tags)): s.points[0][1] for s in out}
    assert by[("docker.containers.stopped", tuple(sorted(image_tags("app:1"))))] == 2.0
    assert by[("docker.containers.stopped.total", ())] == 2.0
    assert by[("docker.containers.running.total", ())] == 1.0
    assert ("docker.containers.running", tuple(sorted(image_tags("app:1")))) not in by
