"""DogStatsD on the wire: UDP sockets read in a tight loop, parsed and aggregated off the socket.

The real agent sizes its socket buffer from `dogstatsd_so_rcvbuf` and moves packets into a queue
before parsing (pkg/dogstatsd/listeners/udp.go, packets buffer), so a burst that arrives while the
aggregator flushes waits in memory instead of overflowing the kernel buffer. Here one reader thread
per socket only does `recvfrom` into a deque; one worker parses, resolves origin tags and aggregates.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

from lab.agent.dogstatsd import MetricAggregator, ParseStats, parse_packet
from lab.serving import check_free

log = logging.getLogger("lab.agent.dogstatsd")

MAX_PACKET = 65535
# (peer ip, peer port, container id from the c: field) -> extra tags
OriginResolver = Callable[[str, int, str], list[str]]


class DogStatsDServer:
    """Owns the UDP sockets, reader threads and the parse worker; `stop()` closes everything."""

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
        self._queue: deque[tuple[bytes, tuple]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.packets_read = 0
        self.max_queued = 500_000

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
            sock.settimeout(0.2)
            port = sock.getsockname()[1]  # port 0: every address shares the first one picked
            self.rcvbuf_effective = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            self._sockets.append(sock)
        self.port = port
        for sock in self._sockets:
            t = threading.Thread(target=self._read, args=(sock,), name="dogstatsd-read", daemon=True)
            t.start()
            self._threads.append(t)
        w = threading.Thread(target=self._work, name="dogstatsd-parse", daemon=True)
        w.start()
        self._threads.append(w)
        return self

    def _read(self, sock: socket.socket) -> None:
        q = self._queue
        while not self._stop.is_set():
            try:
                data, addr = sock.recvfrom(MAX_PACKET)
            except TimeoutError:
                continue
            except OSError:
                return
            self.packets_read += 1
            if len(q) >= self.max_queued:
                # Bounded like the agent's packet channel (dogstatsd_queue_size): drop and count.
                self.stats.errors["queue_full"] += 1
                continue
            q.append((data, addr))
            self._wake.set()

    def _work(self) -> None:
        q = self._queue
        while not self._stop.is_set() or q:
            if not q:
                self._wake.wait(0.2)
                self._wake.clear()
                continue
            data, addr = q.popleft()
            try:
                self.handle(data, addr)
            except Exception as exc:  # noqa: BLE001 - a bad packet never stops the server
                self.stats.errors["internal"] += 1
                log.debug("packet from %s failed: %r", addr, exc)
            # Hand the GIL over after each packet: a reader thread waiting to return from recvfrom
            # would otherwise wait a whole switch interval (5 ms) per datagram while this thread
            # parses, and the kernel buffer would overflow.
            time.sleep(0)

    def handle(self, data: bytes, addr: tuple) -> None:
        messages = parse_packet(data, self.stats)
        cache: dict[str, list[str]] = {}
        for msg in messages:
            tags: list[str] = []
            if self.origin is not None:
                cid = msg.container_id
                if cid not in cache:
                    cache[cid] = self.origin(addr[0], addr[1], cid)
                tags = cache[cid]
            self.aggregator.add(msg, tags)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def drain(self, timeout: float = 2.0) -> bool:
        """Wait until every packet read so far is aggregated (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self._queue

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
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
        }
