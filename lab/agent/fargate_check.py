"""The `ecs_fargate` check: per-container `ecs.fargate.*` metrics from task metadata v4.

What the real check does (integrations-core `ecs_fargate/datadog_checks/ecs_fargate/ecs_fargate.py`;
names, types and tags in docs/fargate.md#ecsfargate-metrics), read from
`$ECS_CONTAINER_METADATA_URI_V4/task` and `/task/stats`:

- per container: `ecs.fargate.cpu.limit` (container Limits.CPU > 0), cpu `system`/`user`/`usage`
  (rates of the kernel/user/total nanoseconds), `cpu.percent` (total delta over system delta times
  online CPUs), `mem.*` gauges from `memory_stats.stats` (cache, mapped_file, rss, ...) and rates
  (pgfault, pgmajfault, ...), `mem.usage`, `mem.max_usage`, `mem.limit`, `io.bytes.read/write` and
  `io.ops.read/write` (rates of the blkio sums), and per interface `net.bytes_rcvd/sent` (rates) and
  `net.rcvd_errors`, `net.sent_errors`, `net.packet.in_dropped/out_dropped` (gauges, tag
  `interface:<name>`);
- per task: `ecs.fargate.cpu.task.limit` (vCPU x 1e9) and `ecs.fargate.mem.task.limit` (MiB x 2^20);
- the service check `fargate_check` (OK, CRITICAL when `/task` cannot be read).

A check's `rate()` sends nothing on its first run, then the per-second change since the previous
run, as a gauge; so does this. Tags: the container's tags at high cardinality plus the check's
compatibility copies (`ecs_task_family`, `ecs_task_version`, `ecs_cluster`, `docker_name`); task-level
metrics carry the task's tags.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable

from lab.agent.dogstatsd import TYPE_GAUGE, Serie, ServiceCheck

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

CGROUP_NO_VALUE = 0x7FFFFFFFFFFFF000
NO_LIMIT = 9223372036854771712
MEMORY_GAUGES = ("cache", "mapped_file", "rss", "hierarchical_memory_limit", "active_anon", "active_file",
                 "inactive_file", "hierarchical_memsw_limit")
MEMORY_RATES = ("pgpgin", "pgpgout", "pgmajfault", "pgfault")
IO_METRICS = {"io_service_bytes_recursive": "ecs.fargate.io.bytes.",
              "io_serviced_recursive": "ecs.fargate.io.ops."}
NETWORK_GAUGES = {"rx_errors": "ecs.fargate.net.rcvd_errors", "tx_errors": "ecs.fargate.net.sent_errors",
                  "rx_dropped": "ecs.fargate.net.packet.in_dropped",
                  "tx_dropped": "ecs.fargate.net.packet.out_dropped"}
NETWORK_RATES = {"rx_bytes": "ecs.fargate.net.bytes_rcvd", "tx_bytes": "ecs.fargate.net.bytes_sent"}
SOURCE = "ecs.fargate"


def _get(url: str, timeout: float = 5.0) -> object:
    with _opener.open(url, timeout=timeout) as resp:
        return json.loads(resp.read().decode() or "null")


def compat_tags(tags: list[str]) -> list[str]:
    """The check's copies of the tagger's tags under its older names."""
    out = []
    for t in tags:
        if t.startswith(("task_family:", "task_version:")):
            out.append("ecs_" + t)
        elif t.startswith("cluster_name:"):
            out.append(t.replace("cluster_name:", "ecs_cluster:", 1))
        elif t.startswith("container_name:"):
            out.append(t.replace("container_name:", "docker_name:", 1))
    return out


class FargateCheck:
    """One instance per agent; `run()` at the check's interval returns series and the service check."""

    def __init__(self, metadata_uri: str, container_tags: Callable[[str], list[str]],
                 task_tags: Callable[[], list[str]]) -> None:
        self.metadata_uri = metadata_uri.rstrip("/")
        self.container_tags = container_tags
        self.task_tags = task_tags
        self._previous: dict[tuple[str, tuple[str, ...]], tuple[float, float]] = {}
        self.runs = 0

    def run(self, now: float | None = None) -> tuple[list[Serie], ServiceCheck]:
        now = time.time() if now is None else now
        self.runs += 1
        ts = int(now)
        out: list[Serie] = []
        try:
            task = _get(self.metadata_uri + "/task")
        except Exception as exc:  # noqa: BLE001 - the check reports it, as the real one does
            return [], ServiceCheck("fargate_check", 2, ts, None,
                                    f"Error fetching Fargate {self.metadata_uri}/task endpoint: {exc}", [])
        if not isinstance(task, dict) or "Cluster" not in task or "Containers" not in task:
            return [], ServiceCheck("fargate_check", 1, ts, None, "Missing critical metadata in "
                                    f"{self.metadata_uri}/task endpoint response", [])

        def gauge(name: str, value: float, tags: list[str]) -> None:
            out.append(Serie(name, [(ts, float(value))], sorted(set(tags)), "", TYPE_GAUGE,
                             source_type_name=SOURCE))

        def rate(name: str, value: float, tags: list[str]) -> None:
            key = (name, tuple(sorted(set(tags))))
            prev = self._previous.get(key)
            self._previous[key] = (now, float(value))
            if prev is not None and now > prev[0]:
                gauge(name, (float(value) - prev[1]) / (now - prev[0]), tags)

        tags_of: dict[str, list[str]] = {}
        for c in task["Containers"]:
            cid = c.get("DockerId", "")
            base = self.container_tags(cid)
            tags_of[cid] = base + compat_tags(base)
            cpu_limit = (c.get("Limits") or {}).get("CPU", 0) or 0
            if cpu_limit > 0:
                gauge("ecs.fargate.cpu.limit", cpu_limit, tags_of[cid])
        task_tags = self.task_tags()
        task_tags = task_tags + compat_tags(task_tags)
        limits = task.get("Limits") or {}
        if (limits.get("CPU") or 0) > 0:
            gauge("ecs.fargate.cpu.task.limit", limits["CPU"] * 10**9, task_tags)
        if (limits.get("Memory") or 0) > 0:
            gauge("ecs.fargate.mem.task.limit", limits["Memory"] * 1024**2, task_tags)
        try:
            stats = _get(self.metadata_uri + "/task/stats")
        except Exception as exc:  # noqa: BLE001
            return out, ServiceCheck("fargate_check", 1, ts, None, "Error fetching Fargate "
                                     f"{self.metadata_uri}/task/stats endpoint: {exc}", [])
        for cid, st in (stats or {}).items():
            if not st or cid not in tags_of:
                continue
            self._container(st, tags_of[cid], gauge, rate)
        return out, ServiceCheck("fargate_check", 0, ts, None, "", [])

    @staticmethod
    def _container(st: dict, tags: list[str], gauge: Callable, rate: Callable) -> None:
        cpu, pre = st.get("cpu_stats") or {}, st.get("precpu_stats") or {}
        usage = cpu.get("cpu_usage") or {}
        if usage.get("usage_in_kernelmode") is not None:
            rate("ecs.fargate.cpu.system", usage["usage_in_kernelmode"], tags)
        if usage.get("usage_in_usermode") is not None:
            rate("ecs.fargate.cpu.user", usage["usage_in_usermode"], tags)
        total = usage.get("total_usage")
        if total is not None:
            rate("ecs.fargate.cpu.usage", total, tags)
        pre_total = (pre.get("cpu_usage") or {}).get("total_usage")
        system, pre_system = cpu.get("system_cpu_usage"), pre.get("system_cpu_usage")
        if None not in (total, pre_total, system, pre_system):
            cpu_delta, system_delta = float(total) - float(pre_total), float(system) - float(pre_system)
            cpus = float(cpu.get("online_cpus") or 0)
            if system_delta > cpu_delta > 0 and cpus > 0:
                gauge("ecs.fargate.cpu.percent", round(cpu_delta / system_delta * cpus * 100.0, 2), tags)
        mem = st.get("memory_stats") or {}
        for name in MEMORY_GAUGES:
            v = (mem.get("stats") or {}).get(name)
            if v is not None and v < CGROUP_NO_VALUE:
                gauge("ecs.fargate.mem." + name, v, tags)
        for name in MEMORY_RATES:
            v = (mem.get("stats") or {}).get(name)
            if v is not None:
                rate("ecs.fargate.mem." + name, v, tags)
        for key in ("max_usage", "usage"):
            if mem.get(key) is not None:
                gauge("ecs.fargate.mem." + key, mem[key], tags)
        if mem.get("limit") is not None and mem["limit"] != NO_LIMIT:
            gauge("ecs.fargate.mem.limit", mem["limit"], tags)
        for category, prefix in IO_METRICS.items():
            entries = (st.get("blkio_stats") or {}).get(category)
            if entries is None or entries == "None":
                continue
            # The check compares "Read"/"Write"; the ECS agent (and cgroup v2 hosts) say "read"/"write".
            read = sum(e.get("value", 0) for e in entries if str(e.get("op", "")).lower() == "read")
            write = sum(e.get("value", 0) for e in entries if str(e.get("op", "")).lower() == "write")
            rate(prefix + "read", read, tags)
            rate(prefix + "write", write, tags)
        for iface, net in (st.get("networks") or {}).items():
            net_tags = tags + [f"interface:{iface}"]
            for field_name, name in NETWORK_GAUGES.items():
                if net.get(field_name) is not None:
                    gauge(name, net[field_name], net_tags)
            for field_name, name in NETWORK_RATES.items():
                if net.get(field_name) is not None:
                    rate(name, net[field_name], net_tags)
