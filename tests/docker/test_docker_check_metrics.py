"""The docker check's 20 ECS-integration names computed from a real engine's containers: docker stats,
docker inspect and the host's cgroups (what the agent container sees at /host/sys/fs/cgroup), as the
emulated agent's ContainerCollector reads them. No lab: only the engine and the lab image."""

from __future__ import annotations

import os

import pytest

from lab.agent.containers import (
    ContainerCheck,
    EngineContainers,
    image_tags,
    read_memory_cgroup,
    sample_from_docker_stats,
)
from lab.tasks import LAB_IMAGE
from lab.world import wait_until

pytestmark = pytest.mark.docker

CGROUP_ROOT = "/sys/fs/cgroup"  # the host's: mounted at /host/sys/fs/cgroup in the agent's container
MIB = 1 << 20
SEED_LIST = ("docker.containers.running", "docker.containers.running.total", "docker.containers.stopped",
             "docker.containers.stopped.total", "docker.cpu.system", "docker.cpu.throttled",
             "docker.cpu.usage", "docker.cpu.user", "docker.io.read_bytes", "docker.io.write_bytes",
             "docker.mem.cache", "docker.mem.in_use", "docker.mem.limit", "docker.mem.rss",
             "docker.mem.soft_limit", "docker.mem.sw_in_use", "docker.mem.sw_limit", "docker.mem.swap",
             "docker.net.bytes_rcvd", "docker.net.bytes_sent")


@pytest.fixture
def containers():
    from lab.backends import images

    client = images.docker_client()
    if not images.image_exists(client, LAB_IMAGE):
        pytest.fail(f"{LAB_IMAGE} is missing: build it with `ecs-lab images build`")
    label = {"ecs-agent-lab.test": "docker-check-metrics"}
    made = []
    # Its own internal network: the container gets an interface (net metrics) and reaches nothing.
    network = client.networks.create(f"ecs-lab-check-{os.getpid()}", internal=True, labels=label)
    try:
        # As ECS creates a task container with `memory: 256, memoryReservation: 128` and a CPU quota
        # of a tenth of a core, busy: its CFS periods get throttled.
        busy = client.containers.run(LAB_IMAGE, ["python3", "-c", "while True: pass"], detach=True,
                                     labels=label, mem_limit="256m", mem_reservation="128m",
                                     cpu_period=100_000, cpu_quota=10_000, network=network.name)
        made.append(busy)
        stopped = client.containers.create(LAB_IMAGE, ["true"], labels=label)
        made.append(stopped)
        yield client, busy, stopped
    finally:
        for c in made:
            c.remove(force=True)
        network.remove()


def test_every_name_of_the_integration_comes_from_a_real_container(containers):
    client, busy, stopped = containers
    check = ContainerCheck("i-0test")
    inspect = client.api.inspect_container(busy.id)

    def run(now: float) -> list:
        stats = client.api.stats(busy.id, stream=False)
        sample = sample_from_docker_stats(busy.id, stats, inspect, now=now,
                                          cgroup=read_memory_cgroup(busy.id, CGROUP_ROOT))
        engine = EngineContainers()
        for c in client.api.containers(all=True):
            running = c["State"] == "running"
            # The busy container stands for one the agent knows (ECS tags); the others by image.
            known = c["Id"] == busy.id
            tags = ["task_family:web", *image_tags(LAB_IMAGE)] if known else image_tags(c["Image"])
            engine.add(tags, running)
        return check.run([sample], lambda cid: ["task_family:web", f"container_id:{cid}"], now=now,
                         engine=engine)

    import time

    run(time.time())

    groups: list = []

    def second() -> dict | None:
        series = run(time.time())
        out = {s.name: s for s in series}
        throttled = out.get("docker.cpu.throttled")
        if throttled and throttled.points[0][1] > 0:
            groups[:] = [s for s in series if s.name == "docker.containers.running"]
            return out
        return None

    got = wait_until(second, 20, interval=1.5, what="a second run with the busy container throttled")
    missing = [n for n in SEED_LIST if n not in got]
    assert not missing, f"not computed: {missing}"
    value = {n: got[n].points[0][1] for n in SEED_LIST}
    assert value["docker.mem.limit"] == 256 * MIB
    assert value["docker.mem.soft_limit"] == 128 * MIB, "memoryReservation -> the cgroup's soft limit"
    assert value["docker.mem.sw_limit"] == 512 * MIB, "docker's default: as much swap again as memory"
    assert 0 < value["docker.mem.in_use"] < 1 and 0 < value["docker.mem.sw_in_use"] < 1
    assert value["docker.cpu.usage"] > 0 and value["docker.cpu.throttled"] > 0
    assert value["docker.containers.stopped.total"] >= 1 and value["docker.containers.running.total"] >= 1
    assert value["docker.containers.stopped"] >= 1 and value["docker.containers.running"] >= 1
    (mine,) = [g for g in groups if "task_family:web" in g.tags]
    assert mine.points[0][1] == 1.0, "the known container's own group: its tags, not only its image's"
    assert all("runtime:docker" in got[n].tags for n in SEED_LIST if not n.startswith("docker.containers"))
    assert got["docker.containers.running.total"].tags == []
