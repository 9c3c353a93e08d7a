"""Run Datadog's `datadog-serverless-compat` binary as an ECS agent: the lab's second, independent agent.

The binary (PyPI package `datadog-serverless-compat`) is Datadog's Rust trace mini-agent plus a
DogStatsD server, built for Azure Functions / Google Cloud Run functions. It is not the Datadog
Agent: it offers what docs/agents.md lists and nothing more. This module makes it usable where an
ECS agent task runs, and never pretends it does more:

- `run`: start the binary with the lab's DD_* environment mapped onto what it honours
  (`binary_env`), and relay the receivers to where an ECS agent is reached. The binary binds its
  trace receiver to 127.0.0.1 only (crates/datadog-trace-agent/src/mini_agent.rs); in bridge mode
  apps reach the agent through a published port, i.e. on the container's own address, so a TCP
  relay listens there. On the local backend (`LAB_AGENT_HOST_ADDRESSES` set) both receivers move
  to kernel-picked ports and relays listen on the instance's addresses, as the emulated agent does.
- `agent ...`: the `agent` command of the image. `agent version` answers; everything the binary
  does not offer (`health`, `status`, `config`, ...) says "not offered by this agent (<version>,
  <endpoints from /info>)" and exits 127, like a missing command: an ECS health check
  `agent health` fails, truthfully.

This file imports only the standard library: the agent image copies it as its launcher.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

DISTRIBUTION = "datadog-serverless-compat"
DEFAULT_APM_PORT = 8126
DEFAULT_DOGSTATSD_PORT = 8125
# The binary refuses to run unless it detects exactly one serverless platform
# (libdatadog libdd-trace-utils config_utils::read_cloud_env). Azure Spring Apps is the one mode
# that makes no network call at start-up (the Google mode asks metadata.google.internal; the Azure
# Functions mode reads a function directory), so the launcher claims that one, and drops every other
# platform's marker so no other mode can be picked.
APP_NAME_VAR = "ASCSVCRT_SPRING__APPLICATION__NAME"
PLATFORM_MARKERS = (
    "K_SERVICE", "FUNCTION_TARGET", "FUNCTION_NAME", "GCP_PROJECT",
    "FUNCTIONS_EXTENSION_VERSION", "FUNCTIONS_WORKER_RUNTIME", "WEBSITE_SITE_NAME",
    "AWS_LAMBDA_FUNCTION_NAME",
)
# Rust's tracing filter knows trace/debug/info/warn/error/off; the agent's DD_LOG_LEVEL also knows these.
LOG_LEVELS = {"warning": "warn", "critical": "error", "off": "off"}
NOT_OFFERED_EXIT = 127
EXIT_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class LaunchError(RuntimeError):
    """The agent cannot start as configured; the message says why and what to set."""


# -- what is installed ------------------------------------------------------------------------------
def installed_binary() -> Path:
    """The binary: `DD_SERVERLESS_COMPAT_PATH` (as the package's own launcher honours), else the wheel's."""
    given = os.environ.get("DD_SERVERLESS_COMPAT_PATH")
    if given:
        return Path(given)
    import importlib.util

    spec = importlib.util.find_spec("datadog_serverless_compat")
    if spec is None or not spec.submodule_search_locations:
        raise LaunchError(f"{DISTRIBUTION} is not installed: `pip install {DISTRIBUTION}`, or set "
                          "DD_SERVERLESS_COMPAT_PATH to its binary")
    return Path(list(spec.submodule_search_locations)[0]) / "bin" / "linux-amd64" / DISTRIBUTION


def installed_version() -> str:
    """The package version: baked into the image as LAB_SERVERLESS_COMPAT_VERSION, else the installed
    distribution's."""
    baked = os.environ.get("LAB_SERVERLESS_COMPAT_VERSION")
    if baked:
        return baked
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


def executable(binary: Path, workdir: Path) -> Path:
    """The wheel ships the binary without its run bit; run a private executable copy then."""
    if not binary.is_file():
        raise LaunchError(f"{DISTRIBUTION} binary not found at {binary}")
    if os.access(binary, os.X_OK):
        return binary
    copy = workdir / binary.name
    shutil.copy2(binary, copy)
    copy.chmod(0o755)
    return copy


# -- configuration ----------------------------------------------------------------------------------
PROFILE_ROUTE = "/api/v2/profile"


def binary_env(env: Mapping[str, str], *, apm_port: int, dogstatsd_port: int,
               version: str = "") -> dict[str, str]:
    """The binary's environment from an ECS agent's: what it honours, set from the agent's settings.

    - traces, APM stats, DSM: `DD_APM_DD_URL`, else `DD_DD_URL` (the agent's main intake) as the
      prefix; profiles: `DD_APM_PROFILING_DD_URL`. Metrics have no override: they go to
      `https://api.<DD_SITE>` (through `DD_PROXY_HTTPS` when set), so a lab sets a `.invalid` site.
    - `DD_PROXY_HTTPS` (the binary also reads `HTTPS_PROXY`, which the agent honours too).
    - ports are the binary's own (127.0.0.1 for APM, every interface for DogStatsD).
    """
    if not env.get("DD_API_KEY"):
        raise LaunchError("DD_API_KEY is not set: the trace mini-agent refuses to start without it "
                          "(any non-empty value works against a fake intake)")
    out = {k: v for k, v in env.items() if k not in PLATFORM_MARKERS}
    # The agent's DD_LOGS_ENABLED means "collect container logs", which the binary cannot do; the
    # binary's means "open an HTTP log listener on 0.0.0.0:10517": not what an ECS user asked for.
    out.pop("DD_LOGS_ENABLED", None)
    out[APP_NAME_VAR] = env.get(APP_NAME_VAR) or env.get("DD_SERVICE") or "ecs-agent"
    apm_url = env.get("DD_APM_DD_URL") or env.get("DD_DD_URL")
    if apm_url:
        out["DD_APM_DD_URL"] = apm_url.rstrip("/")
    profiling = env.get("DD_APM_PROFILING_DD_URL")
    if profiling:
        # The agent's apm_config.profiling_dd_url is the whole URL (`.../api/v2/profile`); the
        # binary appends `/api/v2/profile` to its value (crates/datadog-trace-agent/src/config.rs),
        # so passed as is every profile would go to `.../api/v2/profile/api/v2/profile`.
        prefix = profiling.rstrip("/")
        out["DD_APM_PROFILING_DD_URL"] = prefix.removesuffix(PROFILE_ROUTE)
    proxy = env.get("DD_PROXY_HTTPS") or env.get("HTTPS_PROXY") or env.get("https_proxy")
    if proxy:
        out["DD_PROXY_HTTPS"] = proxy
    level = env.get("DD_LOG_LEVEL", "info").lower()
    out["DD_LOG_LEVEL"] = LOG_LEVELS.get(level, level)
    out["DD_APM_RECEIVER_PORT"] = str(apm_port)
    out["DD_DOGSTATSD_PORT"] = str(dogstatsd_port)
    if version:
        # What the package's Python launcher passes (datadog_serverless_compat/main.py).
        out["DD_SERVERLESS_COMPAT_VERSION"] = version
    return out


def _port(env: Mapping[str, str], key: str, default: int) -> int:
    value = env.get(key, str(default))
    try:
        port = int(value)
    except ValueError:
        raise LaunchError(f"{key}={value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise LaunchError(f"{key}={value!r} is not a port number")
    return port


def interface_addresses() -> list[str]:
    """This network namespace's IPv4 addresses other than loopback (the container's own)."""
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _index, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(sock.fileno(), 0x8915,  # SIOCGIFADDR
                                     struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue  # an interface without an IPv4 address
            address = socket.inet_ntoa(packed[20:24])
            if not address.startswith("127.") and address not in found:
                found.append(address)
    return found


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- relays -----------------------------------------------------------------------------------------
class TcpRelay:
    """Listens on host:port and pipes each connection to 127.0.0.1:target (a thread per connection)."""

    def __init__(self, host: str, port: int, target: int) -> None:
        self.target = target
        self.sock = socket.create_server((host, port), reuse_port=False)
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name=f"relay-tcp-{host}:{port}").start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _pipe(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target), timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        pair = {client: upstream, upstream: client}
        try:
            while pair:
                readable, _, _ = select.select(list(pair), [], [], 1.0)
                if self._stop.is_set():
                    break
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        # Half-close: pass the EOF on and keep reading the other direction.
                        other = pair.pop(s)
                        try:
                            other.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        continue
                    pair[s].sendall(data)
        except OSError:
            pass
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


class UdpRelay:
    """Receives datagrams on host:port and sends each, unchanged, to 127.0.0.1:target."""

    def __init__(self, host: str, port: int, target: int) -> None:
        self.target = ("127.0.0.1", target)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # The real agent's default DogStatsD buffer is larger than the kernel's: keep bursts.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock.bind((host, port))
        self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        threading.Thread(target=self._pump, daemon=True, name=f"relay-udp-{host}:{port}").start()

    def _pump(self) -> None:
        while True:
            try:
                data = self.sock.recv(65535)
                self.out.sendto(data, self.target)
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        self.out.close()


# -- run --------------------------------------------------------------------------------------------
def _wait_listening(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LaunchError(f"{DISTRIBUTION} exited with {proc.returncode} before its trace receiver "
                              f"listened on 127.0.0.1:{port}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise LaunchError(f"{DISTRIBUTION} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


def run(env: Mapping[str, str] | None = None) -> int:
    """Run the binary and its relays until it exits or a stop signal comes; returns its exit code."""
    env = dict(os.environ if env is None else env)
    apm_port = _port(env, "DD_APM_RECEIVER_PORT", DEFAULT_APM_PORT)
    statsd_port = _port(env, "DD_DOGSTATSD_PORT", DEFAULT_DOGSTATSD_PORT)
    non_local_apm = env.get("DD_APM_NON_LOCAL_TRAFFIC", "true").lower() != "false"
    # Local backend: the instance's addresses are given; both receivers move to free loopback ports.
    given_hosts = [h for h in env.get("LAB_AGENT_HOST_ADDRESSES", "").split(",") if h]
    if given_hosts:
        hosts = given_hosts
        inner_apm, inner_statsd = _free_port(socket.SOCK_STREAM), _free_port(socket.SOCK_DGRAM)
    else:
        hosts = interface_addresses() if non_local_apm else []
        inner_apm, inner_statsd = apm_port, statsd_port
    version = installed_version()
    workdir = Path(tempfile.mkdtemp(prefix="serverless-compat-"))
    relays: list[TcpRelay | UdpRelay] = []
    proc: subprocess.Popen | None = None
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        stopping.set()
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in EXIT_SIGNALS}
    try:
        binary = executable(installed_binary(), workdir)
        child_env = binary_env(env, apm_port=inner_apm, dogstatsd_port=inner_statsd, version=version)
        proc = subprocess.Popen([str(binary)], env=child_env, stdin=subprocess.DEVNULL)
        _wait_listening(inner_apm, proc, 30)
        for host in hosts:
            if non_local_apm or given_hosts:
                relays.append(TcpRelay(host, apm_port, inner_apm))
            if given_hosts:
                relays.append(UdpRelay(host, statsd_port, inner_statsd))
        print(json.dumps({"event": "ready", "agent": DISTRIBUTION, "version": version,
                          "ports": {"apm": apm_port, "dogstatsd": statsd_port},
                          "binary_ports": {"apm": inner_apm, "dogstatsd": inner_statsd},
                          "relayed_on": hosts}), flush=True)
        while proc.poll() is None:
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                continue
        return 0 if stopping.is_set() else proc.returncode
    except LaunchError as exc:
        print(f"{DISTRIBUTION}: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        for relay in relays:
            relay.close()
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for s, handler in previous.items():
            signal.signal(s, handler)
        shutil.rmtree(workdir, ignore_errors=True)


# -- the `agent` command ----------------------------------------------------------------------------
def advertised_endpoints(env: Mapping[str, str] | None = None, timeout: float = 2.0) -> list[str] | None:
    """The endpoints the running binary's `/info` lists, or None when no /info answers."""
    env = os.environ if env is None else env
    port = _port(env, "DD_APM_RECEIVER_PORT", DEFAULT_APM_PORT)
    hosts = ["127.0.0.1", *[h for h in env.get("LAB_AGENT_HOST_ADDRESSES", "").split(",") if h]]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for host in hosts:
        try:
            with opener.open(f"http://{host}:{port}/info", timeout=timeout) as resp:
                return list(json.loads(resp.read()).get("endpoints") or [])
        except (OSError, ValueError):
            continue
    return None


def not_offered(what: str, version: str, endpoints: list[str] | None) -> str:
    """The one sentence every unsupported check reports."""
    listed = ", ".join(endpoints) if endpoints else "no /info answered"
    return f"{what}: not offered by this agent ({DISTRIBUTION} {version}, endpoints from /info: {listed})"


def agent_command(argv: list[str]) -> int:
    """`agent <subcommand>` as the image's `agent`: only what the binary offers answers."""
    sub = argv[0] if argv else "run"
    if sub == "run":
        return run()
    version = installed_version()
    if sub == "version":
        print(f"{DISTRIBUTION} {version}")
        return 0
    print(not_offered(f"agent {' '.join(argv)}", version, advertised_endpoints()), file=sys.stderr)
    return NOT_OFFERED_EXIT


def main(argv: list[str] | None = None) -> int:
    """`python -m lab.serverless_compat [run | agent ARGS...]`."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] == "run":
        return run()
    if args[0] == "agent":
        return agent_command(args[1:])
    print(f"usage: {Path(sys.argv[0]).name} [run | agent <subcommand>]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
