"""A recording egress proxy that never connects anywhere: proof that nothing leaves the lab.

Datadog's own e2e tests once leaked data to the real intake through a forwarder nobody
redirected (docs/agent_contract.md#intake-urls). The lab hands this proxy to the agent as `DD_PROXY_HTTPS` /
`DD_PROXY_HTTP` (with `DD_SITE` on a reserved `.invalid` domain): any sender that was not
redirected to the fake intake ends up here instead of on the internet. Every attempt (a
`CONNECT host:port` tunnel, or an absolute-URI request) is recorded and refused with 403; no
outbound connection is ever opened. A scenario asserts that nothing unknown was attempted.

Its own page: `GET /ecs-lab/attempts` (origin-form, i.e. addressed to the proxy itself).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from lab.serving import ServerThread, check_free

MAX_HEAD = 64 * 1024
MAX_DRAIN = 16 * 1024 * 1024
REFUSAL = "ecs-agent-lab egress proxy: outbound traffic is not allowed from the lab; attempt recorded"


@dataclass(frozen=True)
class EgressAttempt:
    kind: str  # "connect" (an HTTPS tunnel) or "forward" (an absolute-URI HTTP request)
    method: str
    host: str
    port: int
    target: str
    client: str
    user_agent: str
    at: float

    def as_json(self) -> dict:
        return asdict(self)


def _parse_authority(authority: str, default_port: int) -> tuple[str, int]:
    if authority.startswith("["):  # [v6]:port
        host, _, rest = authority[1:].partition("]")
        port = rest.lstrip(":")
    else:
        host, _, port = authority.rpartition(":") if ":" in authority else (authority, "", "")
    try:
        return host.lower(), int(port) if port else default_port
    except ValueError:
        return host.lower(), default_port


class EgressProxy:
    """Owner of one recording proxy listener (`with EgressProxy() as p: p.url`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.bound_port = 0
        self._server_thread = ServerThread("egress-proxy")
        self._server: asyncio.base_events.Server | None = None
        self._attempts: list[EgressAttempt] = []
        self.malformed = 0
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.bound_port}"

    def agent_env(self) -> dict[str, str]:
        """Proxy settings for the agent (and `HTTPS_PROXY`/`HTTP_PROXY` for everything else)."""
        return {"DD_PROXY_HTTPS": self.url, "DD_PROXY_HTTP": self.url,
                "HTTPS_PROXY": self.url, "HTTP_PROXY": self.url}

    # -- records --------------------------------------------------------------------------------
    @property
    def attempts(self) -> list[EgressAttempt]:
        with self._lock:
            return list(self._attempts)

    def unknown_attempts(self, known_hosts: Iterable[str] = ()) -> list[EgressAttempt]:
        """Attempts to any host not in `known_hosts`: what a no-egress scenario requires to be empty."""
        known = {h.lower() for h in known_hosts}
        return [a for a in self.attempts if a.host not in known]

    def clear(self) -> None:
        with self._lock:
            self._attempts.clear()

    def _record(self, attempt: EgressAttempt) -> None:
        with self._lock:
            self._attempts.append(attempt)

    # -- wire -----------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client = f"{peer[0]}:{peer[1]}" if peer else ""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            self.malformed += 1
            writer.close()
            return
        try:
            lines = head.decode("latin-1").split("\r\n")
            method, target, _version = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
        except ValueError:
            self.malformed += 1
            await self._reply(writer, 400, {"error": "malformed request line"})
            return
        ua = headers.get("user-agent", "")
        if method.upper() == "CONNECT":
            host, port = _parse_authority(target, 443)
            self._record(EgressAttempt("connect", "CONNECT", host, port, target, client, ua, time.time()))
            # Refuse the tunnel: the client never gets a byte through to anywhere.
            await self._reply(writer, 403, {"error": REFUSAL, "target": target})
            return
        await self._drain_body(reader, headers)
        if target.startswith("/"):
            if method.upper() == "GET" and target.split("?")[0] == "/ecs-lab/attempts":
                await self._reply(writer, 200, {"count": len(self.attempts),
                                                "attempts": [a.as_json() for a in self.attempts]})
            else:
                await self._reply(writer, 404, {"error": "this is a forward proxy; its only page is "
                                                         "GET /ecs-lab/attempts"})
            return
        parts = urlsplit(target)
        if not parts.scheme or not parts.netloc:
            self.malformed += 1
            await self._reply(writer, 400, {"error": f"not an absolute URI: {target!r}"})
            return
        host, port = _parse_authority(parts.netloc.rsplit("@", 1)[-1], 443 if parts.scheme == "https" else 80)
        self._record(EgressAttempt("forward", method.upper(), host, port, target, client, ua, time.time()))
        await self._reply(writer, 403, {"error": REFUSAL, "target": target})

    async def _drain_body(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> None:
        # Read what the client sends before answering: closing on unread bytes makes the kernel
        # reset the connection and the client would see "connection reset", not our 403.
        try:
            if "content-length" in headers:
                remaining = min(int(headers["content-length"]), MAX_DRAIN)
                while remaining > 0:
                    chunk = await asyncio.wait_for(reader.read(min(remaining, 65536)), timeout=10)
                    if not chunk:
                        break
                    remaining -= len(chunk)
            elif "chunked" in headers.get("transfer-encoding", "").lower():
                await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), timeout=10)
        except (TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass

    async def _reply(self, writer: asyncio.StreamWriter, status: int, body: dict) -> None:
        reason = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found"}[status]
        data = json.dumps(body).encode()
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
        try:
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    # -- lifetime -------------------------------------------------------------------------------
    def start(self) -> EgressProxy:
        check_free(self.host, self.port)

        async def _start():
            return await asyncio.start_server(self._handle, self.host, self.port, limit=MAX_HEAD,
                                              reuse_address=True)

        self._server = self._server_thread.call(_start)
        self.bound_port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None

            async def _close() -> None:
                server.close()

            self._server_thread.call(_close)
        self._server_thread.stop()

    def __enter__(self) -> EgressProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
