"""Per-container metrics, as the agent's `container` and `docker` checks report them.

The real agent runs the generic container check (pkg/collector/corechecks/containers/generic,
processor.go) and, with the docker socket mounted, the docker check (.../containers/docker,
adapter.go renames the same values to `docker.*`). Both tag every series with the container's
tags at *high* cardinality (ECS task family/version, container name, ..., container_id) and the
docker ones with `runtime:docker`. Values submitted as rates (`sender.Rate`) are the per-second
difference of two check runs, so the first run sends none of them; they go out as gauges.

What the lab reports (a faithful subset; source: docker stats on the docker backend, psutil over a
container's processes on the local backend, where an ECS container is a process group):

container.* name (docker.* name), kind; docker stats source / local (psutil) source:
- container.uptime (docker.uptime), gauge s; State.StartedAt / oldest process
- container.cpu.usage, .user, .system (docker.cpu.*, in % of a core), rate ns/s; cpu_stats / cpu_times
- container.memory.usage (none: "not present in legacy Docker check"), gauge; memory_stats.usage / RSS
- container.memory.rss, .cache (docker.mem.rss, .cache), gauge; memory_stats.stats / RSS, -
- container.memory.limit (docker.mem.limit), gauge, only when a limit is set; HostConfig.Memory / -
- container.io.read, .write, .read.operations, .write.operations (docker.io.read_bytes, ...), rate;
  blkio_stats / io_counters
- container.net.sent, .rcvd (docker.net.bytes_sent, _rcvd), rate bytes/s; networks / - (a local
  container has no netns of its own)
- container.pid.thread_count (docker.thread.count), gauge; pids_stats.current / num_threads
- container.pid.open_files (docker.container.open_fds), gauge; - / num_fds
- container.cpu.throttled, .throttled.periods (docker.cpu.throttled.time in % of a core,
  docker.cpu.throttled), rate; cpu_stats.throttling_data / - (a process has no CFS quota)
- container.memory.soft_limit (docker.mem.soft_limit), gauge, only when a reservation is set;
  the memory cgroup (memory.soft_limit_in_bytes, v2 memory.low), else HostConfig.MemoryReservation / -
- container.memory.swap (docker.mem.swap), gauge; the memory cgroup (total_swap, v2
  memory.swap.current), else memory_stats.stats / VmSwap of /proc/<pid>/status
- docker.mem.in_use (usage / limit), docker.mem.sw_limit (the cgroup's memory+swap limit, v2 swap
  limit) and docker.mem.sw_in_use ((swap + rss) / sw_limit), gauges, docker only, each only when its
  limit is set
- docker.containers.running / .stopped, gauges per tag group (a running container the agent knows:
  its low-cardinality tags; any other: its image's docker_image, image_name, short_image,
  image_tag), sent only for a group with at least one; docker.containers.running.total /
  .stopped.total, untagged, always; every container of the engine (`docker ps -a`) / -

Where each comes from upstream and what the local backend cannot report: docs/agent_contract.md
("Container metrics").

Not reproduced: per-device io tags, PSI stall times, page faults, kernel memory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from lab.agent.dogstatsd import TYPE_GAUGE, Serie

log = logging.getLogger("lab.agent.containers")

NS = 1e9

# container.* name -> (docker.* name or "", value converter for the docker name)
_HZ = 1e7  # generic.ConvertNanosecondsToHz: ns/s of CPU -> percent of one core
DOCKER_NAMES: dict[str, tuple[str, float]] = {
    "container.uptime": ("docker.uptime", 1.0),
    "container.cpu.usage": ("docker.cpu.usage", 1 / _HZ),
    "container.cpu.user": ("docker.cpu.user", 1 / _HZ),
    "container.cpu.system": ("docker.cpu.system", 1 / _HZ),
    "container.cpu.throttled": ("docker.cpu.throttled.time", 1 / _HZ),
    "container.cpu.throttled.periods": ("docker.cpu.throttled", 1.0),
    "container.memory.usage": ("", 1.0),  # "Not present in legacy Docker check"
    "container.memory.limit": ("docker.mem.limit", 1.0),
    "container.memory.rss": ("docker.mem.rss", 1.0),
    "container.memory.cache": ("docker.mem.cache", 1.0),
    "container.memory.soft_limit": ("docker.mem.soft_limit", 1.0),
    "container.memory.swap": ("docker.mem.swap", 1.0),
    "container.io.read": ("docker.io.read_bytes", 1.0),
    "container.io.read.operations": ("docker.io.read_operations", 1.0),
    "container.io.write": ("docker.io.write_bytes", 1.0),
    "container.io.write.operations": ("docker.io.write_operations", 1.0),
    "container.pid.thread_count": ("docker.thread.count", 1.0),
    "container.pid.open_files": ("docker.container.open_fds", 1.0),
    "container.net.sent": ("docker.net.bytes_sent", 1.0),
    "container.net.rcvd": ("docker.net.bytes_rcvd", 1.0),
}
RATES = ("container.cpu.usage", "container.cpu.user", "container.cpu.system", "container.cpu.throttled",
         "container.cpu.throttled.periods", "container.io.read",
         "container.io.read.operations", "container.io.write", "container.io.write.operations",
         "container.net.sent", "container.net.rcvd")


@dataclass
class ContainerSample:
    """One container at one instant: cumulative counters (for rates) and gauges; None = unknown."""

    docker_id: str
    runtime: str  # "docker" (docker stats) or "process" (psutil, local backend)
    values: dict[str, float] = field(default_factory=dict)  # container.* name -> value
    image: str = ""
    # The docker check's own gauges (its custom metrics extension), sent under these names only.
    docker_gauges: dict[str, float] = field(default_factory=dict)


# A cgroup "limit" this large means none (the kernel's PAGE_COUNTER_MAX is 2^63 rounded to a page);
# the agent drops such values, as the legacy docker check did with its `< 2 ** 60` test.
UNLIMITED = 2 ** 60


def _limit(value: float | int | None) -> float | None:
    return float(value) if value is not None and 0 < float(value) < UNLIMITED else None


def _read_number(path: str) -> float | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _read_stat(path: str) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if value.strip().isdigit():
                    out[key] = float(value)
    except OSError:
        pass
    return out


def read_memory_cgroup(docker_id: str, cgroup_root: str) -> dict[str, float | None]:
    """What the agent's cgroup reader (pkg/util/cgroups, cgroupv1_memory.go / cgroupv2_memory.go)
    finds for a docker container under the host's cgroup mount: swap in use, the soft limit and the
    swap limit; {} when the container's memory cgroup is not there (no mount, another runtime)."""
    import os

    v1 = [os.path.join(cgroup_root, "memory", "docker", docker_id),
          os.path.join(cgroup_root, "memory", "system.slice", f"docker-{docker_id}.scope")]
    v2 = [os.path.join(cgroup_root, "docker", docker_id),
          os.path.join(cgroup_root, "system.slice", f"docker-{docker_id}.scope")]
    for d in v1:
        if os.path.isdir(d):
            stat = _read_stat(os.path.join(d, "memory.stat"))
            return {"swap": stat.get("total_swap", stat.get("swap")),
                    "soft_limit": _limit(_read_number(os.path.join(d, "memory.soft_limit_in_bytes"))),
                    "swap_limit": _limit(_read_number(os.path.join(d, "memory.memsw.limit_in_bytes")))}
    for d in v2:
        if os.path.isdir(d):
            return {"swap": _read_number(os.path.join(d, "memory.swap.current")),
                    "soft_limit": _limit(_read_number(os.path.join(d, "memory.low"))),
                    "swap_limit": _limit(_read_number(os.path.join(d, "memory.swap.max")))}
    return {}


def _sum_blkio(entries: Iterable[dict] | None, op: str) -> float | None:
    if entries is None:
        return None
    return float(sum(e.get("value", 0) for e in entries if str(e.get("op", "")).lower() == op))


def sample_from_docker_stats(docker_id: str, stats: dict, inspect: dict | None = None,
                             now: float | None = None,
                             cgroup: dict[str, float | None] | None = None) -> ContainerSample:
    """docker stats (`GET /containers/<id>/stats?stream=false`, cgroup v1 or v2 shape) -> sample.
    `cgroup`: `read_memory_cgroup`'s answer, preferred where it knows (the agent reads the cgroup
    when the host's is mounted; docker stats lack swap and the soft limit)."""
    now = time.time() if now is None else now
    cgroup = cgroup or {}
    v: dict[str, float] = {}
    cpu_stats = stats.get("cpu_stats") or {}
    cpu = cpu_stats.get("cpu_usage") or {}
    for name, key in (("container.cpu.usage", "total_usage"), ("container.cpu.user", "usage_in_usermode"),
                      ("container.cpu.system", "usage_in_kernelmode")):
        if cpu.get(key) is not None:
            v[name] = float(cpu[key])
    throttling = cpu_stats.get("throttling_data")
    if throttling is not None:  # cgroup v1 and v2 alike (cpu.stat nr_throttled / throttled_usec)
        v["container.cpu.throttled.periods"] = float(throttling.get("throttled_periods") or 0)
        v["container.cpu.throttled"] = float(throttling.get("throttled_time") or 0)
    mem = stats.get("memory_stats") or {}
    mstats = mem.get("stats") or {}
    if mem.get("usage") is not None:
        v["container.memory.usage"] = float(mem["usage"])
    rss = mstats.get("rss", mstats.get("anon"))  # cgroup v1 / v2
    cache = mstats.get("cache", mstats.get("file"))
    if rss is not None:
        v["container.memory.rss"] = float(rss)
    if cache is not None:
        v["container.memory.cache"] = float(cache)
    swap = cgroup.get("swap")
    if swap is None:
        swap = mstats.get("total_swap", mstats.get("swap"))
    if swap is not None:
        v["container.memory.swap"] = float(swap)
    swap_limit = (cgroup["swap_limit"] if "swap_limit" in cgroup
                  else _limit(mstats.get("hierarchical_memsw_limit")))
    blkio = stats.get("blkio_stats") or {}
    for name, entries, op in (("container.io.read", "io_service_bytes_recursive", "read"),
                              ("container.io.write", "io_service_bytes_recursive", "write"),
                              ("container.io.read.operations", "io_serviced_recursive", "read"),
                              ("container.io.write.operations", "io_serviced_recursive", "write")):
        total = _sum_blkio(blkio.get(entries), op)
        if total is not None:
            v[name] = total
    nets = stats.get("networks")
    if nets:  # absent for containers sharing another's netns (host / awsvpc / container: mode)
        v["container.net.rcvd"] = float(sum(n.get("rx_bytes", 0) for n in nets.values()))
        v["container.net.sent"] = float(sum(n.get("tx_bytes", 0) for n in nets.values()))
    pids = (stats.get("pids_stats") or {}).get("current")
    if pids is not None:
        v["container.pid.thread_count"] = float(pids)
    image = ""
    soft_limit = cgroup.get("soft_limit")
    if inspect:
        host_config = inspect.get("HostConfig") or {}
        limit = host_config.get("Memory") or 0
        if limit > 0:  # 0 = no limit: the agent sends no container.memory.limit then
            v["container.memory.limit"] = float(limit)
        if "soft_limit" not in cgroup:  # docker writes MemoryReservation into the soft limit
            soft_limit = _limit(host_config.get("MemoryReservation"))
        started = _parse_docker_time((inspect.get("State") or {}).get("StartedAt", ""))
        if started:
            v["container.uptime"] = max(0.0, now - started)
        image = (inspect.get("Config") or {}).get("Image", "")
    if soft_limit is not None:
        v["container.memory.soft_limit"] = soft_limit
    # The docker check's custom metrics extension (check_metrics_extension.go): usage over the
    # container's limit; the swap limit; and (swap + rss) over it as the docker checks before the
    # generic processor computed it (docker.go of agents 6/7.2x, the Python docker_daemon check).
    extra: dict[str, float] = {}
    if "container.memory.limit" in v and "container.memory.usage" in v:
        extra["docker.mem.in_use"] = v["container.memory.usage"] / v["container.memory.limit"]
    if swap_limit is not None:
        extra["docker.mem.sw_limit"] = swap_limit
        if "container.memory.rss" in v:
            in_use = v.get("container.memory.swap", 0.0) + v["container.memory.rss"]
            extra["docker.mem.sw_in_use"] = in_use / swap_limit
    return ContainerSample(docker_id, "docker", v, image, extra)


def _vm_swap(pid: int) -> float | None:
    """A process's swapped-out memory (VmSwap of /proc/<pid>/status, kB), None where unknown."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmSwap:"):
                    return float(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _parse_docker_time(text: str) -> float | None:
    if not text or text.startswith("0001-"):
        return None
    head, _, frac = text.rstrip("Z").partition(".")
    try:
        base = datetime.fromisoformat(head + "+00:00").timestamp()
    except ValueError:
        return None
    return base + (float(f"0.{frac[:6]}") if frac.isdigit() else 0.0)


def sample_from_processes(docker_id: str, procs: list, now: float | None = None) -> ContainerSample | None:
    """The local backend's container: its process group, summed (psutil.Process objects)."""
    import psutil

    now = time.time() if now is None else now
    v = dict.fromkeys(("container.cpu.usage", "container.cpu.user", "container.cpu.system",
                       "container.memory.usage", "container.memory.rss", "container.pid.thread_count",
                       "container.pid.open_files"), 0.0)
    io: dict[str, float] = {}
    started: float | None = None
    alive = 0
    for p in procs:
        try:
            with p.oneshot():
                t = p.cpu_times()
                rss = float(p.memory_info().rss)
                threads = p.num_threads()
                fds = p.num_fds()
                created = p.create_time()
            swap = _vm_swap(p.pid)
            if swap is not None:
                io["container.memory.swap"] = io.get("container.memory.swap", 0.0) + swap
            try:
                c = p.io_counters()
                io["container.io.read"] = io.get("container.io.read", 0.0) + c.read_bytes
                io["container.io.write"] = io.get("container.io.write", 0.0) + c.write_bytes
                for name, count in (("container.io.read.operations", c.read_count),
                                    ("container.io.write.operations", c.write_count)):
                    io[name] = io.get(name, 0.0) + count
            except (psutil.AccessDenied, AttributeError):
                pass
        except psutil.Error:
            continue
        alive += 1
        v["container.cpu.user"] += t.user * NS
        v["container.cpu.system"] += t.system * NS
        v["container.cpu.usage"] += (t.user + t.system) * NS
        v["container.memory.usage"] += rss
        v["container.memory.rss"] += rss
        v["container.pid.thread_count"] += threads
        v["container.pid.open_files"] += fds
        started = created if started is None else min(started, created)
    if not alive:
        return None
    v.update(io)
    if started is not None:
        v["container.uptime"] = max(0.0, now - started)
    return ContainerSample(docker_id, "process", v)


@dataclass
class EngineContainers:
    """The docker check's count of the engine's containers (`docker ps -a`), by tag group."""

    groups: dict[tuple[str, ...], list[int]] = field(default_factory=dict)  # tags -> [running, stopped]
    running: int = 0
    stopped: int = 0

    def add(self, tags: Iterable[str], running: bool) -> None:
        counts = self.groups.setdefault(tuple(sorted(tags)), [0, 0])
        counts[0 if running else 1] += 1
        if running:
            self.running += 1
        else:
            self.stopped += 1


class ContainerCheck:
    """The checks' arithmetic, socket-free: samples in, series out (rates from the previous run)."""

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname
        self._last: dict[tuple[str, str], tuple[float, float]] = {}  # (docker id, metric) -> (t, value)
        self.runs = 0

    def run(self, samples: list[ContainerSample], tags_for: Callable[[str], list[str]],
            now: float | None = None, engine: EngineContainers | None = None) -> list[Serie]:
        now = time.time() if now is None else now
        ts = int(now)
        out: list[Serie] = []
        seen: set[tuple[str, str]] = set()
        for s in samples:
            tags = list(tags_for(s.docker_id))
            for name, value in sorted(s.values.items()):
                if name in RATES:
                    key = (s.docker_id, name)
                    seen.add(key)
                    prev = self._last.get(key)
                    self._last[key] = (now, value)
                    # The agent's Rate drops the first sample and negative deltas (a counter reset).
                    if prev is None or now <= prev[0] or value < prev[1]:
                        continue
                    value = (value - prev[1]) / (now - prev[0])
                out.append(Serie(name, [(ts, value)], tags, self.hostname, TYPE_GAUGE))
                docker_name, factor = DOCKER_NAMES.get(name, ("", 1.0))
                if s.runtime == "docker" and docker_name:
                    out.append(Serie(docker_name, [(ts, value * factor)], [*tags, "runtime:docker"],
                                     self.hostname, TYPE_GAUGE))
            if s.runtime == "docker":
                for name, value in sorted(s.docker_gauges.items()):
                    out.append(Serie(name, [(ts, value)], [*tags, "runtime:docker"], self.hostname,
                                     TYPE_GAUGE))
        # Containers gone since the last run: forget them, as the check's sampler expires contexts.
        self._last = {k: v for k, v in self._last.items() if k in seen}
        if engine is not None:
            # runDockerCustom (check.go): a group's gauge only when it counts one; totals untagged.
            for group_tags, (running, stopped) in sorted(engine.groups.items()):
                if running:
                    out.append(Serie("docker.containers.running", [(ts, float(running))], list(group_tags),
                                     self.hostname, TYPE_GAUGE))
                if stopped:
                    out.append(Serie("docker.containers.stopped", [(ts, float(stopped))], list(group_tags),
                                     self.hostname, TYPE_GAUGE))
            out.append(Serie("docker.containers.running.total", [(ts, float(engine.running))], [],
                             self.hostname, TYPE_GAUGE))
            out.append(Serie("docker.containers.stopped.total", [(ts, float(engine.stopped))], [],
                             self.hostname, TYPE_GAUGE))
        self.runs += 1
        return out


def image_tags(image: str) -> tuple[str, ...]:
    """docker_image / image_name / short_image / image_tag of an image reference, as the tagger."""
    name, tag = image, "latest"
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = image.rsplit(":", 1)
    return (f"docker_image:{name}:{tag}", f"image_name:{name}", f"short_image:{name.rsplit('/', 1)[-1]}",
            f"image_tag:{tag}")


class ContainerCollector:
    """Reads the ECS containers the agent knows: docker stats where the docker socket is mounted
    and the container is docker's, else the container's processes (local backend)."""

    def __init__(self, docker_socket: str, ecs, hostname: str,
                 cgroup_root: str = "/host/sys/fs/cgroup") -> None:
        self.docker_socket = docker_socket
        self.cgroup_root = cgroup_root  # the host's cgroups, as the docs' task definition mounts them
        self.ecs = ecs
        self.check = ContainerCheck(hostname)
        self._client = None
        self._inspect: dict[str, dict] = {}

    def _docker(self):
        import os

        if self._client is None and os.path.exists(self.docker_socket):
            try:
                import docker

                self._client = docker.DockerClient(base_url=f"unix://{self.docker_socket}", timeout=5)
                self._client.ping()
            except Exception as exc:  # noqa: BLE001 - no usable socket: local processes only
                log.debug("docker socket %s unusable: %r", self.docker_socket, exc)
                self._client = False
        return self._client or None

    def _docker_sample(self, client, cid: str) -> ContainerSample | None:
        try:
            if cid not in self._inspect:
                self._inspect[cid] = client.api.inspect_container(cid)
            stats = client.api.stats(cid, stream=False, one_shot=True)
        except Exception:  # noqa: BLE001 - not docker's (local backend ids) or gone
            return None
        return sample_from_docker_stats(cid, stats, self._inspect[cid],
                                        cgroup=read_memory_cgroup(cid, self.cgroup_root))

    def collect(self, now: float | None = None) -> list[Serie]:
        import psutil

        state = self.ecs.state
        known = dict(state.containers)
        pids: dict[str, list] = {}
        for pid, cid in dict(state.pid_to_docker_id).items():
            try:
                pids.setdefault(cid, []).append(psutil.Process(pid))
            except psutil.Error:
                continue
        client = self._docker()
        samples: list[ContainerSample] = []
        for cid in known:
            sample = self._docker_sample(client, cid) if client else None
            if sample is None and pids.get(cid):
                sample = sample_from_processes(cid, pids[cid], now)
            if sample is not None:
                samples.append(sample)
        self._inspect = {k: v for k, v in self._inspect.items() if k in known}
        engine: EngineContainers | None = None
        if client:
            engine = EngineContainers()
            try:
                for c in client.api.containers(all=True):
                    running = c.get("State") == "running"
                    # check.go: a running container's tagger tags at low cardinality; a stopped (or
                    # unknown) one's image tags only.
                    tags = self.ecs.tags_for_container(c["Id"], "low") if running and c["Id"] in known else []
                    engine.add(tags or image_tags(c.get("Image", "")), running)
            except Exception as exc:  # noqa: BLE001 - the engine went away mid-run: no counts this run
                log.debug("listing the engine's containers failed: %r", exc)
                engine = None
        return self.check.run(samples, lambda cid: self.ecs.tags_for_container(cid, "high"), now, engine)
