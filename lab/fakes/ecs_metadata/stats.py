"""Container stats in the shape docker's stats API returns: what task metadata `/stats` serves.

The ECS agent answers `${ECS_CONTAINER_METADATA_URI_V4}/stats` with docker's ContainerStats JSON
(`read`, `preread`, `cpu_stats`, `precpu_stats`, `memory_stats`, `blkio_stats`, `networks`,
`pids_stats`), plus `network_rate_stats` on v4 (amazon-ecs-agent agent/handlers/v4/stats_response.go).
The Datadog agent's ECS client reads `read`, `cpu_stats.cpu_usage.*`, `cpu_stats.system_cpu_usage`,
`memory_stats.{usage,limit,max_usage,stats.rss,stats.cache,stats.pgfault}`,
`blkio_stats.io_service_bytes_recursive`/`io_serviced_recursive` and `networks.*.{rx,tx}_{bytes,packets}`
(pkg/util/ecs/metadata/v3or4/types.go), so those fields always carry real values.

Two sources, both measuring something real:
- `PsutilStats`: the local backend's "container" is a process tree rooted at `container.pid`.
- `DockerStats`: the docker backend's container, through the docker SDK (imported lazily).
`AutoStats` picks per container: a pid wins, else a docker engine if one answers.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import psutil

from lab.world import Container

# Docker's zero time: what `preread`/`precpu_stats` hold on the first sample of a container.
ZERO_TIME = "0001-01-01T00:00:00Z"
_NS = 1_000_000_000


class StatsUnavailable(RuntimeError):
    """The container has nothing to measure (no pid, no docker container): the reason says why."""


class StatsSource(Protocol):
    def container_stats(self, container: Container) -> dict:
        """Docker-stats-shaped JSON for one container; raise StatsUnavailable with a reason."""
        ...


def _iso_ns(ts: float) -> str:
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int((ts % 1) * _NS):09d}Z"


def _host_cpu_ns() -> int:
    # docker's system_cpu_usage: the host's total CPU time (all CPUs, all modes) in nanoseconds.
    return int(sum(psutil.cpu_times()) * _NS)


def _root_device() -> tuple[int, int]:
    st = os.stat("/")
    return os.major(st.st_dev), os.minor(st.st_dev)


def _read_net_dev(pid: int) -> dict[str, dict[str, int]]:
    """Interface counters of the process's network namespace (/proc/<pid>/net/dev)."""
    nets: dict[str, dict[str, int]] = {}
    try:
        with open(f"/proc/{pid}/net/dev") as fh:
            lines = fh.readlines()[2:]
    except OSError:
        return nets
    for line in lines:
        name, _, rest = line.partition(":")
        f = [int(x) for x in rest.split()]
        if len(f) < 16:
            continue
        nets[name.strip()] = {
            "rx_bytes": f[0], "rx_packets": f[1], "rx_errors": f[2], "rx_dropped": f[3],
            "tx_bytes": f[8], "tx_packets": f[9], "tx_errors": f[10], "tx_dropped": f[11],
        }
    # Docker reports the container's own interfaces; loopback only when there is nothing else.
    non_lo = {k: v for k, v in nets.items() if k != "lo"}
    return non_lo or nets


def _page_faults(pid: int) -> tuple[int, int]:
    """(minor, major) page faults from /proc/<pid>/stat: cgroup `pgfault`/`pgmajfault` per process."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return int(fields[7]), int(fields[9])
    except (OSError, IndexError, ValueError):
        return 0, 0


@dataclass
class _Sample:
    read: str
    cpu_stats: dict
    net_totals: tuple[int, int]
    at: float


class PsutilStats:
    """Stats of a process tree (container.pid and its descendants), measured with psutil.

    Keeps the previous sample per container so `preread`/`precpu_stats` (and the v4 network rates)
    are what docker would report: the values at the previous read.
    """

    def __init__(self) -> None:
        self._previous: dict[str, _Sample] = {}
        self._max_usage: dict[str, int] = {}
        self._lock = threading.Lock()

    def _tree(self, container: Container) -> list[psutil.Process]:
        if not container.pid:
            raise StatsUnavailable(f"container {container.name!r} has no pid to measure")
        try:
            root = psutil.Process(container.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            raise StatsUnavailable(
                f"container {container.name!r}: process {container.pid} is gone"
            ) from None

    def container_stats(self, container: Container) -> dict:
        procs = self._tree(container)
        now = time.time()
        user = system = 0.0
        rss = shared = 0
        read_bytes = write_bytes = read_count = write_count = 0
        threads = 0
        pgfault = pgmajfault = 0
        for p in procs:
            try:
                with p.oneshot():
                    ct = p.cpu_times()
                    user += ct.user
                    system += ct.system
                    mem = p.memory_info()
                    rss += mem.rss
                    shared += getattr(mem, "shared", 0)
                    threads += p.num_threads()
                    try:
                        io = p.io_counters()
                        read_bytes += io.read_bytes
                        write_bytes += io.write_bytes
                        read_count += io.read_count
                        write_count += io.write_count
                    except (psutil.AccessDenied, AttributeError):
                        pass
                minor, major = _page_faults(p.pid)
                pgfault += minor
                pgmajfault += major
            except psutil.NoSuchProcess:
                continue  # a child exited between listing and reading; docker would not count it either
        key = container.docker_id
        user_ns, system_ns = int(user * _NS), int(system * _NS)
        cpu_stats = {
            "cpu_usage": {
                "total_usage": user_ns + system_ns,
                "usage_in_kernelmode": system_ns,
                "usage_in_usermode": user_ns,
            },
            "system_cpu_usage": _host_cpu_ns(),
            "online_cpus": psutil.cpu_count() or 1,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }
        limit = container.memory * 1024 * 1024 if container.memory else psutil.virtual_memory().total
        nets = _read_net_dev(container.pid or procs[0].pid)
        net_totals = (sum(n["rx_bytes"] for n in nets.values()), sum(n["tx_bytes"] for n in nets.values()))
        major_dev, minor_dev = _root_device()
        read = _iso_ns(now)
        with self._lock:
            prev = self._previous.get(key)
            self._max_usage[key] = max(self._max_usage.get(key, 0), rss)
            max_usage = self._max_usage[key]
            self._previous[key] = _Sample(read, cpu_stats, net_totals, now)
        stats = {
            "read": read,
            "preread": prev.read if prev else ZERO_TIME,
            "pids_stats": {"current": threads},
            "blkio_stats": {
                "io_service_bytes_recursive": [
                    {"major": major_dev, "minor": minor_dev, "op": "read", "value": read_bytes},
                    {"major": major_dev, "minor": minor_dev, "op": "write", "value": write_bytes},
                ],
                "io_serviced_recursive": [
                    {"major": major_dev, "minor": minor_dev, "op": "read", "value": read_count},
                    {"major": major_dev, "minor": minor_dev, "op": "write", "value": write_count},
                ],
                "io_queue_recursive": None,
                "io_service_time_recursive": None,
                "io_wait_time_recursive": None,
                "io_merged_recursive": None,
                "io_time_recursive": None,
                "sectors_recursive": None,
            },
            "num_procs": 0,
            "storage_stats": {},
            "cpu_stats": cpu_stats,
            "precpu_stats": prev.cpu_stats if prev else {
                "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
            },
            "memory_stats": {
                "usage": rss,
                "max_usage": max_usage,
                "stats": {
                    "rss": rss,
                    "cache": shared,
                    "mapped_file": shared,
                    "pgfault": pgfault,
                    "pgmajfault": pgmajfault,
                },
                "limit": limit,
            },
            "name": "/" + container.docker_name,
            "id": container.docker_id,
            "networks": nets,
        }
        stats["network_rate_stats"] = _rates(prev, net_totals, now)
        return stats


def _rates(prev: _Sample | None, totals: tuple[int, int], now: float) -> dict:
    # v4 only: bytes/s since the previous read (amazon-ecs-agent's NetworkStats rates).
    if prev is None or now <= prev.at:
        return {"rx_bytes_per_sec": 0.0, "tx_bytes_per_sec": 0.0}
    dt = now - prev.at
    return {
        "rx_bytes_per_sec": max(0.0, (totals[0] - prev.net_totals[0]) / dt),
        "tx_bytes_per_sec": max(0.0, (totals[1] - prev.net_totals[1]) / dt),
    }


class DockerStats:
    """Stats of a docker container by docker_id, from the engine (`container.stats(stream=False)`)."""

    def __init__(self, client=None) -> None:
        self._client = client
        self._previous: dict[str, _Sample] = {}
        self._lock = threading.Lock()

    @property
    def client(self):
        if self._client is None:
            import docker  # lazily: the local backend and most tests need no docker engine

            try:
                self._client = docker.from_env()
            except docker.errors.DockerException as exc:
                raise StatsUnavailable(f"no docker engine to read stats from: {exc}") from None
        return self._client

    def container_stats(self, container: Container) -> dict:
        """One read per call (docker's `one-shot`: no second sample waited for), with the previous
        read as `preread`/`precpu_stats`, as the ECS agent serves the last two samples of the stats
        it collects. A container in another's network namespace (`awsvpc`: the task's pause
        container, its ENI) has no networks of its own in docker's stats: it gets that namespace's,
        as on ECS every container of an awsvpc task reports the task's network."""
        try:
            got = self.client.containers.get(container.docker_id)
            stats = got.stats(stream=False, one_shot=True)
            mode = (got.attrs.get("HostConfig") or {}).get("NetworkMode") or ""
            if not stats.get("networks") and mode.startswith("container:"):
                owner = self.client.containers.get(mode.split(":", 1)[1])
                stats["networks"] = owner.stats(stream=False, one_shot=True).get("networks") or {}
        except Exception as exc:  # noqa: BLE001 - gone, engine gone, socket refused: all mean "no stats"
            if type(exc).__name__ == "NotFound":
                raise StatsUnavailable(f"docker has no container {container.docker_id[:12]}") from None
            raise StatsUnavailable(f"docker stats for {container.docker_id[:12]} failed: {exc}") from None
        nets = stats.get("networks") or {}
        totals = (sum(n.get("rx_bytes", 0) for n in nets.values()),
                  sum(n.get("tx_bytes", 0) for n in nets.values()))
        now = time.time()
        with self._lock:
            prev = self._previous.get(container.docker_id)
            self._previous[container.docker_id] = _Sample(stats.get("read", ""),
                                                          dict(stats.get("cpu_stats") or {}), totals, now)
        if prev is not None:
            stats["preread"], stats["precpu_stats"] = prev.read, prev.cpu_stats
        else:
            stats["preread"], stats["precpu_stats"] = ZERO_TIME, {"cpu_usage": {"total_usage": 0}}
        stats["network_rate_stats"] = _rates(prev, totals, now)
        return stats


class AutoStats:
    """A process tree when the container has a pid (local backend), else the docker engine."""

    def __init__(self, psutil_source: PsutilStats | None = None, docker_source: DockerStats | None = None):
        self.psutil = psutil_source or PsutilStats()
        self.docker = docker_source or DockerStats()

    def container_stats(self, container: Container) -> dict:
        if container.pid:
            return self.psutil.container_stats(container)
        return self.docker.container_stats(container)
