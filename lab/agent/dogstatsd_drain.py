"""DogStatsD's socket reader as a process of its own: it only drains the UDP sockets into a queue.

Why a process: the agent parses and aggregates datagrams in Python, and a Python thread that parses
shares the interpreter lock with every other thread of the agent (APM, flushes, checks). While it
does not run, nobody empties the socket, and the kernel's receive buffer (208 KiB by default, a
few hundred small datagrams, under 3 ms at 100k/s) overflows: those datagrams are lost. The real
agent separates the same two jobs (pkg/dogstatsd/listeners/udp.go reads packets into a packet
buffer and hands full buffers over a channel, `dogstatsd_queue_size` deep, to the workers that
parse them). Here the reader is this small program, standard library only, which does nothing but
read and write what it read to a pipe that the agent's parse thread reads
(`lab.agent.dogstatsd_server`).

    python dogstatsd_drain.py --fds 3,4 --out 5 [--addresses] [--queue N]

It reads with recvmmsg(2) (through ctypes; up to 32 datagrams per call, where Python's own
recv costs a call per datagram) and falls back to `recv_into` where that is not available. Runs
of identical datagrams from one sender (clients send the same counter datagram over and over) go
to the pipe once, with their count.

Frames on the pipe (little endian unless said):
- datagrams: u16 length (at most 65507, the largest UDP payload over IPv4), u16 times (a run of
  that many identical datagrams, back to back), then, with `--addresses`, the sender's port (2
  bytes, network order) and IPv4 address (4 bytes), then the datagram;
- a count: u16 0xFFFF, then u64: datagrams read from the sockets so far (written after every
  batch), so the agent knows what is still on its way (`queued` in its status).

Bounded like the real agent's queue: at most `--queue` datagrams (default 32768, the agent's
`dogstatsd_queue_size` 1024 x `dogstatsd_packet_buffer_size` 32) read but not yet written to the
pipe; while that is full the sockets are not read, so the kernel's buffer fills and drops, where
its drop counter sees it. Nothing is lost here that is not counted there.

It asks the kernel for a short scheduler slice (`ask_short_slice`): on a busy machine, the first
milliseconds of a burst are where datagrams were lost, while the reader waited for a CPU held by a
sender or by the agent's parse thread (which, for its part, runs at the lowest priority:
`lab.agent.dogstatsd_server`). See bench/README.md, "DogStatsD: who gets the CPU".

It ends when the agent closes its end of the pipe (the agent stops, or dies: poll() then reports
an error on the write end at once, so the sockets' port is free again for a restarted agent).
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import errno
import fcntl
import os
import platform
import select
import signal
import socket
import struct
import sys

MAX_DATAGRAM = 65507
COUNT_MARK = 0xFFFF
VLEN = 32  # datagrams per recvmmsg call (a 2 MiB buffer per socket)
PIPE_SIZE = 4 << 20  # asked of the kernel (F_SETPIPE_SZ); root may get it, others pipe-max-size
F_SETPIPE_SZ = 1031
MSG_DONTWAIT = 0x40
HEAD = struct.Struct("<HH")  # a datagram frame: length, times
ADDRESS_BYTES = 6  # with --addresses, after HEAD: the sender's port (network order) and IPv4 address
COUNT = struct.Struct("<HQ")  # a count frame: COUNT_MARK, datagrams read so far


def add_frame(parts: list, data: bytes, times: int, address: bytes | None) -> None:
    """Append the frame of `times` identical datagrams `data` (from `address`, when framed with
    addresses) to `parts`."""
    parts.append(HEAD.pack(len(data), times))
    if address is not None:
        parts.append(address)
    parts.append(data)


# sched_setattr(2) by architecture (glibc has no wrapper): x86_64, arm64.
SCHED_SETATTR = {"x86_64": 314, "aarch64": 274, "arm64": 274}
SHORT_SLICE_NS = 100_000  # the shortest slice the kernel grants a SCHED_OTHER task (0.1 ms)


class _SchedAttr(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("sched_policy", ctypes.c_uint32),
                ("sched_flags", ctypes.c_uint64),
                ("sched_nice", ctypes.c_int32), ("sched_priority", ctypes.c_uint32),
                ("sched_runtime", ctypes.c_uint64), ("sched_deadline", ctypes.c_uint64),
                ("sched_period", ctypes.c_uint64), ("sched_util_min", ctypes.c_uint32),
                ("sched_util_max", ctypes.c_uint32)]


def ask_short_slice(runtime_ns: int = SHORT_SLICE_NS) -> bool:
    """Ask for a short slice for this thread; returns whether the kernel took the request.

    On Linux 6.12 and later (EEVDF), a normal task may set its slice with sched_setattr's
    `sched_runtime` (Documentation/scheduler/sched-eevdf.rst): no privilege needed, its weight (its
    share of the CPU) unchanged; a shorter slice gives it an earlier virtual deadline, so when it
    wakes it is picked before, or preempts, a task that has been running. Earlier kernels accept the
    call and ignore the value; where the call is missing or refused (a seccomp profile), nothing
    changes."""
    number = SCHED_SETATTR.get(platform.machine())
    if number is None:
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        attr = _SchedAttr(size=ctypes.sizeof(_SchedAttr), sched_policy=os.SCHED_OTHER,
                          sched_nice=os.getpriority(os.PRIO_PROCESS, 0), sched_runtime=runtime_ns)
        return libc.syscall(number, 0, ctypes.byref(attr), 0) == 0
    except (OSError, AttributeError):
        return False


def set_pipe_size(fd: int, size: int = PIPE_SIZE) -> int:
    """Enlarge a pipe (Linux); returns the size it got (0 where the call is not supported)."""
    for want in (size, 1 << 20):
        try:
            return fcntl.fcntl(fd, F_SETPIPE_SZ, want)
        except OSError:
            continue
    return 0


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.POINTER(_Iovec)), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


class Reader:
    """Reads up to `VLEN` datagrams per call from one socket; `read()` returns frames and a count."""

    def __init__(self, sock: socket.socket, addresses: bool) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.addresses = addresses
        self.buf = bytearray(VLEN * MAX_DATAGRAM)
        self.names = bytearray(VLEN * 16)  # sockaddr_in per datagram
        self._recvmmsg = None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fn = libc.recvmmsg
        except (OSError, AttributeError):
            return
        fn.argtypes = [ctypes.c_int, ctypes.POINTER(_Mmsghdr), ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
        fn.restype = ctypes.c_int
        base = ctypes.addressof(ctypes.c_char.from_buffer(self.buf))
        names = ctypes.addressof(ctypes.c_char.from_buffer(self.names))
        self.iovs = (_Iovec * VLEN)()
        self.msgs = (_Mmsghdr * VLEN)()
        for i in range(VLEN):
            self.iovs[i].iov_base = base + i * MAX_DATAGRAM
            self.iovs[i].iov_len = MAX_DATAGRAM
            h = self.msgs[i].msg_hdr
            h.msg_iov = ctypes.pointer(self.iovs[i])
            h.msg_iovlen = 1
            if addresses:
                # The kernel sets msg_namelen to the address's length on return: 16 for every
                # IPv4 sender, so it never needs setting again.
                h.msg_name = names + i * 16
                h.msg_namelen = 16
        # Every msg_len at once: the array seen as unsigned ints (msg_len's offset / 4 in each).
        self.lens = memoryview(self.msgs).cast("B").cast("I")
        self.len_stride = ctypes.sizeof(_Mmsghdr) // 4
        self.len_at = _Mmsghdr.msg_len.offset // 4
        self._recvmmsg = fn

    def read(self, room: int, parts: list) -> int:
        """Append frames for at most `room` datagrams (the socket drained or `room` reached) to
        `parts`; returns the datagrams read. Raises OSError when the socket fails."""
        if self._recvmmsg is not None:
            return self._read_mmsg(room, parts)
        return self._read_one_by_one(room, parts)

    def _read_mmsg(self, room: int, parts: list) -> int:
        fn, fd, msgs, buf, names = self._recvmmsg, self.fd, self.msgs, self.buf, self.names
        lens, stride, at = self.lens, self.len_stride, self.len_at
        addresses = self.addresses
        total = 0
        prev = prev_name = b""
        plen = -1
        times = 0
        while total < room:
            want = min(VLEN, room - total)
            n = fn(fd, msgs, want, MSG_DONTWAIT, None)
            if n <= 0:
                if n < 0:
                    err = ctypes.get_errno()
                    if err not in (errno.EAGAIN, errno.EINTR):
                        raise OSError(err, os.strerror(err))
                break
            for i in range(n):
                start = i * MAX_DATAGRAM
                size = lens[i * stride + at]
                # A repeat of the datagram before (and of its sender): compared in place.
                if (size == plen and buf.startswith(prev, start) and times < 0xFFFE
                        and (not addresses or names.startswith(prev_name, i * 16 + 2))):
                    times += 1
                    continue
                if times:
                    add_frame(parts, prev, times, prev_name if addresses else None)
                prev = bytes(buf[start : start + size])
                plen = size
                if addresses:
                    prev_name = bytes(names[i * 16 + 2 : i * 16 + 8])
                times = 1
            total += n
            if n < want:
                break
        if times:
            add_frame(parts, prev, times, prev_name if addresses else None)
        return total

    def _read_one_by_one(self, room: int, parts: list) -> int:
        recvfrom, recv = self.sock.recvfrom, self.sock.recv
        total = 0
        try:
            while total < room:
                if self.addresses:
                    data, addr = recvfrom(MAX_DATAGRAM)
                    add_frame(parts, data, 1, addr[1].to_bytes(2, "big") + socket.inet_aton(addr[0]))
                else:
                    add_frame(parts, recv(MAX_DATAGRAM), 1, None)
                total += 1
        except BlockingIOError:
            pass
        return total


def run(fds: list[int], out: int, addresses: bool, queue_limit: int) -> int:
    socks = [socket.socket(fileno=fd) for fd in fds]
    for s in socks:
        s.setblocking(False)
    readers = {s.fileno(): Reader(s, addresses) for s in socks}
    os.set_blocking(out, False)
    set_pipe_size(out)
    poller = select.poll()
    for fd in readers:
        poller.register(fd, select.POLLIN)
    # The write end is always registered: POLLERR says the agent closed its end (stopped or died).
    # (POLLOUT while something is queued: the first count below is.)
    poller.register(out, select.POLLOUT)
    writing = True
    reading = True
    queue: collections.deque[memoryview] = collections.deque()
    queued = 0  # datagrams in `queue` (not yet written)
    batch_counts: collections.deque[int] = collections.deque()  # datagrams per queued block
    total = 0
    # A count of 0 first: the agent waits for it, so no datagram is sent before anyone reads.
    queue.append(memoryview(COUNT.pack(COUNT_MARK, total)))
    batch_counts.append(0)
    while True:
        try:
            events = poller.poll(1000)
        except InterruptedError:
            continue
        for fd, ev in events:
            if fd == out:
                if ev & (select.POLLERR | select.POLLHUP):
                    return 0
                continue  # writable: the loop below writes
            if not reading:
                continue
            parts: list = []
            try:
                n = readers[fd].read(queue_limit - queued, parts)
            except OSError:
                return 1
            # No pause after a read of a few datagrams, to let more gather: a pause takes the reader
            # off its CPU even while datagrams wait, and on a busy machine getting that CPU back can
            # take longer than the kernel's buffer lasts (the first milliseconds of a burst were
            # where the reader lost datagrams: bench/README.md, "DogStatsD: no pause").
            if n:
                total += n
                queued += n
                parts.append(COUNT.pack(COUNT_MARK, total))
                queue.append(memoryview(b"".join(parts)))
                batch_counts.append(n)
        # Write what is queued, as much as the pipe takes now.
        while queue:
            try:
                written = os.write(out, queue[0])
            except BlockingIOError:
                break
            except OSError:
                return 0
            if written == len(queue[0]):
                queue.popleft()
                queued -= batch_counts.popleft()
            else:
                queue[0] = queue[0][written:]
                break
        want_write = bool(queue)
        if want_write != writing:
            poller.modify(out, select.POLLOUT if want_write else 0)
            writing = want_write
        want_read = queued < queue_limit
        if want_read != reading:
            for fd in readers:
                poller.modify(fd, select.POLLIN if want_read else 0)
            reading = want_read


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fds", required=True, help="the UDP sockets' file descriptors, comma separated")
    ap.add_argument("--out", type=int, required=True, help="the pipe's write end")
    ap.add_argument("--addresses", action="store_true", help="frame each datagram with its sender")
    ap.add_argument("--queue", type=int, default=32768, help="datagrams read and not yet written")
    args = ap.parse_args(argv)
    # The agent stops it by closing the pipe; Ctrl-C on a terminal reaches the agent, not this.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ask_short_slice()
    return run([int(f) for f in args.fds.split(",") if f], args.out, args.addresses, max(1, args.queue))


if __name__ == "__main__":
    sys.exit(main())
