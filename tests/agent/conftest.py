"""Fixtures for the emulated agent's tests: a capture intake and an agent factory (all on port 0)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
from dataclasses import dataclass, field

import pytest
import zstandard
from aiohttp import web

from lab.agent.config import AgentConfig
from lab.agent.main import Agent
from lab.serving import ServerThread
from lab.world import wait_until


@dataclass
class Captured:
    path: str
    headers: dict
    body: bytes  # decompressed
    raw: bytes
    host: str


def decompress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    if encoding == "deflate":
        import zlib

        return zlib.decompress(body)
    return body


@dataclass
class CaptureIntake:
    """A tiny stand-in for the fake intake: records every POST, answers like the agent expects."""

    url: str = ""
    requests: list[Captured] = field(default_factory=list)
    status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def payloads(self, path: str) -> list[Captured]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, predicate=lambda c: True, timeout: float = 10.0) -> Captured:
        def find():
            for c in self.payloads(path):
                if predicate(c):
                    return c
            return None

        seen = lambda: sorted({r.path for r in self.requests})  # noqa: E731
        try:
            return wait_until(find, timeout, what=f"a matching payload on {path}")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; intake saw {len(self.requests)} requests on {seen()}") from None


def _app(cap: CaptureIntake) -> web.Application:
    from lab.proto import process_codec

    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        body = decompress(raw, request.headers.get("Content-Encoding", ""))
        with cap.lock:
            cap.requests.append(Captured(request.path, dict(request.headers), body, raw, request.host))
        if cap.status != 200:
            return web.Response(status=cap.status)
        if request.path in ("/api/v1/collector", "/api/v1/container"):
            return web.Response(body=process_codec.res_collector(), content_type="application/x-protobuf")
        return web.json_response({"errors": []})

    # auto_decompress off: aiohttp would refuse zstd bodies (no backports.zstd) and hide the encoding.
    app = web.Application(client_max_size=64 * 1024 * 1024, handler_args={"auto_decompress": False})
    app.router.add_route("POST", "/{tail:.*}", handle)
    return app


@pytest.fixture
def intake():
    cap = CaptureIntake()
    with ServerThread("capture-intake") as srv:
        cap.url = srv.add_app(_app(cap), "127.0.0.1", 0).url
        yield cap


def agent_env(intake_url: str, **extra: str) -> dict[str, str]:
    env = {
        "DD_API_KEY": "lab-api-key",
        "DD_SITE": "lab.invalid",
        "DD_DD_URL": intake_url,
        "DD_APM_DD_URL": intake_url,
        "DD_PROCESS_CONFIG_PROCESS_DD_URL": intake_url,
        # The relays' targets (profiles: a full URL, as profiling_dd_url is).
        "DD_APM_PROFILING_DD_URL": intake_url + "/api/v2/profile",
        "DD_APM_TELEMETRY_DD_URL": intake_url,
        "DD_APM_EVP_PROXY_CONFIG_DD_URL": intake_url,
        "DD_HOSTNAME": "i-0labtest",
        "DD_APM_RECEIVER_PORT": "0",
        "DD_DOGSTATSD_PORT": "0",
        "DD_CMD_PORT": "0",
        "DD_EXPVAR_PORT": "0",
        "DD_ECS_AGENT_URL": "http://127.0.0.1:9",  # nothing there: no ECS in unit tests
        "LAB_AGENT_LOCALHOST": "127.0.0.1",
        "LAB_AGENT_HOST_ADDRESSES": "127.0.0.1",
        "LAB_AGENT_FLUSH_INTERVAL": "1",
        "LAB_AGENT_TRACE_FLUSH_INTERVAL": "0.5",
        "LAB_AGENT_PROCESS_INTERVAL": "1",
        # The agent's temp dir, named in its environment as a local container's is: the default
        # token path is under it, and the `agent` CLI processes tests start read it from the temp
        # dir their environment names (tests/conftest.py gives child processes a TMPDIR of their
        # own, while this process's `gettempdir()` stays the system's).
        "TMPDIR": os.environ.get("TMPDIR") or tempfile.gettempdir(),
    }
    env.update(extra)
    return env


@pytest.fixture
def start_agent(intake):
    agents: list[Agent] = []

    def _start(**extra: str) -> Agent:
        env = agent_env(intake.url, **extra)
        a = Agent(AgentConfig.from_env(env), env, ecs_refresh_interval=0.5).start()
        agents.append(a)
        return a

    yield _start
    for a in agents:
        a.stop()


TRACED_SCRIPT = textwrap.dedent("""
    from ddtrace.trace import tracer
    with tracer.trace("web.request", service="lab-web", resource="GET /hello") as root:
        root.set_tag("http.status_code", "200")
        with tracer.trace("db.query", service="lab-db", resource="SELECT 1"):
            pass
    tracer.flush()
    tracer.shutdown()
""")


def run_traced_app(
    port: int, api_version: str, extra_env: dict[str, str] | None = None, script: str = TRACED_SCRIPT
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    env.update(
        {
            "DD_TRACE_AGENT_URL": f"http://127.0.0.1:{port}",
            "DD_TRACE_API_VERSION": api_version,
            "DD_ENV": "lab-test",
            "DD_VERSION": "1.2.3",
            "DD_SERVICE": "lab-web",
            "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
            "DD_REMOTE_CONFIGURATION_ENABLED": "false",
            "DD_TRACE_STATS_COMPUTATION_ENABLED": "false",
        }
    )
    env.update(extra_env or {})
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60, capture_output=True)
