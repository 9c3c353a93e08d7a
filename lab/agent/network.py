"""Network Performance Monitoring: the system-probe's network module and the process agent's
connections check, as the emulated agent runs them (docs/npm.md).

The real system-probe traces every TCP/UDP flow of the host with eBPF; the lab reads the sockets
the tasks' processes hold when the check runs (`/proc/<pid>/net/{tcp,udp}[6]`, the tables of the
pid's own network namespace, matched to the pid's file descriptors), so a connection opened and
closed between two runs is not seen, and the byte counters come from the kernel's TCP info where
this machine offers it (see `lab.agent.tcp_counters`), else stay 0.

What the check sends follows `pkg/process/checks/net.go` (`batchConnections`): one
`CollectorConnections` per `max_conns_per_message` connections (default 600), all of a run sharing
one `groupId` with `groupSize` messages; each connection's local container id in `laddr` and in
`containerForPid`; the container's tags (tagger, high cardinality) as a set in `encodedTags`
pointed at by `localContainerTagsIndex`; the host tags by `hostTagsIndex`; a placeholder set `-`
first so that real indexes are above 0. Posted to `<process_dd_url>/api/v1/connections` as a v3
message of type 22 (`lab.proto.process_codec`).
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import psutil

from lab.tasks import CAPABILITIES_ENV, MOUNTS_ENV

log = logging.getLogger("lab.agent.network")

# -- system-probe's requirements ---------------------------------------------------------------------

# What Datadog's ECS NPM task definition adds (docs/npm.md#the-task-definition). The real
# system-probe does not check a list: it fails at the first operation the kernel refuses.
REQUIRED_CAPABILITIES = ("SYS_ADMIN", "SYS_RESOURCE", "SYS_PTRACE", "NET_ADMIN", "NET_BROADCAST",
                         "NET_RAW", "IPC_LOCK", "CHOWN")
DEBUGFS = "/sys/kernel/debug"
# Bit numbers of linux/capability.h, to read CapEff from /proc/self/status.
_CAP_BITS = ("CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
             "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
             "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
             "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
             "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
             "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE")
# pkg/system-probe/api/module/loader.go and the run command: the lines a failed start logs.
FAILED_TO_CREATE = "failed to create system probe: "
SYSPROBE_SOCKET = "/opt/datadog-agent/run/sysprobe.sock"


def granted_capabilities(env: Mapping[str, str]) -> set[str]:
    """The capabilities this container has: the runtime's grant from the environment where the
    backend writes it, else this process's effective set (CapEff)."""
    raw = env.get(CAPABILITIES_ENV)
    if raw is not None:
        return {c.strip().upper().removeprefix("CAP_") for c in raw.split(",") if c.strip()}
    try:
        with open("/proc/self/status") as f:
            line = next((ln for ln in f if ln.startswith("CapEff:")), "CapEff:\t0")
    except OSError:
        return set()
    bits = int(line.split()[1], 16)
    return {name for i, name in enumerate(_CAP_BITS) if bits >> i & 1}


def mounted_paths(env: Mapping[str, str]) -> set[str]:
    """Container paths with something mounted on them (the task's mount points)."""
    raw = env.get(MOUNTS_ENV)
    if raw is not None:
        return {p.strip().rstrip("/") or "/" for p in raw.split(",") if p.strip()}
    try:
        with open("/proc/self/mountinfo") as f:
            return {ln.split()[4].rstrip("/") or "/" for ln in f if len(ln.split()) > 4}
    except OSError:
        return set()


def _kernel_at_least(release: str, wanted: tuple[int, int]) -> bool:
    parts = []
    for piece in release.split(".")[:2]:
        digits = "".join(itertools.takewhile(str.isdigit, piece))
        parts.append(int(digits) if digits else 0)
    return tuple(parts + [0] * (2 - len(parts))) >= wanted


def system_probe_start_error(capabilities: set[str], mounts: set[str],
                             kernel_release: str | None = None) -> list[str] | None:
    """The lines system-probe logs when it cannot start its network module with this grant, or
    None when it can. The outer messages are the real system-probe's; the cause inside names what
    the lab found missing (docs/npm.md#when-a-requirement-is-missing)."""
    release = kernel_release if kernel_release is not None else platform.release()
    # ebpf.Setup removes the memlock rlimit first (cilium/ebpf rlimit.RemoveMemlock), which needs
    # CAP_SYS_RESOURCE, except from Linux 5.11 on: eBPF memory is charged to the cgroup there and
    # RemoveMemlock does nothing.
    memlock_needed = not _kernel_at_least(release, (5, 11))
    if "SYS_RESOURCE" not in capabilities and memlock_needed:
        return [FAILED_TO_CREATE + "error in pre-register hook: rlimit memlock: "
                "failed to set memlock rlimit: operation not permitted"]
    missing = [c for c in REQUIRED_CAPABILITIES if c not in capabilities
               and (c != "SYS_RESOURCE" or memlock_needed)]
    if "SYS_ADMIN" in missing and {"BPF", "PERFMON"} <= capabilities:
        missing.remove("SYS_ADMIN")  # kernels >= 5.8 load eBPF with CAP_BPF + CAP_PERFMON instead
    causes = [f"operation not permitted (the container lacks CAP_{c})" for c in missing]
    if DEBUGFS not in mounts:
        causes.append(f"debugfs is not mounted at {DEBUGFS} (kprobes cannot be attached)")
    if not causes:
        return None
    return [f"error creating module network_tracer: {'; '.join(causes)}",
            FAILED_TO_CREATE + "no module could be loaded"]


@dataclass
class SystemProbe:
    """The system-probe beside the agent: started once, or failing and restarted by s6 every 2 s
    (the agent image's sysprobe service), with what `agent status -j` shows of it."""

    error_lines: list[str] | None
    started_at: float = 0.0
    restarts: int = 0
    connections_served: int = 0

    @property
    def running(self) -> bool:
        return self.error_lines is None

    def status(self, now: float) -> dict:
        """`systemProbeStats` (pkg/status/systemprobe: the probe's /debug/stats, or an Errors
        string when its socket does not answer)."""
        if not self.running:
            return {"Errors": "issue querying stats from system probe: Get \"http://sysprobe/debug/stats\": "
                              f"dial unix {SYSPROBE_SOCKET}: connect: no such file or directory"}
        return {"network_tracer": {"state": {"clients": 1}, "tracer": {"connections_served":
                                                                       self.connections_served}},
                "uptime": f"{now - self.started_at:.0f}s"}


# -- connections ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Socket:
    pid: int
    type: str  # "tcp" | "udp"
    laddr: tuple[str, int]
    raddr: tuple[str, int]
    status: str
    net_ns: int
    fd: int = -1


@dataclass
class ConnectionRecord:
    """One connection as the check reports it, before it is written into a payload."""

    pid: int
    type: str
    laddr: tuple[str, int]
    raddr: tuple[str, int]
    direction: str  # "incoming" | "outgoing"
    net_ns: int
    container_id: str | None = None
    remote_container_id: str | None = None
    intra_host: bool = False
    ephemeral: bool | None = None
    bytes_sent: int = 0
    bytes_received: int = 0
    tags: list[str] = field(default_factory=list)


def netns_path(pid: int) -> str:
    """The pid's network namespace, as a path setns(2) can open."""
    return f"{psutil.PROCFS_PATH}/{pid}/ns/net"


def _net_ns(pid: int) -> int:
    try:
        return os.stat(f"{psutil.PROCFS_PATH}/{pid}/ns/net").st_ino
    except OSError:
        return 0


def process_tree(pids: list[int]) -> list[int]:
    """The pids and all their descendants (a container's entrypoint shell and what it runs)."""
    out: list[int] = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            out.append(pid)
            out.extend(c.pid for c in root.children(recursive=True))
        except psutil.Error:
            continue
    return list(dict.fromkeys(out))


# include/net/tcp_states.h, as /proc/net/tcp writes them (two hex digits).
TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
              "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN",
              "0B": "CLOSING", "0C": "NEW_SYN_RECV"}
_TABLES = (("tcp", "tcp", False), ("tcp6", "tcp", True), ("udp", "udp", False), ("udp6", "udp", True))


def _address(field_: str, v6: bool) -> tuple[str, int]:
    """`0100007F:1F90` -> ("127.0.0.1", 8080): the address as the kernel's 32-bit words, each in
    host (little-endian) order."""
    hex_ip, hex_port = field_.split(":")
    raw = bytes.fromhex(hex_ip)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    if not v6:
        return str(ipaddress.IPv4Address(words)), int(hex_port, 16)
    addr = ipaddress.IPv6Address(words)
    return str(addr.ipv4_mapped or addr), int(hex_port, 16)


def _socket_fds(pid: int) -> dict[int, int]:
    """socket inode -> fd, from the pid's file descriptors."""
    fd_dir = f"{psutil.PROCFS_PATH}/{pid}/fd"
    out: dict[int, int] = {}
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return out
    for fd in fds:
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out[int(target[8:-1])] = int(fd)
    return out


def _net_tables(pid: int) -> list[tuple[str, tuple[str, int], tuple[str, int], str, int]]:
    """The TCP/UDP tables of the pid's network namespace: (type, laddr, raddr, state, inode) rows,
    read from /proc/<pid>/net (not /proc/net, which is the reader's own namespace)."""
    rows = []
    for table, kind, v6 in _TABLES:
        try:
            with open(f"{psutil.PROCFS_PATH}/{pid}/net/{table}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            try:
                laddr, raddr = _address(fields[1], v6), _address(fields[2], v6)
            except ValueError:
                continue
            rows.append((kind, laddr, raddr, TCP_STATES.get(fields[3], fields[3]), int(fields[9])))
    return rows


def sockets_of(pids: list[int]) -> list[Socket]:
    """Every TCP/UDP socket the processes hold, each read from its own network namespace's tables
    (one read per namespace), plus that namespace's listening sockets whoever holds them (pid 0):
    they decide the direction of the others."""
    found: list[Socket] = []
    tables: dict[int, list] = {}
    for pid in pids:
        fds = _socket_fds(pid)
        if not fds:
            continue
        ns = _net_ns(pid)
        if ns not in tables:
            tables[ns] = _net_tables(pid)
        for kind, laddr, raddr, state, inode in tables[ns]:
            if inode in fds:
                peer = raddr if raddr[1] else ("", 0)
                found.append(Socket(pid, kind, laddr, peer, state, ns, fds[inode]))
    owned = {(s.net_ns, s.type, s.laddr) for s in found}
    for ns, rows in tables.items():
        for kind, laddr, _raddr, state, _inode in rows:
            if state == "LISTEN" and (ns, kind, laddr) not in owned:
                found.append(Socket(0, kind, laddr, ("", 0), state, ns))
    return found


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = f.read().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def _listens_on(listeners: set[tuple[int, str, str, int]], ns: int, kind: str, ip: str, port: int) -> bool:
    wildcard = ("0.0.0.0", "::", "")
    return any((ns, kind, w, port) in listeners for w in (ip, *wildcard))


def connections_from(sockets: list[Socket], container_of: Callable[[int], str | None],
                     local_ips: set[str]) -> list[ConnectionRecord]:
    """The sockets that are connections (TCP established or closing, UDP with a peer), each with
    its direction: incoming when its local port is one its network namespace listens on (TCP) or
    its socket has no peer of its own (UDP), else outgoing, as system-probe decides from its port
    tables (pkg/network/tracer: connection direction from the listening ports)."""
    listeners = {(s.net_ns, s.type, s.laddr[0], s.laddr[1]) for s in sockets
                 if (s.type == "tcp" and s.status == "LISTEN")
                 or (s.type == "udp" and not s.raddr[0])}
    lo, hi = _ephemeral_range()
    out: list[ConnectionRecord] = []
    seen: set[tuple] = set()
    for s in sockets:
        if not s.pid or not s.raddr[0] or s.status in ("LISTEN", "CLOSE", "TIME_WAIT"):
            continue
        key = (s.pid, s.type, s.laddr, s.raddr, s.net_ns)
        if key in seen:  # a socket shared by a parent and its child (inherited descriptor)
            continue
        seen.add(key)
        incoming = _listens_on(listeners, s.net_ns, s.type, s.laddr[0], s.laddr[1]) and s.type == "tcp"
        out.append(ConnectionRecord(
            pid=s.pid, type=s.type, laddr=s.laddr, raddr=s.raddr,
            direction="incoming" if incoming else "outgoing", net_ns=s.net_ns,
            container_id=container_of(s.pid), intra_host=s.raddr[0] in local_ips,
            ephemeral=lo <= s.laddr[1] <= hi))
    # Local resolver (pkg/process/net/resolver): a peer that is another local container's socket
    # gets that container's id in raddr.
    by_local = {(c.laddr, c.type): c.container_id for c in out if c.container_id}
    for c in out:
        c.remote_container_id = by_local.get((c.raddr, c.type))
    return out


def local_addresses() -> set[str]:
    """The addresses of this host (its interfaces, loopback included): a peer among them makes a
    connection intra-host."""
    ips = {"127.0.0.1", "::1"}
    try:
        for addrs in psutil.net_if_addrs().values():
            ips.update(a.address.split("%")[0] for a in addrs if a.family.name in ("AF_INET", "AF_INET6"))
    except (OSError, AttributeError):
        pass
    return ips


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def build_payloads(records: list[ConnectionRecord], hostname: str, group_id: int, max_per_message: int,
                   container_tags: Callable[[str], list[str]], host_tags: list[str]) -> list:
    """The CollectorConnections messages of one check run (`batchConnections`)."""
    from lab.proto import process_agent_pb2 as pb
    from lab.proto.tag_encoding import TagSetEncoder

    if not records:
        return []
    group_size = -(-len(records) // max_per_message)
    uname = platform.uname()
    messages = []
    for start in range(0, len(records), max_per_message):
        batch = records[start:start + max_per_message]
        tags, conn_tags = TagSetEncoder(), TagSetEncoder()
        tags.encode(["-"])  # net.go: a dummy set so the indexes used are always >= 0
        msg = pb.CollectorConnections(hostName=hostname, groupId=group_id, groupSize=group_size,
                                      architecture=uname.machine, kernelVersion=uname.release,
                                      platform=uname.system.lower())
        msg.agentConfiguration.npmEnabled = True
        for r in batch:
            c = msg.connections.add(
                pid=r.pid, type=pb.tcp if r.type == "tcp" else pb.udp,
                family=pb.v6 if ":" in r.laddr[0] else pb.v4,
                direction=pb.incoming if r.direction == "incoming" else pb.outgoing,
                netNS=r.net_ns, intraHost=r.intra_host or _is_loopback(r.raddr[0]),
                lastBytesSent=r.bytes_sent, lastBytesReceived=r.bytes_received,
                systemProbeConn=False, localContainerTagsIndex=-1, remoteServiceTagsIdx=-1,
                tagsIdx=conn_tags.encode(r.tags))
            if r.ephemeral is not None:
                c.isLocalPortEphemeral = pb.ephemeralTrue if r.ephemeral else pb.ephemeralFalse
            c.laddr.ip, c.laddr.port = r.laddr
            c.raddr.ip, c.raddr.port = r.raddr
            if r.remote_container_id:
                c.raddr.containerId = r.remote_container_id
            if r.container_id:
                c.laddr.containerId = r.container_id
                msg.containerForPid[r.pid] = r.container_id
                c.localContainerTagsIndex = tags.encode(container_tags(r.container_id))
        msg.hostTagsIndex = tags.encode(host_tags)
        msg.encodedTags = tags.buffer()
        msg.encodedConnectionsTags = conn_tags.buffer()
        messages.append(msg)
    return messages


_GROUP_IDS = itertools.count(1)


def next_group_id() -> int:
    """The check runner's group ids: one per run, shared by the run's messages."""
    return next(_GROUP_IDS)
