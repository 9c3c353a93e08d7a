"""Byte counters of this network namespace's TCP sockets, from the kernel's `tcp_info` over the
sock_diag netlink interface (what `ss -ti` prints as bytes_acked / bytes_received).

system-probe counts bytes in eBPF as they pass; the lab asks the kernel for each socket's totals
when the check runs and reports the difference from the previous run. Another network namespace
(a container's, on the docker backend) is read from a thread that first joins it with setns(2),
which needs CAP_SYS_ADMIN (the NPM task definition grants it). Layouts: linux/inet_diag.h
(`inet_diag_req_v2`, `inet_diag_msg`), linux/tcp.h (`tcp_info`: `tcpi_bytes_acked` at byte 120,
`tcpi_bytes_received` at 128, since Linux 4.1/4.2). Where netlink is refused (a sandbox without
NETLINK_SOCK_DIAG), `read()` returns nothing and the counters stay 0.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import os
import socket
import struct
import threading

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
INET_DIAG_INFO = 2
_NLMSGHDR = struct.Struct("=IHHII")
_REQ = struct.Struct("=BBBBI48s")  # family, protocol, ext, pad, states, inet_diag_sockid
_MSG_HEAD = struct.Struct("=BBBB")
_SOCKID = struct.Struct(">HH16s16s")  # ports are big-endian; if and cookie follow
_MSG_SIZE = 4 + 48 + 20  # inet_diag_msg
_BYTES_AT = 120  # tcpi_bytes_acked, then tcpi_bytes_received

Address = tuple[str, int]


def _ip(family: int, raw: bytes) -> str:
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    addr = ipaddress.IPv6Address(raw)
    return str(addr.ipv4_mapped) if addr.ipv4_mapped else str(addr)


def _dump(family: int) -> dict[tuple[Address, Address], tuple[int, int]]:
    out: dict[tuple[Address, Address], tuple[int, int]] = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(2.0)
        req = _REQ.pack(family, socket.IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1), 0, 0xFFFFFFFF, b"\0" * 48)
        nl.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(req), SOCK_DIAG_BY_FAMILY,
                               NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + req)
        while True:
            data = nl.recv(65536)
            at = 0
            while at + _NLMSGHDR.size <= len(data):
                length, mtype, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, at)
                if length < _NLMSGHDR.size:
                    return out
                if mtype == NLMSG_DONE:
                    return out
                if mtype == NLMSG_ERROR:
                    raise OSError("sock_diag refused the dump")
                body = data[at + _NLMSGHDR.size:at + length]
                entry = _parse(body)
                if entry is not None:
                    out[entry[0]] = entry[1]
                at += (length + 3) & ~3


def _parse(body: bytes) -> tuple[tuple[Address, Address], tuple[int, int]] | None:
    if len(body) < _MSG_SIZE:
        return None
    family = body[0]
    sport, dport, src, dst = _SOCKID.unpack_from(body, 4)
    key = ((_ip(family, src), sport), (_ip(family, dst), dport))
    at = _MSG_SIZE
    while at + 4 <= len(body):
        rta_len, rta_type = struct.unpack_from("=HH", body, at)
        if rta_len < 4:
            break
        if rta_type == INET_DIAG_INFO and rta_len - 4 >= _BYTES_AT + 16:
            acked, received = struct.unpack_from("=QQ", body, at + 4 + _BYTES_AT)
            return key, (acked, received)
        at += (rta_len + 3) & ~3
    return None


def _read_here() -> dict[tuple[Address, Address], tuple[int, int]]:
    out: dict[tuple[Address, Address], tuple[int, int]] = {}
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            out.update(_dump(family))
        except OSError:
            continue
    return out


CLONE_NEWNET = 0x40000000


def _read_in(netns_path: str) -> dict[tuple[Address, Address], tuple[int, int]]:
    """The dump from inside another network namespace: a thread of its own joins it (setns changes
    only the calling thread) and ends with it."""
    result: dict[tuple[Address, Address], tuple[int, int]] = {}

    def run() -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        try:
            fd = os.open(netns_path, os.O_RDONLY)
        except OSError:
            return
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                return  # no CAP_SYS_ADMIN: the counters stay 0
        finally:
            os.close(fd)
        result.update(_read_here())

    t = threading.Thread(target=run, name="tcp-counters-netns", daemon=True)
    t.start()
    t.join(5.0)
    return result


def read(netns_path: str | None = None) -> dict[tuple[Address, Address], tuple[int, int]]:
    """(local, remote) -> (bytes sent and acknowledged, bytes received) for every TCP socket of
    this network namespace, or of the one at `netns_path` (`/proc/<pid>/ns/net`); empty when the
    kernel does not answer or the namespace cannot be joined."""
    if netns_path is None:
        return _read_here()
    try:
        if os.stat(netns_path).st_ino == os.stat("/proc/self/ns/net").st_ino:
            return _read_here()
    except OSError:
        return {}
    return _read_in(netns_path)
