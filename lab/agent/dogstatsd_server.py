"""DogStatsD on the wire: UDP sockets read in batches and parsed by the thread that reads them.

The real agent sizes its socket buffer from `dogstatsd_so_rcvbuf` (default 0: the kernel's,
net.core.rmem_default, 208 KiB here) and moves packets into a buffer before parsing
(pkg/dogstatsd/listeners/udp.go, packets buffer). What that protects against is the socket going
unread while the aggregator works; here the aggregator's lock is held only to swap its buckets at
flush time, so parsing never waits for a flush. What costs datagrams in Python is the GIL and the
scheduler: a hand-over to a parse thread per datagram cost ~35 us of CPU and the 208 KiB buffer
holds only ~256 small datagrams (4 ms at 60k/s). So each reader thread waits in poll(), drains
everything the kernel holds with non-blocking reads (up to `READ_BATCH`), then parses and
aggregates that batch itself, and reads again: one wake-up per batch, no thread hand-over.

Clients send the same datagram over and over (a counter `name:1|c|#tags` per request): a run of
identical datagrams from one sender, back to back in a batch, is parsed once and aggregated with
its multiplicity (`MetricAggregator.add_sample(times=)`), which gives what adding them one by one
gives (counters summed, the same gauge value, histogram and distribution samples repeated). Only
consecutive repeats merge, so the arrival order that decides a gauge's last value is kept.

Repeats that are not consecutive (several clients, several metrics) are served by two caches, in
the spirit of the agent's context resolver (pkg/aggregator: a context is looked up by a hash of
name+tags+host) and its string interner (pkg/dogstatsd/intern.go, bounded by
dogstatsd_string_interner_size): a datagram seen before, byte for byte, costs one dict look-up; a
known `name|type|fields` with other values costs the values' float parse. Both are checked against
`parse_packet` on every datagram (tests/agent/test_dogstatsd_context_cache.py, tests/fuzz), hold at
most MAX_CACHED_CONTEXTS datagrams of at most MAX_CACHED_BYTES each, and are emptied when full.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from lab.agent.dogstatsd import ContextKey, MetricAggregator, MetricSample, ParseStats, parse_packet
from lab.agent.dogstatsd_drain import ADDRESS_BYTES, COUNT, COUNT_MARK, HEAD, set_pipe_size
from lab.serving import check_free

log = logging.getLogger("lab.agent.dogstatsd")

MAX_PACKET = 65535
# Datagrams read before they are parsed: parsing 256 takes ~1 ms, while which the kernel buffer
# fills with at most 60 more at 60k/s; a larger batch would only let it fill further.
READ_BATCH = 256
# Context cache bounds (the agent bounds its string interner by dogstatsd_string_interner_size, 4096
# by default, and its context resolver by expiring contexts): full, it is emptied and starts over.
MAX_CACHED_CONTEXTS = 4096
MAX_ORIGINS_PER_CONTEXT = 64
MAX_DATAGRAMS_PER_CONTEXT = 16
MAX_CACHED_BYTES = 1024  # longer datagrams are parsed each time: a full cache holds a few MiB at most
DRAIN_SCRIPT = Path(__file__).with_name("dogstatsd_drain.py")
# The reader process's queue, as the real agent's: dogstatsd_queue_size (1024) packet buffers of
# dogstatsd_packet_buffer_size (32) packets.
DEFAULT_QUEUE = 1024 * 32
READER_START_TIMEOUT = 10.0
PARSE_NICE = 19  # the parse thread's niceness beside the reader process (see _read_pipe)
PIPE_SMALL_READ = 32 * 1024
PIPE_PAUSE = 0.002
NO_PEER = ("", 0)  # the address of datagrams read without one (no origin resolver)
# (peer ip, peer port, container id from the c: field) -> extra tags
OriginResolver = Callable[[str, int, str], list[str]]


class CachedContext:
    """A one-line metric datagram as parsed once, without its values, and its contexts per origin."""

    __slots__ = ("sample", "context", "contexts", "variants")

    def __init__(self, sample: MetricSample) -> None:
        self.sample = sample
        self.variants = 0  # datagrams of this context looked up here (not found as such)
        self.context: ContextKey | None = None  # without an origin resolver
        self.contexts: dict[tuple[str, ...], ContextKey] = {}  # origin tags -> aggregator context


class DogStatsDServer:
    """Owns the UDP sockets and their reader threads; `stop()` closes everything."""

    def __init__(
        self,
        aggregator: MetricAggregator,
        hosts: list[str],
        port: int,
        rcvbuf: int = 0,
        origin: OriginResolver | None = None,
        reader_process: bool = False,
        queue_size: int = DEFAULT_QUEUE,
    ) -> None:
        self.aggregator = aggregator
        # Read the sockets in a process of its own (dogstatsd_drain.py) rather than in this one's
        # reader threads; `queue_size`: datagrams it may hold read and not yet handed over.
        self.reader_process = reader_process
        self.queue_size = queue_size
        self._drain: subprocess.Popen | None = None
        self.parse_thread_id = 0  # the native id of the thread that parses the reader's pipe
        self._drained = 0  # datagrams the reader process says it read from the sockets
        self.reader_restarts = 0
        self._reader_ready = threading.Event()
        self.hosts = hosts
        self.requested_port = port
        self.rcvbuf = rcvbuf
        self.origin = origin
        self.stats = ParseStats()
        self.port = 0
        self.rcvbuf_effective = 0
        self._sockets: list[socket.socket] = []
        self._pipe: int | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        # Readers of several addresses parse one batch at a time: ParseStats counts are plain ints.
        self._parse_lock = threading.Lock()
        self._busy: list[int] = []  # per reader: 1 while a batch it read is not yet aggregated
        self.packets_read = 0
        # name|type|fields of a one-line metric datagram -> its parse (see handle_batch)
        self._contexts: dict[bytes, CachedContext] = {}
        self._datagrams: dict[bytes, tuple[CachedContext, list]] = {}  # datagram -> context, values
        self.cache_resets = 0

    def start(self) -> DogStatsDServer:
        port = self.requested_port
        for host in self.hosts:
            check_free(host, port, "udp")
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            if self.rcvbuf:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUFFORCE, self.rcvbuf)
                except (OSError, AttributeError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            sock.bind((host, port))
            sock.setblocking(False)  # waits are poll()s in _read; reads never block
            port = sock.getsockname()[1]  # port 0: every address shares the first one picked
            self.rcvbuf_effective = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            self._sockets.append(sock)
        self.port = port
        self._busy = [0] * len(self._sockets)
        if self.reader_process:
            self._start_reader_process()
        else:
            self._start_reader_threads()
        return self

    def _start_reader_threads(self) -> None:
        for i, sock in enumerate(self._sockets):
            t = threading.Thread(target=self._read, args=(sock, i), name="dogstatsd-read", daemon=True)
            t.start()
            self._threads.append(t)

    def _start_reader_process(self) -> None:
        """The sockets are read by dogstatsd_drain.py; this process reads its pipe and parses."""
        r, w = os.pipe()  # both ends non-inheritable: only the reader gets `w` (pass_fds)
        fds = [s.fileno() for s in self._sockets]
        cmd = [sys.executable, "-I", str(DRAIN_SCRIPT), "--fds", ",".join(map(str, fds)), "--out", str(w),
               "--queue", str(self.queue_size)]
        if self.origin is not None:
            cmd.append("--addresses")
        try:
            self._drain = subprocess.Popen(cmd, pass_fds=(*fds, w), stdin=subprocess.DEVNULL)
        except OSError as exc:
            os.close(r)
            log.warning("dogstatsd: no reader process (%s); reading in this process", exc)
            self._start_reader_threads()
            return
        finally:
            os.close(w)  # the reader's copy is its own
        set_pipe_size(r)
        self._pipe = r
        t = threading.Thread(target=self._read_pipe, args=(r,), name="dogstatsd-parse", daemon=True)
        t.start()
        self._threads.append(t)
        # Listening means read: wait for the reader's first count (or its end: then threads read).
        if not self._reader_ready.wait(READER_START_TIMEOUT):
            log.warning("dogstatsd: the reader process did not start in %s s", READER_START_TIMEOUT)

    def _read_pipe(self, fd: int) -> None:
        """Frames from the reader process (dogstatsd_drain.py's docstring), parsed batch by batch.

        This thread runs at nice 19: when it and the reader want the same CPU, the reader, which
        alone keeps the kernel's buffer from overflowing, gets it (the reader process is at the
        agent's priority, with a short slice). What this thread has not parsed yet waits in the
        pipe and the reader's bounded queue; nothing is lost by parsing a little later."""
        self.parse_thread_id = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, self.parse_thread_id, PARSE_NICE)  # this thread only (Linux)
        except (AttributeError, OSError):
            pass
        addresses = self.origin is not None
        head = HEAD.size + (ADDRESS_BYTES if addresses else 0)
        peers: dict[bytes, tuple[str, int]] = {}
        rest = b""
        while True:
            try:
                chunk = os.read(fd, 1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                break
            data = rest + chunk if rest else chunk
            end_of_data = len(data)
            batch: list[tuple[bytes, tuple]] = []
            off = 0
            drained = -1
            while off + 2 <= end_of_data:
                size = data[off] | (data[off + 1] << 8)
                if size == COUNT_MARK:
                    if off + COUNT.size > end_of_data:
                        break
                    drained = COUNT.unpack_from(data, off)[1]
                    off += COUNT.size
                    continue
                end = off + head + size
                if end > end_of_data:
                    break
                times = data[off + 2] | (data[off + 3] << 8)
                if addresses:
                    raw = data[off + HEAD.size : off + head]
                    peer = peers.get(raw)
                    if peer is None:
                        if len(peers) > 4096:
                            peers.clear()
                        peer = peers[raw] = (socket.inet_ntoa(raw[2:]), (raw[0] << 8) | raw[1])
                else:
                    peer = NO_PEER
                item = (data[off + head : end], peer)
                if times == 1:
                    batch.append(item)
                else:
                    batch.extend([item] * times)  # handle_batch aggregates the run once
                off = end
            rest = data[off:]
            if drained >= 0:
                self._drained = drained
                self._reader_ready.set()
            if batch:
                n = len(batch)
                with self._parse_lock:
                    self.handle_batch(batch)
                self.packets_read += n
            if len(chunk) < PIPE_SMALL_READ and not self._stop.is_set():
                # Little came: let the reader gather more before waking this thread again (each
                # wake-up takes a CPU the reader may need; its pipe holds far more than this).
                time.sleep(PIPE_PAUSE)
        if self._stop.is_set():
            return
        # The reader process ended while the agent runs: read the sockets here from now on. (The
        # threads started here inherit this thread's nice 19 where the agent may not lower it.)
        code = self._drain.poll() if self._drain is not None else None
        log.error("dogstatsd: the reader process ended (exit %s); reading in the agent's process", code)
        self.reader_restarts += 1
        self._drained = self.packets_read
        self._start_reader_threads()
        self._reader_ready.set()

    def _read(self, sock: socket.socket, index: int) -> None:
        recvfrom, recv = sock.recvfrom, sock.recv
        busy = self._busy
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        while not self._stop.is_set():
            try:
                if not poller.poll(200):
                    continue
            except OSError:
                return
            batch = []
            busy[index] = 1
            try:
                if self.origin is None:
                    # Nothing needs the sender's address: recv() does not build one per datagram
                    # (~1 us of the ~2.5 us a recvfrom() costs here).
                    for _ in range(READ_BATCH):
                        batch.append((recv(MAX_PACKET), NO_PEER))
                else:
                    for _ in range(READ_BATCH):
                        batch.append(recvfrom(MAX_PACKET))
            except BlockingIOError:
                pass
            except OSError:
                busy[index] = 0
                return
            self.packets_read += len(batch)
            with self._parse_lock:
                self.handle_batch(batch)
            busy[index] = 0

    def handle_batch(self, batch: list[tuple[bytes, tuple]]) -> None:
        """Aggregate datagrams read from the socket, in their order: (datagram, peer address).
        The list is consumed (a sentinel is appended).

        A one-line metric datagram is looked up in two caches: by its bytes (a client sends the
        same counter datagram over and over: a hit costs one dict look-up) and, when its values
        differ, by its name and what follows the values (`name|type|@rate|#tags...`: a hit only
        parses the values). Either way it is aggregated into the context resolved the first time.
        A miss, or anything else (several lines, events, service checks, `|T` timestamps, bad
        values), goes through `parse_packet`, as every datagram used to. Runs of identical
        datagrams are aggregated once with their multiplicity.
        """
        seen = self._datagrams
        origin = self.origin
        context = self.aggregator.context
        origins: dict[tuple, tuple[str, ...]] = {}  # (peer, container id) -> tags, for this batch
        pending: list[tuple] = []  # aggregated with one lock, before any datagram that is not
        packets = size = samples = 0  # added to the stats once per batch
        batch.append((b"", None))  # a sentinel that ends the last run
        prev = batch[0]
        times = 0
        for item in batch:
            if item == prev:
                times += 1
                continue
            data, addr = prev
            prev, n, times = item, times, 1
            try:
                hit = seen.get(data)
                if hit is not None:
                    entry, values = hit
                else:
                    entry, values = self._lookup(data)
                    if entry is None:  # not a one-line metric: parsed and aggregated in order
                        if pending:
                            self.aggregator.add_in_contexts(pending)
                            pending = []
                        self.handle(data, addr, n)
                        continue
                packets += n
                size += len(data) * n
                samples += len(values) * n
                if origin is None:
                    ctx = entry.context
                    if ctx is None:
                        ctx = entry.context = context(entry.sample, ())
                else:
                    cid = entry.sample.container_id
                    tags = origins.get((addr, cid))
                    if tags is None:
                        tags = origins[(addr, cid)] = tuple(origin(addr[0], addr[1], cid))
                    ctx = entry.contexts.get(tags)
                    if ctx is None:
                        if len(entry.contexts) >= MAX_ORIGINS_PER_CONTEXT:
                            entry.contexts.clear()
                        ctx = entry.contexts[tags] = context(entry.sample, tags)
                pending.append((ctx, entry.sample.mtype, values, entry.sample.sample_rate, n))
            except (ValueError, UnicodeDecodeError):
                # A value the cache's parse refuses: the full parser counts it under its reason.
                if pending:
                    self.aggregator.add_in_contexts(pending)
                    pending = []
                self._handle_safely(data, addr, n)
            except Exception as exc:  # noqa: BLE001 - a bad packet never stops the server
                self.stats.errors["internal"] += 1
                log.debug("packet from %s failed: %r", addr, exc)
        if pending:
            self.aggregator.add_in_contexts(pending)
        stats = self.stats
        stats.packets += packets
        stats.bytes += size
        stats.metric_samples += samples

    def _lookup(self, data: bytes) -> tuple[CachedContext | None, list]:
        """A datagram not seen as such: its context from the context cache (its values parsed
        here) or from `parse_packet`; (None, []) when it is not a one-line metric the caches serve.
        Raises ValueError/UnicodeDecodeError for values `parse_metric` would refuse."""
        j = data.find(b"|")
        i = data.find(b":", 0, j) if j > 0 else -1
        if i <= 0 or b"\n" in data:
            return None, []
        key = data[:i] + data[j:]
        entry = self._contexts.get(key)
        if entry is None:
            once = ParseStats()
            messages = parse_packet(data, once)
            if once.errors or len(messages) != 1:
                return None, []
            sample = messages[0]
            if type(sample) is not MetricSample or sample.timestamp is not None:
                return None, []
            entry = CachedContext(sample)
            values = sample.values
            if len(key) <= MAX_CACHED_BYTES:
                if len(self._contexts) >= MAX_CACHED_CONTEXTS:
                    self._contexts.clear()  # bounded: a flood of contexts costs parses, not memory
                    self.cache_resets += 1
                self._contexts[key] = entry
        else:
            raw = data[i + 1 : j]
            if entry.sample.mtype == "s":
                values = [v.decode() for v in raw.split(b":")]
            elif b":" in raw:
                values = [float(v) for v in raw.split(b":")]
                if any(v - v != 0.0 for v in values):
                    raise ValueError("nan or inf")
            else:
                v = float(raw)
                if v - v != 0.0:  # nan and inf: parse_metric refuses them
                    raise ValueError("nan or inf")
                values = [v]
        entry.variants += 1
        # A context whose values keep changing (a gauge, a timer) would only fill the datagram
        # cache with datagrams never seen again: past a few, its datagrams are not kept.
        if len(data) <= MAX_CACHED_BYTES and entry.variants <= MAX_DATAGRAMS_PER_CONTEXT:
            if len(self._datagrams) >= MAX_CACHED_CONTEXTS:
                self._datagrams.clear()
                self.cache_resets += 1
            self._datagrams[data] = (entry, values)  # the values list is never changed once made
        return entry, values

    def _handle_safely(self, data: bytes, addr: tuple, times: int) -> None:
        try:
            self.handle(data, addr, times)
        except Exception as exc:  # noqa: BLE001 - a bad packet never stops the server
            self.stats.errors["internal"] += 1
            log.debug("packet from %s failed: %r", addr, exc)

    def handle(self, data: bytes, addr: tuple, times: int = 1) -> None:
        """One datagram from `addr`, received `times` times in a row."""
        if times == 1:
            messages = parse_packet(data, self.stats)
        else:
            once = ParseStats()
            messages = parse_packet(data, once)
            if not all(type(m) is MetricSample for m in messages):
                # Events and service checks are kept one by one: parse each copy on its own.
                self.stats.add(once)
                self._aggregate(messages, addr, 1)
                for _ in range(times - 1):
                    self._aggregate(parse_packet(data, self.stats), addr, 1)
                return
            self.stats.add(once, times)
        self._aggregate(messages, addr, times)

    def _aggregate(self, messages: list, addr: tuple, times: int) -> None:
        cache: dict[str, list[str]] = {}
        for msg in messages:
            tags: list[str] = []
            if self.origin is not None:
                cid = msg.container_id
                if cid not in cache:
                    cache[cid] = self.origin(addr[0], addr[1], cid)
                tags = cache[cid]
            if times == 1:
                self.aggregator.add(msg, tags)
            else:
                self.aggregator.add_sample(msg, tags, times=times)

    @property
    def queued(self) -> int:
        """Read from a socket and not yet aggregated: batches of the reader threads, datagrams of
        the reader process."""
        return sum(self._busy) + max(0, self._drained - self.packets_read)

    def drain(self, timeout: float = 2.0) -> bool:
        """Wait until every packet read so far is aggregated (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self.queued and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self.queued

    def stop(self) -> None:
        self._stop.set()
        if self._drain is not None:
            # Its end: the pipe's write end closes, so the parse thread reads EOF and returns.
            # (Should this process die instead, the reader sees the read end close and ends.)
            self._drain.terminate()
            try:
                self._drain.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._drain.kill()
                self._drain.wait(timeout=2)
        for t in self._threads:
            t.join(timeout=2)
        if self._pipe is not None:
            pipe, self._pipe = self._pipe, None
            os.close(pipe)
        for s in self._sockets:
            s.close()

    def snapshot(self) -> dict:
        return {
            **self.stats.as_dict(),
            "listening": [f"{h}:{self.port}/udp" for h in self.hosts],
            "so_rcvbuf": self.rcvbuf_effective,
            "queued": self.queued,
            "reader": ("process" if self._drain is not None and not self.reader_restarts else "threads"),
            "contexts": self.aggregator.contexts_seen,
            "context_cache": {"contexts": len(self._contexts), "datagrams": len(self._datagrams),
                              "limit": MAX_CACHED_CONTEXTS, "resets": self.cache_resets},
        }
