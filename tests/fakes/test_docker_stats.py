"""Task stats from the docker engine as the ECS agent serves them (`DockerStats`), with a stand-in
engine: one read per request, the previous read as `precpu_stats`, and an awsvpc container's
network counters taken from the namespace it joined (its task's pause container)."""

from __future__ import annotations

import itertools

from lab.fakes.ecs_metadata.stats import ZERO_TIME, DockerStats
from lab.world import Container


class _Engine:
    """docker.DockerClient's `containers.get(id)` -> an object with `attrs` and `stats()`."""

    def __init__(self) -> None:
        self.reads = itertools.count(1)
        self.calls: list[dict] = []
        engine = self

        class _Containers:
            @staticmethod
            def get(cid: str):
                return _Container(engine, cid)

        self.containers = _Containers()


class _Container:
    def __init__(self, engine: _Engine, cid: str) -> None:
        self.engine, self.id = engine, cid
        mode = "container:pause" if cid == "app" else "bridge"
        self.attrs = {"HostConfig": {"NetworkMode": mode}}

    def stats(self, **kwargs):
        self.engine.calls.append(kwargs)
        n = next(self.engine.reads)
        out = {"read": f"2026-12-05T10:00:0{n % 10}Z", "cpu_stats": {"cpu_usage": {"total_usage": n * 1000}},
               "memory_stats": {"usage": 1 << 20}}
        if self.id == "pause":
            out["networks"] = {"eth0": {"rx_bytes": 500, "tx_bytes": 300}}
        return out


def test_each_read_is_one_shot_and_the_previous_one_is_precpu():
    engine = _Engine()
    source = DockerStats(client=engine)
    c = Container(name="agent", image="lab", docker_id="agent")
    first = source.container_stats(c)
    assert first["preread"] == ZERO_TIME and first["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    second = source.container_stats(c)
    assert second["precpu_stats"] == first["cpu_stats"] and second["preread"] == first["read"]
    assert second["cpu_stats"]["cpu_usage"]["total_usage"] > first["cpu_stats"]["cpu_usage"]["total_usage"]
    assert all(call == {"stream": False, "one_shot": True} for call in engine.calls)


def test_an_awsvpc_container_reports_its_task_namespaces_network():
    source = DockerStats(client=_Engine())
    got = source.container_stats(Container(name="web", image="lab", docker_id="app"))
    assert got["networks"] == {"eth0": {"rx_bytes": 500, "tx_bytes": 300}}
    assert "network_rate_stats" in got
