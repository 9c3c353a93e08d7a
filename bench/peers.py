"""The receivers the benchmarks compare, each an owner object that starts one process and stops it.

Every receiver runs in its own process on loopback, so the load generator (the bench script) never
shares an interpreter lock with what it measures:

- `FakeIntake`: the lab's fake Datadog intake (`ecs-lab fake intake`), where the emulated agent
  forwards; it lets a bench prove the agent forwarded what it accepted (no black hole).
- `LabAgent`: the lab's emulated agent (`python -m lab.agent run`) with the DD_* environment of
  docs/agent_contract.md#the-agent-task-on-ecs and every port on 0; its ready line names the ports, its IPC
  API (`/agent/status`) the counters.
- `TestAgent`: `ddapm-test-agent` (PyPI), the APM peer. Its CLI has no bind address and aiohttp's
  `run_app` would listen on every interface, so a two-line wrapper runs its own `main()` with
  `run_app` bound to 127.0.0.1.
- `ServerlessCompat`: the `datadog-serverless-compat` binary (docs/agent_contract.md): DogStatsD on
  0.0.0.0:<port>/udp and a trace mini-agent on 127.0.0.1:<port>. It runs outside a serverless
  platform as an "Azure Spring App" (`ASCSVCRT_SPRING__APPLICATION__NAME`), never in its GCP mode
  (which calls a cloud metadata host); `DD_SITE` is a reserved `.invalid` name and every proxy
  setting points at a closed loopback port, so nothing it flushes can leave the machine. With
  `DD_LOG_LEVEL=debug` it logs `Parsed N valid metrics` per datagram: that log is its counter.

Only loopback is ever a target. Each owner's `stop()` (or `with` exit) ends only the process it
started, by pid. `print_rounds` prints the per-round table both comparisons show.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lab.world import wait_until

REPO = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
# A port nobody listens on (the discard service): proxies and URLs that must never reach anything.
DEAD_END = f"http://{LOOPBACK}:9"

_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port(kind: str = "tcp", host: str = LOOPBACK) -> int:
    """A port free right now on `host` (for peers that cannot be told port 0)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
    try:
        sock.bind((host, 0))
        return sock.getsockname()[1]
    finally:
        sock.close()


def lab_tree() -> dict[str, str]:
    """Which lab code a figure was measured on: the commit and a digest of the agent and intake
    sources as they are on disk (other work may be uncommitted)."""
    import hashlib

    digest = hashlib.sha1()
    sources = sorted((REPO / "lab" / "agent").glob("*.py"))
    sources += sorted((REPO / "lab" / "fakes" / "intake").rglob("*.py"))
    for path in sources:
        digest.update(path.read_bytes())
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except OSError:
        commit = ""
    return {"commit": commit, "lab_agent_and_intake_sha1": digest.hexdigest()[:12]}


def get_json(url: str, timeout: float = 5.0) -> Any:
    with _http.open(url, timeout=timeout) as resp:
        return json.loads(resp.read().decode() or "null")


def _child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment without proxies or DD_* settings, plus `extra`.

    A proxy from the environment would route loopback traffic (or a peer's flush) through the
    machine's intercepting proxy; a stray DD_* variable would change what is measured.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DD_", "LAB_", "ECS_", "AWS_"))
        and k.lower() not in ("http_proxy", "https_proxy")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class ManagedProcess:
    """One child process, its output in a log file in its own temp dir; `stop()` ends it (SIGINT,
    then SIGKILL), `cleanup()` removes the dir; leaving a `with` block does both."""

    name = "process"

    def __init__(self, argv: list[str], env: Mapping[str, str], cwd: str | Path | None = None) -> None:
        self.argv = argv
        self.env = dict(env)
        self.cwd = str(cwd) if cwd else None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-{self.name}-"))
        self.log_path = self.workdir / "output.log"
        self.proc: subprocess.Popen | None = None
        self._log_offset = 0

    def start(self) -> ManagedProcess:
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child holds it; closed in stop()
        self._log_file = log
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd or self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the child has used so far: a figure machine load does not skew.
        Its own child processes count too (the lab agent's decoder processes): those alive now, and
        those it has waited for (`children_*`)."""
        import psutil

        if self.proc is None:
            return 0.0
        proc = psutil.Process(self.proc.pid)
        t = proc.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in proc.children(recursive=True):
            try:
                c = child.cpu_times()
            except psutil.Error:
                continue
            total += c.user + c.system
        return total

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern: str, timeout: float) -> re.Match:
        rx = re.compile(pattern, re.M)

        def seen() -> re.Match | None:
            if not self.alive():
                code = self.proc.returncode
                raise RuntimeError(f"{self.name} exited with {code}:\n{self.log_text()[-2000:]}")
            return rx.search(self.log_text())

        try:
            return wait_until(seen, timeout, what=f"{self.name} to log {pattern!r}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n--- {self.name} output ---\n{self.log_text()[-2000:]}") from None

    def stop(self, timeout: float = 15.0) -> int | None:
        """Stop the child (SIGINT: every receiver here stops cleanly on it); returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log_file.close()
        return self.proc.returncode

    def cleanup(self) -> None:
        """Remove the work directory (its log, and serverless-compat's copy of the binary)."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.cleanup()


# -- the lab ------------------------------------------------------------------------------------------
class FakeIntake(ManagedProcess):
    """`ecs-lab fake intake` on 127.0.0.1, port 0."""

    name = "intake"

    def __init__(self) -> None:
        super().__init__(
            [sys.executable, "-m", "lab.cli", "fake", "intake", "--listen", f"{LOOPBACK}:0"],
            _child_env({}),
            cwd=REPO,
        )
        self.url = ""

    def start(self) -> FakeIntake:
        super().start()
        try:
            self.url = self.wait_for_log(r"^intake: (http://\S+)$", 20).group(1)
        except BaseException:
            self.stop()
            raise
        return self

    def client(self):
        from lab.fakes.intake.client import IntakeClient

        return IntakeClient(self.url)

    def trace_spans(self) -> int:
        """Spans in every AgentPayload the intake received on /api/v0.2/traces (decoded here)."""
        from lab.fakes.intake.decode import traces

        total = 0
        for item in self.client().payloads("/api/v0.2/traces", fmt="raw"):
            # fakeintake's `encoding` is the Content-Encoding, or the Content-Type when there is none.
            encoding = item.get("encoding", "")
            if encoding == item.get("content_type"):
                encoding = ""
            msg = traces.decode(item["data"], {"Content-Encoding": encoding}).native
            total += sum(len(chunk.spans) for tp in msg.tracerPayloads for chunk in tp.chunks)
        return total


class LabAgent(ManagedProcess):
    """The emulated agent (`python -m lab.agent run`) on loopback, every port picked by the kernel.

    `intake_url`: where it forwards (DD_DD_URL, DD_APM_DD_URL, process URL); without one it forwards
    to a closed loopback port (payloads are then retried and dropped, never sent anywhere else).
    `extra_env` adds or overrides DD_* settings (e.g. DD_DOGSTATSD_SO_RCVBUF).
    """

    name = "lab-agent"

    def __init__(self, intake_url: str = "", extra_env: Mapping[str, str] | None = None,
                 tree: Path | None = None) -> None:
        """`tree`: run the agent from another copy of the repository (e.g. an older commit's
        `git archive`), to compare two versions side by side in one run."""
        url = intake_url or DEAD_END
        env = {
            "DD_API_KEY": "bench0000000000000000000000000000",
            "DD_HOSTNAME": "bench-host",
            "DD_SITE": "bench.invalid",
            "DD_DD_URL": url,
            "DD_APM_DD_URL": url,
            "DD_PROCESS_CONFIG_PROCESS_DD_URL": url,
            "DD_APM_RECEIVER_PORT": "0",
            "DD_DOGSTATSD_PORT": "0",
            "DD_CMD_PORT": "0",
            "DD_EXPVAR_PORT": "0",
            "DD_APM_NON_LOCAL_TRAFFIC": "true",
            "DD_DOGSTATSD_NON_LOCAL_TRAFFIC": "true",
            "DD_REMOTE_CONFIGURATION_ENABLED": "false",
            "DD_PROCESS_AGENT_ENABLED": "false",
            # "localhost" and "all interfaces" both mean loopback here (docs/local_backend.md).
            "LAB_AGENT_LOCALHOST": LOOPBACK,
            "LAB_AGENT_HOST_ADDRESSES": LOOPBACK,
            # No ECS agent on this host: a closed port, so discovery never finds someone else's.
            "DD_ECS_AGENT_URL": DEAD_END,
            "DD_LOG_LEVEL": "warning",
        }
        env.update(extra_env or {})
        child_env = _child_env(env)
        if tree is not None:
            if not (tree / "lab" / "agent" / "__main__.py").is_file():
                raise ValueError(f"{tree} is not a copy of this repository (no lab/agent/__main__.py)")
            child_env["PYTHONPATH"] = str(tree)
        super().__init__([sys.executable, "-m", "lab.agent", "run"], child_env, cwd=tree or REPO)
        self.ready: dict[str, Any] = {}

    def start(self) -> LabAgent:
        super().start()
        try:
            line = self.wait_for_log(r'^\{"event": "ready".*\}$', 30).group(0)
        except BaseException:
            self.stop()
            raise
        self.ready = json.loads(line)
        return self

    @property
    def apm_port(self) -> int:
        return int(self.ready["ports"]["apm"])

    @property
    def dogstatsd_port(self) -> int:
        return int(self.ready["ports"]["dogstatsd"])

    @property
    def traces_url(self) -> str:
        return f"http://{LOOPBACK}:{self.apm_port}/v0.4/traces"

    def status(self) -> dict:
        return get_json(f"http://{LOOPBACK}:{self.ready['ports']['cmd']}/agent/status")

    def spans_received(self) -> int:
        return int((self.status().get("apm") or {}).get("spans_received", 0))

    def forwarded(self, route: str = "traces") -> dict:
        return (self.status().get("forwarder") or {}).get(route, {})

    def dogstatsd_counts(self) -> dict:
        """Datagrams parsed (`packets`), metric samples, parse errors, and packets still queued."""
        d = self.status().get("dogstatsd") or {}
        return {
            "packets": int(d.get("packets", 0)),
            "metrics": int(d.get("metric_samples", 0)),
            "errors": int(d.get("errors", 0)),
            "queued": int(d.get("queued", 0)),
            "so_rcvbuf": int(d.get("so_rcvbuf", 0)),
        }


# -- the peers ----------------------------------------------------------------------------------------
_TEST_AGENT_MAIN = (
    "import functools, aiohttp.web as w, ddapm_test_agent.agent as a; "
    f"w.run_app = functools.partial(w.run_app, host={LOOPBACK!r}); a.main()"
)


def _test_agent_flags() -> str:
    """The installed ddapm-test-agent's --help text (its flags changed across versions)."""
    proc = subprocess.run([sys.executable, "-c", "import ddapm_test_agent.agent as a; a.main()", "--help"],
                          capture_output=True, text=True, timeout=60)
    return proc.stdout


class TestAgent(ManagedProcess):
    """`ddapm-test-agent` on 127.0.0.1:<free port>, no forwarding (`--agent-url` unset).

    `log_level` WARNING: at INFO it logs every chunk it receives, which is not the receiver's work.
    """

    __test__ = False  # not a pytest class
    name = "ddapm-test-agent"

    def __init__(self, log_level: str = "WARNING") -> None:
        self.port = free_port("tcp")
        env = _child_env({})
        argv = [sys.executable, "-c", _TEST_AGENT_MAIN, "--port", str(self.port), "--log-level", log_level]
        # Newer test agents also open OTLP (4318/4317) and web UI servers on fixed ports: move them
        # to free loopback ports so concurrent runs never clash and nothing binds all interfaces.
        flags = _test_agent_flags()
        if "--host" in flags:
            argv += ["--host", LOOPBACK]
        for flag in ("--otlp-http-port", "--otlp-grpc-port", "--web-ui-port"):
            if flag in flags:
                argv += [flag, str(free_port("tcp"))]
        super().__init__(argv, env)

    def start(self) -> TestAgent:
        super().start()
        try:
            wait_until(self._answers, 30, what=f"{self.name} on port {self.port}")
        except BaseException:
            self.stop()
            raise
        return self

    def _answers(self) -> bool:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited:\n{self.log_text()[-2000:]}")
        try:
            get_json(f"{self.base_url}/info", timeout=1)
            return True
        except OSError:
            return False

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def traces_url(self) -> str:
        return f"{self.base_url}/v0.4/traces"

    def spans_received(self) -> int:
        """Spans in every trace it stored (its `/test/traces` API decodes them all)."""
        traces = get_json(f"{self.base_url}/test/traces", timeout=120)
        return sum(len(t) for t in traces)


def serverless_compat_binary() -> Path:
    import datadog_serverless_compat

    package = Path(datadog_serverless_compat.__file__).parent
    return package / "bin" / "linux-amd64" / "datadog-serverless-compat"


_PARSED = re.compile(rb"Parsed (\d+) valid metrics")


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0


class ServerlessCompat(ManagedProcess):
    """The `datadog-serverless-compat` binary, copied to a temp dir and made executable there.

    `apm_intake_url`: where its trace mini-agent flushes (DD_APM_DD_URL); its metrics flush goes to
    `https://api.<DD_SITE>` only, hence the `.invalid` site and the dead-end proxy.
    """

    name = "serverless-compat"

    def __init__(self, apm_intake_url: str = "", log_level: str = "debug") -> None:
        self.log_level = log_level
        self.dogstatsd_port = free_port("udp", "0.0.0.0")
        self.apm_port = free_port("tcp")
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": tempfile.gettempdir(),
            "ASCSVCRT_SPRING__APPLICATION__NAME": "bench",
            "DD_API_KEY": "bench0000000000000000000000000000",
            "DD_SITE": "bench.invalid",
            "DD_DOGSTATSD_PORT": str(self.dogstatsd_port),
            "DD_APM_RECEIVER_PORT": str(self.apm_port),
            "DD_APM_DD_URL": apm_intake_url or DEAD_END,
            "DD_PROXY_HTTPS": DEAD_END,
            "HTTPS_PROXY": DEAD_END,
            "HTTP_PROXY": DEAD_END,
            "NO_PROXY": "127.0.0.1,localhost",
            "DD_LOG_LEVEL": log_level,
        }
        super().__init__([], env)
        self.binary = self.workdir / "datadog-serverless-compat"
        self.argv = [str(self.binary)]
        self._parsed = 0
        self._offset = 0

    def start(self) -> ServerlessCompat:
        shutil.copy2(serverless_compat_binary(), self.binary)
        self.binary.chmod(0o755)
        super().start()
        try:
            self.wait_for_log(r"dogstatsd-udp: starting to listen on port \d+", 20)
            if self.log_level == "debug":
                self.wait_for_log(rf"Mini Agent listening on TCP port {self.apm_port}", 10)
            else:
                wait_until(lambda: _listening(self.apm_port), 10, what=f"{self.name} APM port")
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def traces_url(self) -> str:
        return f"http://{LOOPBACK}:{self.apm_port}/v0.4/traces"

    def metrics_parsed(self) -> int:
        """Sum of `Parsed N valid metrics` over its log so far (read incrementally)."""
        with open(self.log_path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        # Count only complete lines; a half-written last line is read next time.
        end = chunk.rfind(b"\n") + 1
        self._parsed += sum(int(n) for n in _PARSED.findall(chunk, 0, end))
        self._offset += end
        return self._parsed

    def datagrams_parsed(self) -> int:
        """Log lines `Parsed N valid metrics`: one per datagram with at least one valid metric."""
        return len(_PARSED.findall(self.log_path.read_bytes()))


def print_rounds(results: list[dict], title: str, columns: list[str], width: int) -> None:
    """One row per receiver and round (`-` for a figure a receiver does not give)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c, justify="left" if c == "receiver" else "right")
    for r in results:
        table.add_row(*("-" if r.get(c) is None else str(r.get(c)) for c in columns))
    Console(width=width).print(table)
