"""Process and container collection, as the process agent sends them (v3 envelope, types 12 and 39).

psutil reads `/host/proc` when the host's /proc is mounted there (the ECS task definition mounts
it, docs/agent_contract.md#the-agent-task-on-ecs), else `/proc`. Containers are the ECS containers the agent
knows (see `lab.agent.ecs`); a process belongs to a container when its pid (or an ancestor's) does.
Collector: pkg/process/checks (process.go `CollectorProc`, container.go `CollectorContainer`), posted
to `<process_dd_url>/api/v1/collector` and `/api/v1/container`; the intake answers `ResCollector`.
"""

from __future__ import annotations

import os
import platform
import time

import psutil

from lab.agent.config import AGENT_VERSION, AgentConfig
from lab.agent.ecs import EcsAwareness

_LAST_PROCFS: list[str] = []


def use_procfs(path: str) -> None:
    """psutil reads one procfs for the whole process; switch it once, at agent start."""
    if path and psutil.PROCFS_PATH != path:
        psutil.PROCFS_PATH = path
    _LAST_PROCFS[:] = [path]


def _system_info():
    from lab.proto import process_agent_pb2 as pb

    uname = platform.uname()
    info = pb.SystemInfo(uuid="", totalMemory=psutil.virtual_memory().total)
    info.os.name = uname.system
    info.os.platform = uname.system.lower()
    info.os.kernelVersion = uname.release
    info.cpus.add(number=0, cores=psutil.cpu_count() or 1, vendor=uname.processor or "")
    return info


def collect_processes(config: AgentConfig, hostname: str, ecs: EcsAwareness | None, group_id: int = 1):
    """One CollectorProc with every visible process (and the containers they run in)."""
    from lab.proto import process_agent_pb2 as pb

    msg = pb.CollectorProc(hostName=hostname, groupId=group_id, groupSize=1)
    msg.info.CopyFrom(_system_info())
    msg.host.name = hostname
    msg.host.numCpus = psutil.cpu_count() or 1
    msg.host.totalMemory = psutil.virtual_memory().total
    seen_containers: set[str] = set()
    attrs = [
        "pid",
        "ppid",
        "cmdline",
        "cwd",
        "exe",
        "name",
        "username",
        "uids",
        "gids",
        "memory_info",
        "cpu_times",
        "create_time",
        "num_fds",
        "num_threads",
    ]
    for proc in psutil.process_iter(attrs):
        i = proc.info
        p = msg.processes.add(pid=i["pid"], key=i["pid"], createTime=int((i.get("create_time") or 0) * 1000))
        p.command.args.extend(i.get("cmdline") or [i.get("name") or ""])
        p.command.cwd = i.get("cwd") or ""
        p.command.exe = i.get("exe") or ""
        p.command.comm = i.get("name") or ""
        p.command.ppid = i.get("ppid") or 0
        p.user.name = i.get("username") or ""
        if i.get("uids"):
            p.user.uid, p.user.euid = i["uids"].real, i["uids"].effective
        if i.get("gids"):
            p.user.gid, p.user.egid = i["gids"].real, i["gids"].effective
        if i.get("memory_info"):
            p.memory.rss, p.memory.vms = i["memory_info"].rss, i["memory_info"].vms
        if i.get("cpu_times"):
            p.cpu.userTime = int(i["cpu_times"].user * 100)
            p.cpu.systemTime = int(i["cpu_times"].system * 100)
            p.cpu.numThreads = i.get("num_threads") or 0
        p.openFdCount = i.get("num_fds") or 0
        if ecs is not None:
            cid = ecs.container_of_pid(i["pid"])
            if cid:
                p.containerId = cid
                seen_containers.add(cid)
    if ecs is not None and config.container_collection_enabled:
        for c in container_messages(ecs, hostname, only=seen_containers or None):
            msg.containers.append(c)
    return msg


def container_messages(ecs: EcsAwareness, hostname: str, only: set[str] | None = None) -> list:
    from lab.proto import process_agent_pb2 as pb

    out = []
    snap = ecs.state.containers
    for cid, ct in snap.items():
        if only is not None and cid not in only:
            continue
        c = pb.Container(type="docker", id=cid, name=ct.name, started=int(time.time()))
        c.tags.extend(ct.at("orchestrator"))
        for t in ct.low:
            if t.startswith("image_name:"):
                c.image = t.split(":", 1)[1]
        out.append(c)
    return out


def collect_containers(hostname: str, ecs: EcsAwareness):
    from lab.proto import process_agent_pb2 as pb

    msg = pb.CollectorContainer(hostName=hostname, groupId=1, groupSize=1)
    msg.info.CopyFrom(_system_info())
    msg.host.name = hostname
    msg.containers.extend(container_messages(ecs, hostname))
    return msg


def process_headers(hostname: str, content_type: str = "application/x-protobuf") -> dict[str, str]:
    """pkg/process/runner/submitter.go headers."""
    return {
        "X-Dd-Hostname": hostname,
        "X-Dd-Processagentversion": AGENT_VERSION,
        "X-Dd-ContainerCount": "0",
        "Content-Type": content_type,
        "User-Agent": f"processes/{AGENT_VERSION}",
        "X-DD-Agent-Timestamp": str(int(time.time())),
    }


def own_pid() -> int:
    return os.getpid()
