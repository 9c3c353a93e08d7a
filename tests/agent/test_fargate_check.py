"""The `ecs_fargate` check against a task metadata v4 server: names, values, types and tags of the
`ecs.fargate.*` metrics as the integrations-core check computes them, and its service check."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lab.agent.dogstatsd import TYPE_GAUGE
from lab.agent.fargate_check import FargateCheck

TASK = {
    "Cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/fg", "Family": "web", "Revision": "3",
    "Limits": {"CPU": 0.5, "Memory": 1024},
    "Containers": [{"DockerId": "c1", "Name": "web", "Limits": {"CPU": 256, "Memory": 512}},
                   {"DockerId": "c2", "Name": "datadog-agent", "Limits": {"CPU": 0}}],
}


def _stats(total: int, system: int, rx: int, read: int) -> dict:
    return {
        "cpu_stats": {"cpu_usage": {"total_usage": total, "usage_in_kernelmode": total // 4,
                                    "usage_in_usermode": total - total // 4},
                      "system_cpu_usage": system, "online_cpus": 2},
        "precpu_stats": {"cpu_usage": {"total_usage": total - 10**8}, "system_cpu_usage": system - 10**9},
        "memory_stats": {"usage": 50 << 20, "max_usage": 60 << 20, "limit": 9223372036854771712,
                         "stats": {"rss": 40 << 20, "cache": 1 << 20, "pgfault": 100,
                                   "hierarchical_memory_limit": 0x7FFFFFFFFFFFF000}},
        "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": read},
                                                       {"op": "Write", "value": 7}],
                        "io_serviced_recursive": None},
        "networks": {"eth1": {"rx_bytes": rx, "tx_bytes": 10, "rx_errors": 0, "tx_errors": 1,
                              "rx_dropped": 0, "tx_dropped": 0}},
    }


@pytest.fixture
def metadata():
    state = {"stats": {"c1": _stats(10**9, 10**11, 1000, 4096), "c2": None}, "fail": False}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if state["fail"]:
                self.send_error(500)
                return
            body = {"/v4/x/task": TASK, "/v4/x/task/stats": state["stats"]}.get(self.path)
            data = json.dumps(body).encode()
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v4/x", state
    server.shutdown()
    server.server_close()


def _check(uri: str) -> FargateCheck:
    tags = {"c1": ["task_family:web", "task_version:3", "cluster_name:fg", "container_name:ecs-web-3-web",
                   "ecs_container_name:web"],
            "c2": ["task_family:web", "ecs_container_name:datadog-agent"]}
    return FargateCheck(uri, lambda cid: list(tags.get(cid, [])),
                        lambda: ["task_family:web", "task_arn:arn:aws:ecs:us-east-1:123456789012:task/fg/1"])


def _by_name(series) -> dict:
    return {(s.name, tuple(s.tags)): s for s in series}


def test_gauges_on_the_first_run_rates_from_the_second(metadata):
    uri, state = metadata
    check = _check(uri)
    first, sc = check.run(now=1000.0)
    assert sc.name == "fargate_check" and sc.status == 0
    names = {s.name for s in first}
    assert {"ecs.fargate.cpu.limit", "ecs.fargate.cpu.task.limit", "ecs.fargate.mem.task.limit",
            "ecs.fargate.mem.usage", "ecs.fargate.mem.max_usage", "ecs.fargate.mem.rss",
            "ecs.fargate.cpu.percent", "ecs.fargate.net.sent_errors"} <= names
    # Rates need a previous run; an unlimited memory and a cgroup "no value" are left out.
    assert not names & {"ecs.fargate.cpu.usage", "ecs.fargate.io.bytes.read", "ecs.fargate.net.bytes_rcvd",
                        "ecs.fargate.mem.limit", "ecs.fargate.mem.hierarchical_memory_limit"}
    assert all(s.mtype == TYPE_GAUGE and s.host == "" for s in first)
    values = {s.name: s.points[0][1] for s in first}
    assert values["ecs.fargate.cpu.task.limit"] == 0.5 * 10**9
    assert values["ecs.fargate.mem.task.limit"] == 1024 * 1024**2
    assert values["ecs.fargate.cpu.percent"] == pytest.approx(10**8 / 10**9 * 2 * 100)
    assert values["ecs.fargate.cpu.limit"] == 256  # only the container with a CPU limit
    state["stats"]["c1"] = _stats(3 * 10**9, 2 * 10**11, 6000, 8192)
    second, _ = check.run(now=1010.0)
    values = {s.name: s.points[0][1] for s in second}
    assert values["ecs.fargate.cpu.usage"] == pytest.approx(2 * 10**9 / 10)
    assert values["ecs.fargate.net.bytes_rcvd"] == pytest.approx(500.0)
    assert values["ecs.fargate.io.bytes.read"] == pytest.approx(409.6)
    assert values["ecs.fargate.io.bytes.write"] == 0.0


def test_tags_compatibility_copies_and_interface(metadata):
    uri, _ = metadata
    series, _ = _check(uri).run(now=1.0)
    usage = next(s for s in series if s.name == "ecs.fargate.mem.usage")
    assert {"ecs_task_family:web", "ecs_task_version:3", "ecs_cluster:fg", "docker_name:ecs-web-3-web",
            "ecs_container_name:web"} <= set(usage.tags)
    net = next(s for s in series if s.name == "ecs.fargate.net.sent_errors")
    assert "interface:eth1" in net.tags
    task_limit = next(s for s in series if s.name == "ecs.fargate.mem.task.limit")
    assert "task_arn:arn:aws:ecs:us-east-1:123456789012:task/fg/1" in task_limit.tags
    assert "ecs_task_family:web" in task_limit.tags


def test_unreachable_metadata_is_a_critical_service_check(metadata):
    uri, state = metadata
    state["fail"] = True
    series, sc = _check(uri).run()
    assert series == [] and sc.status == 2 and "/task" in sc.message
