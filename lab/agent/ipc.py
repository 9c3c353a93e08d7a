"""The agent's IPC API: HTTPS on cmd_port (loopback), a bearer token from the auth token file.

As the real agent (pkg/api/security, comp/core/ipc, pkg/api/util `TokenValidator`):

- the token is 32 random bytes, hex encoded, in `auth_token_file_path` (default: next to
  datadog.yaml, `/etc/datadog-agent/auth_token`; `DD_AUTH_TOKEN_FILE_PATH` moves it). An existing
  file is reused (`FetchOrCreateAuthToken`), a new one is written 0600;
- the TLS certificate and its key sit together in `ipc_cert.pem` next to the token
  (`ipc_cert_file_path`, `DD_IPC_CERT_FILE_PATH`), self-signed at the first start; the CLI trusts
  exactly that certificate;
- a request without `Authorization` gets 401 `no session token provided` (with
  `WWW-Authenticate: Bearer realm="Datadog Agent"`), another scheme 401, a wrong token 403
  `invalid session token`;
- a plain-HTTP request to the TLS port gets Go's answer, `400 Client sent an HTTP request to an
  HTTPS server.` - unless the lab's fast profile keeps its private plain-HTTP status on the same
  port for the lab's own readiness checks (the first byte of a connection tells TLS from HTTP).

Where the agent runs outside a container and nothing says where the token is, the agent and its
CLI agree on `<tmp>/ecs-lab-agent-<uid>/<localhost>-<cmd_port>/auth_token` (the real agent has no
such fallback: its conf dir always exists). The agent's own loopback address is part of it: every
lab's agents use cmd port 5001, each on its own address, and labs side by side must not share (and
delete, when one stops) each other's token.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import os
import secrets
import socket
import ssl
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # aiohttp is the server's: `agent health` (a client, run by docker's health
    from aiohttp import web  # check with a 5 s timeout) must not pay its 0.4-0.6 s import

CONF_DIR = Path("/etc/datadog-agent")
TOKEN_BYTES = 32  # pkg/api/security authTokenMinimalLen
GO_PLAIN_HTTP_REPLY = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


class IpcError(OSError):
    """The CLI cannot talk to the agent (no token file, refused connection, TLS failure)."""


def auth_token_path(env: Mapping[str, str], cmd_port: int) -> Path:
    """Where the agent writes its token and the CLI reads it (see the module docstring)."""
    explicit = (env.get("DD_AUTH_TOKEN_FILE_PATH") or "").strip()
    if explicit:
        return Path(explicit)
    if CONF_DIR.is_dir():
        return CONF_DIR / "auth_token"
    # Both sides read the agent's address from the same environment (the CLI runs in its container).
    localhost = (env.get("LAB_AGENT_LOCALHOST") or "127.0.0.1").strip()
    # The temp dir the environment names (a local container's own), so that whoever holds the agent's
    # environment finds the token, whatever this process's own temp dir is.
    home = Path(env.get("TMPDIR") or tempfile.gettempdir()) / f"ecs-lab-agent-{os.getuid()}"
    return home / f"{localhost}-{cmd_port}" / "auth_token"


def ipc_cert_path(env: Mapping[str, str], token_path: Path) -> Path:
    explicit = (env.get("DD_IPC_CERT_FILE_PATH") or "").strip()
    return Path(explicit) if explicit else token_path.with_name("ipc_cert.pem")


def _self_signed_pem(hosts: list[str]) -> bytes:
    """A certificate for the IPC hosts and its key, PEM, in one file (as `ipc_cert.pem`)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for h in dict.fromkeys(["127.0.0.1", "::1", *hosts]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Datadog, Inc.")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


@dataclass
class IpcCredentials:
    token: str
    token_path: Path
    cert_path: Path
    created: list[Path] = field(default_factory=list)

    @classmethod
    def fetch_or_create(cls, token_path: Path, cert_path: Path, hosts: list[str]) -> IpcCredentials:
        created: list[Path] = []
        if token_path.is_file() and len(token_path.read_text().strip()) >= 2 * TOKEN_BYTES:
            token = token_path.read_text().strip()
        else:
            token = secrets.token_hex(TOKEN_BYTES)
            _write_private(token_path, token.encode())
            created.append(token_path)
        if not cert_path.is_file():
            _write_private(cert_path, _self_signed_pem(hosts))
            created.append(cert_path)
        return cls(token, token_path, cert_path, created)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_path)
        return ctx

    def remove_created(self) -> None:
        for p in self.created:
            with contextlib.suppress(OSError):
                p.unlink()
        with contextlib.suppress(OSError):
            if self.created:
                self.created[0].parent.rmdir()  # only when empty: a lab-made directory


def auth_middleware(token: Callable[[], str]):
    """pkg/api/util TokenValidator: 401 without a bearer token, 403 with a wrong one."""
    from aiohttp import web

    @web.middleware
    async def check(request: web.Request, handler):
        auth = request.headers.get("Authorization", "")
        challenge = {"WWW-Authenticate": 'Bearer realm="Datadog Agent"'}
        if not auth:
            return web.Response(status=401, text="no session token provided\n", headers=challenge)
        parts = auth.split(" ")
        if parts[0] != "Bearer":
            return web.Response(
                status=401, text=f"unsupported authorization scheme: {parts[0]}\n", headers=challenge
            )
        if len(parts) != 2 or not secrets.compare_digest(parts[1], token()):
            return web.Response(status=403, text="invalid session token\n")
        return await handler(request)

    return check


class IpcServer:
    """One TCP port: TLS connections go to the IPC app, plain ones to `plain_app` when there is
    one (the fast profile's private status) or get Go's 400. Start and stop on the server loop.

    Two steps, as the real agent starts its IPC API: `start` binds the port (its number names the
    auth token's path when cmd_port is 0) and accepts nothing yet, so a client is refused as before
    the real agent listens; `serve` listens once the auth token and IPC certificate exist (the real
    agent makes them before its API server starts: comp/api/authtoken, comp/api/api/apiimpl). A
    client never meets the port without TLS (accepting and closing there reset the first `agent
    status` after a restart: "Connection reset by peer")."""

    def __init__(
        self, app: web.Application, host: str, port: int, plain_app: web.Application | None = None,
    ) -> None:
        self.app, self.host, self.port, self.plain_app = app, host, port, plain_app
        self.tls: ssl.SSLContext | None = None
        self.bound_port = 0
        self._runners: list[web.AppRunner] = []
        self._sock: socket.socket | None = None
        self._accepting: asyncio.Task | None = None
        self._pending: set[asyncio.Task] = set()

    async def start(self) -> None:
        """Bind (not listen): the port is the agent's from here on, `bound_port` says which."""
        from aiohttp import web

        for app in (self.app, self.plain_app):
            if app is not None:
                runner = web.AppRunner(app, access_log=None, handle_signals=False)
                await runner.setup()
                self._runners.append(runner)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            await self._cleanup_runners()
            raise
        self._sock = sock
        self.bound_port = sock.getsockname()[1]

    async def serve(self, tls: ssl.SSLContext) -> None:
        """Listen and accept, with the IPC credentials in place."""
        assert self._sock is not None, "start() first"
        self.tls = tls
        self._sock.listen(128)  # an OSError (another listener took the port meanwhile) fails the start
        self._accepting = asyncio.create_task(self._accept())

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        while True:
            conn, _ = await loop.sock_accept(self._sock)
            task = asyncio.create_task(self._dispatch(conn))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _dispatch(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            readable = loop.create_future()
            loop.add_reader(conn.fileno(), lambda: readable.done() or readable.set_result(None))
            try:
                await asyncio.wait_for(readable, 10.0)
            finally:
                loop.remove_reader(conn.fileno())
            first = conn.recv(1, socket.MSG_PEEK)
            if first == b"\x16":  # a TLS handshake record
                await loop.connect_accepted_socket(self._runners[0].server, conn, ssl=self.tls)
            elif first and self.plain_app is not None:
                await loop.connect_accepted_socket(self._runners[1].server, conn)
            else:
                if first:
                    await loop.sock_sendall(conn, GO_PLAIN_HTTP_REPLY)
                conn.close()
        except (OSError, TimeoutError, ssl.SSLError):
            conn.close()

    async def _cleanup_runners(self) -> None:
        for r in self._runners:
            await r.cleanup()
        self._runners = []

    async def stop(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
            await asyncio.gather(self._accepting, *self._pending, return_exceptions=True)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        await self._cleanup_runners()


# -- the CLI side ---------------------------------------------------------------------------------
def ipc_get(env: Mapping[str, str], path: str, timeout: float = 20.0) -> tuple[int, bytes]:
    """GET `path` from the running agent as its CLI does: HTTPS to cmd_host:cmd_port, the token
    from the auth token file, the agent's own certificate as the only trusted one."""
    from lab.agent.config import ipc_address

    host, port = ipc_address(env)
    token_path = auth_token_path(env, port)
    cert = ipc_cert_path(env, token_path)
    try:
        token = token_path.read_text().strip()
    except OSError as exc:
        raise IpcError(f"unable to read authentication token file {token_path}: {exc.strerror}") from None
    ctx = ssl.create_default_context(cafile=str(cert)) if cert.is_file() else None
    if ctx is None:
        raise IpcError(f"unable to read IPC certificate {cert}")
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
    )
    url_host = f"[{host}]" if ":" in host else host
    req = urllib.request.Request(
        f"https://{url_host}:{port}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except urllib.error.URLError as exc:
        raise IpcError(str(exc.reason)) from None


def ipc_get_json(env: Mapping[str, str], path: str, timeout: float = 20.0) -> dict:
    code, body = ipc_get(env, path, timeout)
    if code != 200:
        raise IpcError(f"HTTP {code}: {body.decode(errors='replace').strip()}")
    return json.loads(body)
