"""ECS awareness: find the ECS agent, read tasks and task metadata, map pids and peers to containers.

Like the real agent (pkg/util/ecs/metadata, pkg/workloadmeta/collectors/internal/ecs):
- the introspection API is found from `DD_ECS_AGENT_URL`, else a docker container named `ecs-agent`,
  else the default gateway:51678, 169.254.172.1:51678, localhost:51678 - a candidate counts only if
  `GET /` lists `AvailableCommands`. The gateway and 169.254.172.1 are tried only where the lab owns
  those addresses (`LAB_AGENT_ALLOW_LINK_LOCAL_IMDS=1`): on the host they belong to someone else.
- `/v1/metadata` gives the cluster and ECS agent version (v4 task metadata from 1.39.0);
- `/v1/tasks` lists tasks and their containers' DockerIds;
- each container's `ECS_CONTAINER_METADATA_URI_V4` (read from its environment: docker inspect, or
  `/proc/<pid>/environ` on the local backend where containers are processes) answers `/task`.

On the local backend a tracer cannot send a useful `Datadog-Container-ID` (no cgroup), so the
emulation maps the TCP/UDP peer to a pid with psutil and the pid to its container through that same
environment variable - a stand-in for the agent's cgroup-based origin detection.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass, field

import psutil

from lab.agent.config import AgentConfig
from lab.agent.ecs_tags import ContainerTags, cluster_name_of, container_tags

log = logging.getLogger("lab.agent.ecs")

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
MIN_V4_VERSION = (1, 39, 0)


def _get_json(url: str, timeout: float = 1.0):
    with _opener.open(url, timeout=timeout) as resp:
        return json.loads(resp.read().decode() or "null")


def parse_ecs_agent_version(version: str) -> tuple[int, int, int] | None:
    """ "Amazon ECS Agent - v1.89.2 (abc)" -> (1, 89, 2)."""
    for word in version.split():
        if word.startswith("v") and word.count(".") >= 2:
            try:
                a, b, c = word[1:].split(".")[:3]
                return int(a), int(b), int("".join(ch for ch in c if ch.isdigit()) or 0)
            except ValueError:
                return None
    return None


def _default_gateway() -> str | None:
    try:
        with open("/proc/net/route") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[1] == "00000000":
                    gw = int(fields[2], 16)
                    return ".".join(str((gw >> (8 * i)) & 0xFF) for i in range(4))
    except OSError:
        return None
    return None


@dataclass
class EcsState:
    introspection_url: str | None = None
    cluster: str = ""
    ecs_agent_version: str = ""
    uses_v4: bool = False
    containers: dict[str, ContainerTags] = field(default_factory=dict)  # docker id -> tags
    pid_to_docker_id: dict[int, str] = field(default_factory=dict)
    last_refresh: float = 0.0
    last_error: str = ""
    fargate_task: dict = field(default_factory=dict)  # ECS_FARGATE: the agent's own task (v4 /task)


class EcsAwareness:
    """Keeps ECS tags fresh in a background thread; answers tag look-ups from caches."""

    def __init__(self, config: AgentConfig, refresh_interval: float = 2.0) -> None:
        self.config = config
        self.refresh_interval = refresh_interval
        self.state = EcsState()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._uri_cache: dict[
            str, tuple[str, dict, dict]
        ] = {}  # metadata uri -> (docker id, task, container)
        self._peer_cache: dict[tuple[str, str, int], tuple[float, int | None]] = {}
        self._peer_refreshing: set[tuple[str, str, int]] = set()
        self._refreshed = threading.Event()
        self._late: dict[str, ContainerTags] = {}
        self._late_pids: dict[int, str] = {}
        self._env_cache: dict[int, tuple[float, str]] = {}  # pid -> (create time, metadata URI)
        self._docker_ips: dict[str, str] = {}  # container address -> docker id (docker backend)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> EcsAwareness:
        self._thread = threading.Thread(target=self._run, name="agent-ecs", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def wait_refreshed(self, timeout: float) -> bool:
        return self._refreshed.wait(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - keep the agent alive, report in status
                self.state.last_error = repr(exc)
                log.debug("ECS refresh failed: %r", exc)
            self._refreshed.set()
            self._stop.wait(self.refresh_interval)

    # -- discovery ------------------------------------------------------------------------------
    def candidates(self) -> list[str]:
        out = []
        if self.config.ecs_agent_url:
            out.append(self.config.ecs_agent_url)
            return out
        ip = self._ecs_agent_container_ip()
        if ip:
            out.append(f"http://{ip}:51678")
        if self.config.allow_link_local:
            gw = _default_gateway()
            if gw:
                out.append(f"http://{gw}:51678")
            out.append("http://169.254.172.1:51678")
        out.append("http://localhost:51678")
        return out

    def _ecs_agent_container_ip(self) -> str | None:
        if not os.path.exists(self.config.docker_socket):
            return None
        try:
            import docker  # lazily: only where a docker socket is mounted

            client = docker.DockerClient(base_url=f"unix://{self.config.docker_socket}", timeout=2)
            c = client.containers.get("ecs-agent")
            nets = c.attrs.get("NetworkSettings", {}).get("Networks", {})
            for net in nets.values():
                if net.get("IPAddress"):
                    return net["IPAddress"]
        except Exception:  # noqa: BLE001 - no such container, or docker unreachable
            return None
        return None

    def discover(self) -> str | None:
        for url in self.candidates():
            try:
                root = _get_json(url.rstrip("/") + "/", timeout=0.5)
                if isinstance(root, dict) and "AvailableCommands" in root:
                    return url.rstrip("/")
            except Exception:  # noqa: BLE001
                continue
        return None

    # -- refresh --------------------------------------------------------------------------------
    def refresh(self) -> None:
        if self.config.ecs_fargate:
            return self._refresh_fargate()
        url = self.state.introspection_url or self.discover()
        if not url:
            self.state.last_error = "ECS agent introspection API not found"
        tasks: list[dict] = []
        if url:
            meta = _get_json(url + "/v1/metadata")
            self.state.introspection_url = url
            self.state.cluster = meta.get("Cluster", "")
            self.state.ecs_agent_version = meta.get("Version", "")
            version = parse_ecs_agent_version(self.state.ecs_agent_version)
            self.state.uses_v4 = bool(version and version >= MIN_V4_VERSION)
            tasks = (_get_json(url + "/v1/tasks") or {}).get("Tasks") or []
        self._map_containers({c.get("DockerId") for t in tasks for c in t.get("Containers", [])},
                             ok=bool(url))

    def _refresh_fargate(self) -> None:
        """ECS_FARGATE: the task is the agent's own, read from task metadata v4 (its own
        ECS_CONTAINER_METADATA_URI_V4 + /task), as the agent's ecs_fargate collector does; no ECS
        agent introspection, IMDS or docker socket exists on Fargate."""
        uri = self.config.metadata_uri_v4
        if not uri:
            self.state.last_error = "ECS_FARGATE=true but ECS_CONTAINER_METADATA_URI_V4 is not set"
            return
        task = _get_json(uri + "/task")
        with self._lock:
            self.state.fargate_task = task
            self.state.cluster = task.get("Cluster", "")
            self.state.uses_v4 = True
        self._map_containers({c.get("DockerId") for c in task.get("Containers", [])}, ok=True)
        # The task's own answer names every container: the agent's Fargate collector tags each one
        # from it, whether or not its processes are visible here (in separate containers they are
        # not: only the local backend's processes share the agent's /proc).
        tags = self.fargate_tags("low")
        with self._lock:
            for container in task.get("Containers") or []:
                docker_id = container.get("DockerId")
                if docker_id and docker_id not in self.state.containers:
                    found = container_tags(task, container)
                    found.low += [t for t in tags if t not in set(found.low)]
                    self.state.containers[docker_id] = found

    def fargate_tags(self, cardinality: str = "low") -> list[str]:
        """The task's tags, which the agent on Fargate puts on everything it sends (the tagger's
        global entity): low cardinality as DogStatsD adds them, orchestrator adds task_arn."""
        with self._lock:
            task = dict(self.state.fargate_task)
        if not task:
            return []
        base = container_tags(task, {})
        tags = [t for t in base.at(cardinality)
                if not t.startswith(("ecs_container_name:", "container_name:"))]
        if task.get("AvailabilityZone"):
            tags.append(f"availability_zone:{task['AvailabilityZone']}")
        tags.append("ecs_launch_type:fargate")
        return tags

    def _map_containers(self, known_ids: set, ok: bool) -> None:
        if not known_ids:
            # No ECS agent or no task on this instance: there is nothing to tag with.
            with self._lock:
                self.state.containers, self.state.pid_to_docker_id = {}, {}
                self.state.last_refresh = time.time()
            return
        uris = self._container_metadata_uris()
        containers: dict[str, ContainerTags] = {}
        pid_map: dict[int, str] = {}
        for uri, pids in uris.items():
            info = self._container_from_uri(uri)
            if info is None:
                continue
            docker_id, task, container = info
            if docker_id not in known_ids:
                continue
            if not task.get("Cluster"):
                task = dict(task, Cluster=self.state.cluster)
            containers[docker_id] = container_tags(task, container)
            if self.config.ecs_fargate:
                # The task's tags are on every container's data on Fargate (tagger's global entity).
                have = set(containers[docker_id].low)
                containers[docker_id].low += [t for t in self.fargate_tags("low") if t not in have]
            for pid in pids:
                pid_map[pid] = docker_id
        with self._lock:
            self.state.containers = containers
            self.state.pid_to_docker_id = pid_map
            self.state.last_refresh = time.time()
            if ok:
                self.state.last_error = ""

    def _container_metadata_uris(self) -> dict[str, list[int]]:
        """Each container's ECS_CONTAINER_METADATA_URI_V4 and the pids that carry it.

        A process's environment never changes, so each pid is read once (keyed by its start time,
        in case the pid is reused); a read that got no environment is not kept (see process_environ)."""
        out: dict[str, list[int]] = {}
        me = os.getpid()
        alive: dict[int, tuple[float, str]] = {}
        for proc in psutil.process_iter(["pid", "create_time"]):
            pid, created = proc.info["pid"], proc.info["create_time"] or 0.0
            if pid == me:
                continue
            cached = self._env_cache.get(pid)
            if cached is not None and cached[0] == created:
                uri = cached[1]
            else:
                env = process_environ(proc)
                if env is None:
                    continue  # read again next time: a process in the middle of an exec reads empty
                uri = self._metadata_uri_in(env)
            alive[pid] = (created, uri)
            if uri:
                out.setdefault(uri, []).append(pid)
        self._env_cache = alive
        out.update({u: [] for u in self._docker_metadata_uris() if u not in out})
        return out

    def _metadata_uri_in(self, env: dict[str, str]) -> str:
        """The task metadata endpoint a container's environment names (v4, else v3), or "" when it
        names none this agent may call."""
        uri = env.get("ECS_CONTAINER_METADATA_URI_V4") or env.get("ECS_CONTAINER_METADATA_URI") or ""
        uri = uri.rstrip("/")
        return uri if uri and _is_reachable_metadata_uri(uri, self.config.allow_link_local) else ""

    def _docker_metadata_uris(self) -> list[str]:
        """Metadata URIs of the containers the docker socket shows; also notes their addresses, so
        a peer address can name its container where /proc cannot (other network namespaces)."""
        if not os.path.exists(self.config.docker_socket):
            return []
        try:
            import docker  # lazily: only where a docker socket is mounted

            client = docker.DockerClient(base_url=f"unix://{self.config.docker_socket}", timeout=2)
            uris, ips = [], {}
            for c in client.containers.list():
                for kv in c.attrs.get("Config", {}).get("Env", []) or []:
                    if kv.startswith("ECS_CONTAINER_METADATA_URI_V4="):
                        uri = kv.split("=", 1)[1].rstrip("/")
                        # A container of someone else's docker lab (or a real ECS host) names
                        # 169.254.170.2: only follow it where the lab owns that address.
                        if not _is_reachable_metadata_uri(uri, self.config.allow_link_local):
                            continue
                        uris.append(uri)
                        for net in (c.attrs.get("NetworkSettings", {}).get("Networks") or {}).values():
                            if net.get("IPAddress"):
                                ips[net["IPAddress"]] = c.id
            self._docker_ips = ips
            return uris
        except Exception:  # noqa: BLE001 - docker unreachable: nothing to add
            return []

    def _container_from_uri(self, uri: str) -> tuple[str, dict, dict] | None:
        cached = self._uri_cache.get(uri)
        if cached is not None:
            return cached
        try:
            container = _get_json(uri)
            task = _get_json(uri + "/task")
        except Exception as exc:  # noqa: BLE001
            log.debug("task metadata %s unreachable: %r", uri, exc)
            return None
        docker_id = container.get("DockerId", "")
        for c in task.get("Containers", []):
            if c.get("DockerId") == docker_id:
                container = {**container, **c}
        result = (docker_id, task, container)
        if docker_id:
            self._uri_cache[uri] = result
        return result

    # -- look-ups -------------------------------------------------------------------------------
    def tags_for_container(self, docker_id: str, cardinality: str = "low") -> list[str]:
        if not docker_id:
            return []
        with self._lock:
            known = {**self._late, **self.state.containers}
            ct = known.get(docker_id)
            if ct is None:
                for cid, c in known.items():
                    if cid.startswith(docker_id):
                        ct = c
                        break
        return ct.at(cardinality) if ct else []

    def container_of_pid(self, pid: int) -> str | None:
        with self._lock:
            pid_map = {**self._late_pids, **self.state.pid_to_docker_id}
        chain = []
        while pid and len(chain) < 16:
            if pid in pid_map:
                return pid_map[pid]
            chain.append(pid)
            try:
                pid = psutil.Process(pid).ppid()
            except psutil.Error:
                break
        # Not seen by the last refresh (a process that just started): read its environment now.
        for p in chain:
            cid = self._container_of_new_pid(p)
            if cid:
                return cid
        return None

    def _container_of_new_pid(self, pid: int) -> str | None:
        env = process_environ(pid)
        if env is None:
            return None
        uri = self._metadata_uri_in(env)
        if not uri:
            return None
        info = self._container_from_uri(uri)
        if info is None:
            return None
        docker_id, task, container = info
        if task.get("Cluster") and self.state.cluster and (
                cluster_name_of(task["Cluster"]) != cluster_name_of(self.state.cluster)):
            # A task of another cluster (another lab's process on this machine) is not a container
            # of this host: the real agent sees only its own host's containers.
            return None
        if not task.get("Cluster") and self.state.cluster:
            task = dict(task, Cluster=self.state.cluster)
        with self._lock:
            # Kept apart from the refreshed maps so a refresh that began before this process
            # existed cannot erase it before the caller reads the tags.
            if len(self._late) > 1024:
                self._late.clear()
            self._late[docker_id] = container_tags(task, container)
            self._late_pids[pid] = docker_id
        return docker_id

    def pid_of_peer(self, ip: str, port: int, kind: str = "tcp") -> int | None:
        """The pid owning the socket whose local address is the peer (ip, port).

        Cached: a known answer is returned at once for 30 s (a miss for 1 s), and after that it is
        still returned while one background thread looks again, so only a peer never seen before
        waits for a look-up (a DogStatsD reader must not stop reading for it)."""
        key = (kind, ip, port)
        now = time.monotonic()
        hit = self._peer_cache.get(key)
        if hit is not None:
            if now - hit[0] >= (30 if hit[1] else 1) and key not in self._peer_refreshing:
                self._peer_refreshing.add(key)
                threading.Thread(
                    target=self._refresh_peer, args=(key,), name="agent-peer-lookup", daemon=True
                ).start()
            return hit[1]
        return self._refresh_peer(key)

    def _refresh_peer(self, key: tuple[str, str, int]) -> int | None:
        kind, ip, port = key
        pid = None
        try:
            pid = _pid_of_socket(self._socket_inodes(kind, ip, port), self._candidate_pids())
        except OSError:
            pass
        finally:
            if len(self._peer_cache) > 4096:
                self._peer_cache.clear()
            self._peer_cache[key] = (time.monotonic(), pid)
            self._peer_refreshing.discard(key)
        return pid

    def _candidate_pids(self) -> list[int]:
        """The processes that carry a container's metadata URI first (a peer that maps to a
        container is almost always one of them), then every other process."""
        with self._lock:
            known = [*self.state.pid_to_docker_id, *self._late_pids]
        seen = set(known)
        return known + [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in seen]

    @staticmethod
    def _socket_inodes(kind: str, ip: str, port: int) -> set[str]:
        """Inodes of the sockets bound to (ip or any address, port), from /proc/net/{tcp,udp}[6]
        (what psutil.net_connections reads too, but only the rows of this one port are parsed:
        on a host with thousands of sockets, a full net_connections took 0.4 s)."""
        needle = f":{port:04X} "
        try:
            packed = socket.inet_aton(ip)
        except OSError:
            packed = b"\0\0\0\0"
        mine = packed[::-1].hex().upper()  # /proc/net shows IPv4 addresses as host-order words
        accept = {mine, "00000000", "0" * 32, "0000000000000000FFFF0000" + mine}
        inodes: set[str] = set()
        for table in (f"/proc/net/{kind}", f"/proc/net/{kind}6"):
            try:
                with open(table) as f:
                    text = f.read()
            except OSError:
                continue
            pos = text.find(needle)
            while pos != -1:
                line_start = text.rfind("\n", 0, pos) + 1
                line_end = text.find("\n", pos)
                fields = text[line_start : line_end if line_end != -1 else None].split()
                # fields[1] is the local address; the needle may also have matched the remote one.
                if len(fields) > 9 and fields[1].endswith(needle[:-1]):
                    if fields[1].rsplit(":", 1)[0] in accept and fields[9] != "0":
                        inodes.add(fields[9])
                pos = text.find(needle, pos + 1)
        return inodes

    def container_of_peer(self, ip: str, port: int, kind: str = "tcp") -> str | None:
        pid = self.pid_of_peer(ip, port, kind)
        cid = self.container_of_pid(pid) if pid else None
        return cid or self._docker_ips.get(ip)

    def known_containers(self) -> dict[str, tuple[ContainerTags, list[int]]]:
        """Every container of this instance's tasks found so far: docker id -> (tags, its pids)."""
        with self._lock:
            pids: dict[str, list[int]] = {}
            for pid, cid in {**self._late_pids, **self.state.pid_to_docker_id}.items():
                pids.setdefault(cid, []).append(pid)
            known = {**self._late, **self.state.containers}
        return {cid: (tags, sorted(pids.get(cid, []))) for cid, tags in known.items()}

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "introspection_url": self.state.introspection_url,
                "cluster": self.state.cluster,
                "ecs_agent_version": self.state.ecs_agent_version,
                "task_metadata_v4": self.state.uses_v4,
                "containers": {
                    cid: {"name": c.name, "task_arn": c.task_arn, "tags": c.at("low")}
                    for cid, c in self.state.containers.items()
                },
                "last_error": self.state.last_error,
            }


def process_environ(proc: psutil.Process | int) -> dict[str, str] | None:
    """A process's environment as it was exec'd (/proc/<pid>/environ), None when it cannot be read.

    Linux answers a read of /proc/<pid>/environ with nothing, not an error, while the process is
    in the middle of an execve (its old memory is released, the new one not yet set up): an
    `sh -c '...; exec app'` entryPoint passes through that moment at its start (a zombie's read
    raises psutil.ZombieProcess instead, so it is None here too). An
    empty environment is therefore "not readable now", never an answer to keep (a kernel thread's
    is empty too, and reading it again costs one read of an empty file)."""
    try:
        env = (proc if isinstance(proc, psutil.Process) else psutil.Process(proc)).environ()
    except (psutil.Error, OSError):
        return None
    return env or None


def _pid_of_socket(inodes: set[str], pids: list[int]) -> int | None:
    """The first of `pids` (other than this process) holding one of the socket `inodes`."""
    if not inodes:
        return None
    targets = {f"socket:[{i}]" for i in inodes}
    me = os.getpid()
    for pid in pids:
        if pid == me:
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") in targets:
                    return pid
            except OSError:
                continue
    return None


def _is_reachable_metadata_uri(uri: str, allow_link_local: bool) -> bool:
    """On the host only loopback metadata endpoints are called; elsewhere the lab owns the network."""
    from urllib.parse import urlsplit

    host = urlsplit(uri).hostname or ""
    return allow_link_local or host == "localhost" or host.startswith("127.")
