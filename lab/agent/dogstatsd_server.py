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
import select
import socket
import threading
import time
from collections.abc import Callable

from lab.agent.dogstatsd import ContextKey, MetricAggregator, MetricSample, ParseStats, parse_packet
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
    ) -> None:
        self.aggregator = aggregator
        self.hosts = hosts
        self.requested_port = port
        self.rcvbuf = rcvbuf
        self.origin = origin
        self.stats = ParseStats()
        self.port = 0
        self.rcvbuf_effective = 0
        self._sockets: list[socket.socket] = []
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
        for i, sock in enumerate(self._sockets):
            t = threading.Thread(target=self._read, args=(sock, i), name="dogstatsd-read", daemon=True)
            t.start()
            self._threads.append(t)
        return self

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
        """Batches read from a socket and not yet aggregated."""
        return sum(self._busy)

    def drain(self, timeout: float = 2.0) -> bool:
        """Wait until every packet read so far is aggregated (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while any(self._busy) and time.monotonic() < deadline:
            time.sleep(0.005)
        return not any(self._busy)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        for s in self._sockets:
            s.close()

    def snapshot(self) -> dict:
        return {
            **self.stats.as_dict(),
            "listening": [f"{h}:{self.port}/udp" for h in self.hosts],
            "so_rcvbuf": self.rcvbuf_effective,
            "queued": self.queued,
            "contexts": self.aggregator.contexts_seen,
            "context_cache": {"contexts": len(self._contexts), "datagrams": len(self._datagrams),
                              "limit": MAX_CACHED_CONTEXTS, "resets": self.cache_resets},
        }
