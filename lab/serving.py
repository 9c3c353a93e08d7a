"""Owner objects for the lab's servers: an aiohttp app (or UDP endpoint) on its own event loop thread.

Every fake's wire layer is an `aiohttp.web.Application` (or a datagram protocol); `ServerThread`
binds it, reports the real port (port 0 picks a free one), and stops it on exit, so a test, the CLI
and the backends all start servers the same way. A port already in use fails with the name of the
process holding it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import psutil
from aiohttp import web


@contextlib.contextmanager
def gc_paused():
    """The cyclic GC off for a burst of allocations that a collection would only walk for nothing.
    Nests (an inner pause while paused changes nothing).

    - One APM request: its ~3,000 dicts per 1,000 spans are freed by reference counting when it is
      done (measured: 6-7 us per span with the GC on, 3-4 us paused). Never held across an `await`.
    - A lab's start-up: imports and moto's models allocate objects that live as long as the lab;
      collections meanwhile cost `ecs-lab up` ~0.4 s of its ~1.5 s control-plane start.
    """
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


class PortInUseError(OSError):
    pass


def port_holder(host: str, port: int, kind: str = "tcp") -> str:
    """Describe who holds host:port ("pid 1234 (python3 -m http.server)"), or say it is unknown."""
    try:
        conns = psutil.net_connections(kind="tcp" if kind == "tcp" else "udp")
    except (psutil.AccessDenied, PermissionError):
        return "an unknown process (no permission to list sockets)"
    for conn in conns:
        if not conn.laddr or conn.laddr.port != port:
            continue
        if kind == "tcp" and conn.status != psutil.CONN_LISTEN:
            continue
        if conn.laddr.ip not in (host, "0.0.0.0", "::", "127.0.0.1" if host == "localhost" else host):
            continue
        if conn.pid:
            try:
                proc = psutil.Process(conn.pid)
                cmd = " ".join(proc.cmdline()[:4]) or proc.name()
                return f"pid {conn.pid} ({cmd})"
            except psutil.Error:
                return f"pid {conn.pid}"
        return "a process in another namespace or owned by another user"
    return "an unknown process"


def check_free(host: str, port: int, kind: str = "tcp") -> None:
    """Raise PortInUseError naming the holder if host:port cannot be bound."""
    if port == 0:
        return
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
    try:
        if kind == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                errno.EADDRINUSE, f"{host}:{port}/{kind} is already in use by {port_holder(host, port, kind)}"
            ) from None
        raise
    finally:
        sock.close()


@dataclass
class Listener:
    host: str
    port: int
    app: web.Application
    bound_port: int = 0
    site: web.BaseSite | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.bound_port}"


class ServerThread:
    """Runs one or more aiohttp apps (and optional UDP endpoints) on a private event loop thread.

    Usage::

        with ServerThread("imds") as srv:
            listener = srv.add_app(app, "127.0.0.1", 0)
            print(listener.url)
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"lab-{name}", daemon=True)
        self._runners: list[web.AppRunner] = []
        self._transports: list[asyncio.BaseTransport] = []
        self.listeners: list[Listener] = []
        self._started = False

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> ServerThread:
        if not self._started:
            self._thread.start()
            self._started = True
        return self

    def call(self, coro_factory: Callable[[], Awaitable], timeout: float = 30.0):
        """Run a coroutine on the server loop and wait for its result."""
        self.start()
        return asyncio.run_coroutine_threadsafe(coro_factory(), self.loop).result(timeout)

    def add_app(self, app: web.Application, host: str, port: int, **runner_kwargs) -> Listener:
        """Bind `app`; `runner_kwargs` go to aiohttp's AppRunner (e.g. `auto_decompress=False` for a
        server that must see request bodies exactly as sent)."""
        check_free(host, port)
        listener = Listener(host, port, app)

        async def _start() -> None:
            runner = web.AppRunner(app, access_log=None, handle_signals=False, **runner_kwargs)
            await runner.setup()
            site = web.TCPSite(runner, host, port, reuse_address=True, backlog=1024)
            try:
                await site.start()
            except OSError as exc:
                await runner.cleanup()
                if exc.errno == errno.EADDRINUSE:
                    raise PortInUseError(
                        exc.errno, f"{host}:{port}/tcp is already in use by {port_holder(host, port)}"
                    ) from None
                raise
            self._runners.append(runner)
            listener.site = site
            listener.bound_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

        self.call(_start)
        self.listeners.append(listener)
        return listener

    def add_udp(self, protocol_factory: Callable[[], asyncio.DatagramProtocol], host: str, port: int,
                rcvbuf: int | None = None) -> tuple[asyncio.DatagramTransport, int]:
        """Bind a UDP endpoint; `rcvbuf` sizes SO_RCVBUF (DD_DOGSTATSD_SO_RCVBUF)."""
        check_free(host, port, "udp")

        async def _start():
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            if rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.bind((host, port))
            transport, _ = await self.loop.create_datagram_endpoint(protocol_factory, sock=sock)
            return transport, sock.getsockname()[1]

        transport, bound = self.call(_start)
        self._transports.append(transport)
        return transport, bound

    def stop(self) -> None:
        if not self._started:
            return

        async def _stop() -> None:
            for t in self._transports:
                t.close()
            for r in self._runners:
                await r.cleanup()

        try:
            self.call(_stop, timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            if not self._thread.is_alive():
                self.loop.close()
            self._started = False

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def stop_listening(listener: Listener) -> None:
    """On the listener's loop: close its listening socket and its open (keep-alive) connections, so
    connecting is refused as when the server is down; `listen_again` reopens the same address."""
    site = listener.site
    server = getattr(site, "_server", None)
    if server is not None:
        server.close()
    handler_server = site._runner.server if site is not None else None  # type: ignore[union-attr]
    for handler in list(getattr(handler_server, "connections", ())):
        handler.force_close()


async def listen_again(listener: Listener) -> None:
    """On the listener's loop: listen again on the same host and port (clients keep their URL)."""
    site = listener.site
    assert site is not None, "the listener was never started"
    site._server = await asyncio.get_running_loop().create_server(  # type: ignore[attr-defined]
        site._runner.server, listener.host, listener.bound_port, reuse_address=True, backlog=1024)
